"""Settings: built once (from tokenops.toml and `TOKENOPS_*` variables) and passed down.

No module-level state: `load_settings()` is called by the CLI or by `create_app`, never at
import time.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

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
from tokenops.route.rules import RouteSettings

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
    duckdb_threads: int | None = Field(default=None, gt=0)
    """DuckDB worker threads of the serving process, on a DuckDB ledger (unset: one per core).

    Fewer leaves more of the machine to the gateway's event loop while dashboard queries run, at
    the price of slower dashboard queries (the gateway's own batches run on one thread anyway).
    `bench/gateway.py --systems tokenops,t1` compares `1` with the default (docs/gateway.md)."""


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


CacheScope = Literal["team", "key", "user", "org"]


SemanticCheck = Literal["number", "negation", "entity", "swap"]
SEMANTIC_CHECKS: tuple[SemanticCheck, ...] = ("number", "negation", "entity", "swap")


class SemanticCacheSettings(BaseModel):
    """`[cache.semantic]`: also answer paraphrases of cached requests (docs/cache.md); off unless enabled."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    """Look up similar requests after an exact-cache miss (loads a local embedding model, ~25 MB)."""
    threshold: float = Field(default=0.72, gt=0, le=1)
    """Least cosine similarity between two requests' last user messages (and their earlier turns) for a hit."""
    workflow_thresholds: dict[str, float] = Field(default_factory=dict)
    """Per-workflow thresholds by glob (first match wins), e.g. `{"faq-*" = 0.75, "billing" = 0.95}`."""
    margin: float = Field(default=0.015, ge=0, le=1)
    """No hit when the two best cached requests score within this of each other (ambiguous: no guess)."""
    checks: list[SemanticCheck] = Field(default_factory=lambda: list(SEMANTIC_CHECKS))
    """Vetoes of tokenops.cache.guards run on every candidate: changed numbers, negations, names, swapped words."""
    max_entries_per_scope: int = Field(default=1000, gt=0)
    """Newest requests kept per scope and request shape (the brute-force search is bounded by this)."""
    max_entries: int = Field(default=50_000, gt=0)
    """In-process index: oldest entries are dropped beyond this many."""
    threads: int = Field(default=1, gt=0)
    """onnxruntime threads per embedding (each lookup embeds one or two texts, ~10 ms each)."""


class CacheSettings(BaseModel):
    """`[cache]`: the exact response cache (docs/cache.md); off unless enabled."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    """Answer repeated identical requests from the cache (a `cached` ledger row at $0)."""
    scope: CacheScope = "team"
    """Who may share an answer: callers of the same team, key, user, or the whole org."""
    ttl_s: int = Field(default=3600, gt=0)
    """An answer is served for this long after the provider gave it."""
    max_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    """In-process backend: least recently used answers are evicted beyond this many bytes."""
    max_entry_bytes: int = Field(default=1024 * 1024, gt=0)
    """Larger answers are not cached."""
    redis_url: str | None = None
    """`redis://host:6379/0` to share the cache across gateway replicas; None keeps it in-process."""
    redis_prefix: str = "tokenops:cache:"
    """Prefix of every Redis key."""
    redis_timeout_s: float = Field(default=0.25, gt=0)
    """Longest wait for Redis; a slow or failed lookup is a bypass, never an error."""
    workflows: list[str] = Field(default_factory=lambda: ["*"])
    """Globs of the workflows (`X-Tokenops-Workflow`, '' when none) whose calls may be cached."""
    exclude_workflows: list[str] = Field(default_factory=list)
    """Globs of sensitive workflows never cached (wins over `workflows`)."""
    deterministic_only: bool = True
    """Cache only requests with `temperature: 0` (embeddings are always deterministic)."""
    sampled_workflows: list[str] = Field(default_factory=list)
    """Globs of workflows whose sampled requests are cached too (any one good answer will do, e.g. triage).
    Needed for APIs without a temperature, such as Anthropic Messages in current SDKs."""
    store_tool_calls: bool = False
    """Also cache answers that ask the client to call a tool (replayed with the same tool-call ids)."""
    semantic: SemanticCacheSettings = Field(default_factory=SemanticCacheSettings)
    """The semantic cache, consulted on an exact miss (needs `enabled` above too)."""


class DuckDBSettings(BaseModel):
    """`[duckdb]`: resources a DuckDB ledger may use while `tokenops import` writes to it."""

    model_config = ConfigDict(extra="forbid")

    memory_limit: str = "512MB"
    """DuckDB's buffer pool cap: with DuckDB's default (80% of RAM) an import's memory grows with the file.

    The cap bounds it (DuckDB spills to `<ledger>.tmp` when a query needs more), but DuckDB purges
    its allocators whenever it evicts a block, so a small cap costs time. A 5M-row LiteLLM import:
    256MB evicted written blocks all along (1.96M page faults, 22.7 s of system time, 169k rows/s,
    peak RSS 1,055 MB); 512MB 1.0M faults, 14.8 s, 205k rows/s, RSS 0.95-1.07 GB at the end of the
    file as at 256MB; 1GB 0.74M faults, 11.6 s, 217k rows/s, RSS still rising at 1.1 GB. What grows
    is DuckDB's cache of written blocks: RSS levels off where it reaches the cap."""
    threads: int | None = Field(default=1, gt=0)
    """DuckDB worker threads of the import (1: the importer's own parsers take the other cores).

    A ledger opened with one thread appended 1M LiteLLM rows in 1.7-1.8 s of CPU against 2.0-2.2 s
    with two, in no more time, and with a third of the page faults: parallel workers on 200,000-row
    batches cost more in merging their row groups than they save. Raise it for a machine with cores
    to spare."""


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
    cache: CacheSettings = Field(default_factory=CacheSettings)
    """The exact response cache."""
    route: RouteSettings = Field(default_factory=RouteSettings)
    """Model routing at the gateway (rules, learned router) and named SDK cascades."""
    duckdb: DuckDBSettings = Field(default_factory=DuckDBSettings)
    """DuckDB ledger resources for imports (memory cap, threads)."""

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
