"""Answering repeated requests without paying the provider again.

Owns the exact response cache: which requests may be cached (per workflow, deterministic
requests only by default, the caller's opt-out), the key of a normalised request scoped to a
tenant, the backends (a bounded in-process LRU, or Redis shared by replicas), and replaying a
stored answer as JSON or as the provider's own event stream. It does not talk to callers or
write the ledger: the gateway asks it before the guardrails (a hit spends nothing) and records
each hit as a `cached` row at $0 with the saving it made. The semantic cache (`semantic`, `embed`,
`guards`, `vectors`; measured by `evaluate`) answers paraphrases after an exact miss, when enabled.
"""

from tokenops.cache.backends import CacheBackend, CacheUnavailable, MemoryBackend, RedisBackend
from tokenops.cache.exact import HIT, MISS, Entry, ExactCache, Replay, entry_of, open_cache, replay
from tokenops.cache.keys import Ticket, cache_key

__all__ = [
    "HIT",
    "MISS",
    "CacheBackend",
    "CacheUnavailable",
    "Entry",
    "ExactCache",
    "MemoryBackend",
    "RedisBackend",
    "Replay",
    "Ticket",
    "cache_key",
    "entry_of",
    "open_cache",
    "replay",
]
