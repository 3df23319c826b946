"""DuckDB settings for bulk loading, shared by an import's ledger and its readers' own connections.

A module of its own so that importers can use them without loading DuckDB's ledger code.
"""

from __future__ import annotations

KEEP_FREED: dict[str, str | bool | int | float | list[str]] = {"allocator_bulk_deallocation_flush_threshold": "1TB"}
"""Freed memory is kept for the next batch, not handed back to the system.

By default DuckDB flushes its allocators (every arena purged, then `malloc_trim`) after a large
free: on a 2-core machine those page releases, their TLB shootdowns and the page faults of
reusing the memory were 12-14% of an import's CPU (LiteLLM 11.6 -> 10.2 s, FOCUS 24.4 -> 20.9 s
per million rows), while peak RSS at a million rows moved by less than 25 MB either way. A
server's ledger keeps DuckDB's default, so memory a large query freed goes back to the system.
"""

CACHE_BYTES = 64 << 20
"""What an import leaves in DuckDB's cache of the blocks it wrote: more is evicted after an append.

DuckDB keeps every block it wrote cached until `memory_limit` forces it out, and an append-only
import never reads them again once they are checkpointed: over 5M LiteLLM rows that cache grew
from ~60 to ~400 MB and RSS with it (784 -> 1,105 MB). Lowering `memory_limit` for the whole
import is no cure: DuckDB then evicts a block at a time during appends and flushes its allocators
on each eviction. So the cache of checkpointed blocks is shed in one go, once it is twice this
size (`DuckDBLedger(bulk_load=True)`): the slack of one size means one shed per ~64 MiB
written, not one per append.
"""
