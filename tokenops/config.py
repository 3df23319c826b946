"""Settings: built once (from tokenops.toml and `TOKENOPS_*` variables) and passed down.

No module-level state: `load_settings()` is called by the CLI or by `create_app`, never at
import time.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tokenops.errors import ConfigError
from tokenops.gateway.streaming import AbortPolicy
from tokenops.gateway.upstream import DEFAULT_UPSTREAMS, Upstream
from tokenops.guard.policies import GuardBackend, Policies
from tokenops.pricing.overrides import PriceOverride

DEFAULT_CONFIG = Path("tokenops.toml")


class PricingSettings(BaseModel):
    """`[pricing]`: the organisation's own prices, checked before list prices."""

    model_config = ConfigDict(extra="forbid")

    overrides: list[PriceOverride] = Field(default_factory=list)
    """First match wins."""


class ServerSettings(BaseModel):
    """`[server]`: where `tokenops serve` listens."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    """Interface to bind; loopback unless you put tokenops behind a proxy."""
    port: int = 8787
    """TCP port."""


class GatewaySettings(BaseModel):
    """`[gateway]`: upstream providers and how calls through them are handled."""

    model_config = ConfigDict(extra="forbid")

    upstreams: list[Upstream] = Field(default_factory=lambda: list(DEFAULT_UPSTREAMS))
    """Providers, first match by wire format and model wins."""
    require_keys: bool = True
    """Refuse calls without a tokenops virtual key (`tokenops keys create`)."""
    max_body_bytes: int = 32 * 1024 * 1024
    """Larger request bodies get 413."""
    on_client_abort: AbortPolicy = "drain"
    """`drain`: keep reading an abandoned stream to meter exactly; `close`: stop and estimate."""
    drain_timeout_s: float = 120.0
    """Longest an abandoned stream is drained."""
    cost_headers: bool = True
    """Send `X-Tokenops-Cost-USD` and `X-Tokenops-Task-Cost-USD` back to callers."""


class Settings(BaseSettings):
    """All of tokenops' configuration."""

    model_config = SettingsConfigDict(env_prefix="TOKENOPS_", env_nested_delimiter="__", extra="forbid")

    ledger: str = "tokenops.duckdb"
    """Ledger location: a DuckDB file path or `duckdb:PATH`."""
    data_dir: Path = Path(".tokenops")
    """Spool and other local state."""
    store_prompts: bool = False
    """Keep prompt and response text (off: only token counts are stored)."""
    pricing: PricingSettings = Field(default_factory=PricingSettings)
    """Price overrides."""
    server: ServerSettings = Field(default_factory=ServerSettings)
    """Listening address."""
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    """Upstreams and call handling."""
    guard: Policies = Field(default_factory=Policies)
    """Guardrails checked before a call is forwarded (task budgets, caps, model rules)."""
    guard_backend: GuardBackend = Field(default_factory=GuardBackend)
    """Where guard counters live (in-process or Redis shared by replicas), fail-open/closed, alert webhook."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # explicit arguments > TOKENOPS_* environment > tokenops.toml > defaults
        toml_file = settings_cls.model_config.get("toml_file")
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        if toml_file is not None:
            sources += (TomlConfigSettingsSource(settings_cls, toml_file=toml_file),)
        return sources


def load_settings(path: Path | None = None, **overrides: object) -> Settings:
    """Read tokenops.toml (if present) and `TOKENOPS_*` variables; keyword overrides win."""
    file = path or DEFAULT_CONFIG
    if path is not None and not path.exists():
        raise ConfigError(f"Config file {str(path)!r} not found")
    if file.exists():
        try:
            tomllib.loads(file.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: {exc}") from exc
    bound = type("Settings", (Settings,), {"model_config": {**Settings.model_config, "toml_file": file}})
    try:
        return bound(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise ConfigError(f"{file}: {exc}") from exc
