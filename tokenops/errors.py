"""Every error tokenops raises on purpose derives from `TokenopsError`.

    TokenopsError
    ├── ConfigError          tokenops.toml or environment is invalid
    ├── PricingError         a price override is inconsistent (an unknown model is *not* an error)
    ├── StoreError           the ledger cannot be opened or written
    └── ImportRowError       an importer rejected a row (carries file:line)

Gateway-facing errors are translated into each provider's own error JSON in one place,
`tokenops.gateway.errors`.
"""

from __future__ import annotations


class TokenopsError(Exception):
    """Root of tokenops' own errors."""


class ConfigError(TokenopsError):
    """Configuration could not be loaded; the message names the file and the key."""


class PricingError(TokenopsError):
    """A pricing override or request is inconsistent."""


class StoreError(TokenopsError):
    """The ledger could not be opened, migrated or written."""


class ImportRowError(TokenopsError):
    """One input row was rejected; the rows around it are kept."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason
