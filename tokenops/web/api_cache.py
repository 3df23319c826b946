"""The ledger as every page and `/api/...` read sees it: through the per-version read cache.

`cached_ledger(request)` wraps the app's ledger in a `tokenops.analytics.read_cache.CachedLedger`
for that request, so the same numbers asked for by several people (or by two sections of one page)
between two writes are computed once. Writes (ingest, outcomes, the gateway's ledger writer) keep
using `app.state.ledger` itself.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request

from tokenops.analytics.read_cache import CachedLedger, ReadCache
from tokenops.store import Ledger


def read_cache(app: Starlette) -> ReadCache:
    """The app's read cache, made on first use (one per process)."""
    cache: ReadCache = app.state.__dict__.setdefault("read_cache", ReadCache())
    return cache


def cached_ledger(request: Request) -> Ledger:
    """The app's ledger for this request's reads, answered from the cache while the ledger is unchanged.

    One view per request: every section of a page reads the same version of the ledger.
    """
    view: Ledger | None = request.scope.get(_SCOPE_KEY)
    if view is None:
        view = request.scope[_SCOPE_KEY] = CachedLedger(request.app.state.ledger, read_cache(request.app))
    return view


_SCOPE_KEY = "tokenops.cached_ledger"
