"""Where calls go: upstream providers from the config file, credentials from the environment.

Wire formats live in `openai.py` / `anthropic.py`; this module only knows URLs, keys and which
upstream serves which model.
"""

from __future__ import annotations

import fnmatch
import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

UpstreamKind = Literal["openai", "anthropic", "azure", "openai-compatible"]
Flavour = Literal["openai", "anthropic"]

_PRICING_PROVIDER = {"openai": "openai", "anthropic": "anthropic", "azure": "azure"}


class Upstream(BaseModel):
    """One `[[gateway.upstreams]]` entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """Label used in logs and metrics."""
    kind: UpstreamKind
    """Wire protocol and URL scheme."""
    base_url: str
    """e.g. https://api.openai.com/v1, https://api.anthropic.com, http://127.0.0.1:8000/v1 (vLLM)."""
    api_key_env: str | None = None
    """Environment variable holding the provider key (never put keys in the file)."""
    models: list[str] = Field(default_factory=lambda: ["*"])
    """Model names or globs this upstream serves; first matching upstream wins."""
    provider: str | None = None
    """Pricing provider id; defaults from `kind` (openai-compatible defaults to `name`)."""
    api_version: str | None = None
    """Azure OpenAI `api-version` query parameter."""
    deployments: dict[str, str] = Field(default_factory=dict)
    """Azure: model name -> deployment name (default: the model name)."""
    timeout_s: float = 600.0
    """Longest wait for the next byte from the upstream."""

    @property
    def flavour(self) -> Flavour:
        """Which wire format the upstream speaks."""
        return "anthropic" if self.kind == "anthropic" else "openai"

    @property
    def pricing_provider(self) -> str:
        """Provider id the price list knows this upstream by."""
        return self.provider or _PRICING_PROVIDER.get(self.kind, self.name)

    def serves(self, model: str | None) -> bool:
        """Whether this upstream takes calls for `model`."""
        if model is None:
            return "*" in self.models
        lowered = model.lower()
        return any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in self.models)

    def url(self, path: str, model: str | None) -> str:
        """Full URL for an API path such as `/chat/completions` or `/messages`."""
        base = self.base_url.rstrip("/")
        if self.kind == "azure" and self.api_version:
            deployment = self.deployments.get(model or "", model or "")
            return f"{base}/openai/deployments/{deployment}{path}?api-version={self.api_version}"
        if self.kind == "anthropic" and not base.endswith("/v1"):
            base += "/v1"
        return base + path

    def auth_headers(self) -> dict[str, str]:
        """The provider credential, read from the environment at call time."""
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        if not key:
            return {}
        if self.kind == "anthropic":
            return {"x-api-key": key}
        if self.kind == "azure":
            return {"api-key": key}
        return {"authorization": f"Bearer {key}"}


DEFAULT_UPSTREAMS = (
    Upstream(name="openai", kind="openai", base_url="https://api.openai.com/v1", api_key_env="OPENAI_API_KEY"),
    Upstream(
        name="anthropic",
        kind="anthropic",
        base_url="https://api.anthropic.com",
        api_key_env="ANTHROPIC_API_KEY",
    ),
)


class NoUpstream(LookupError):
    """No configured upstream serves the model."""


def select(upstreams: tuple[Upstream, ...], flavour: Flavour, model: str | None) -> Upstream:
    """First upstream speaking `flavour` that serves `model`."""
    for upstream in upstreams:
        if upstream.flavour == flavour and upstream.serves(model):
            return upstream
    raise NoUpstream(
        f"No upstream serves model {model!r} over the {flavour} API; add one to tokenops.toml [[gateway.upstreams]]"
    )
