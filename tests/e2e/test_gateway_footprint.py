"""A gateway process serves and records calls without loading the analytics stack (pyarrow, numpy, pandas).

Those libraries are ~50 MB of a process's memory; a gateway nobody opens the dashboard on must
not carry them. The pages still work: they load them on their first request.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import openai
import pytest
from starlette.applications import Starlette

from tests.e2e.test_gateway_crash import _free_port, _start
from tests.factories import event
from tests.store.conftest import fresh_database
from tokenops.gateway.keys import KeyStore
from tokenops.store import open_ledger

HEAVY = ("/pyarrow/", "/numpy/", "/pandas/", "/opentelemetry/")
"""Shared libraries of the analytics stack (pyarrow and numpy load theirs; pandas and OpenTelemetry C parts)."""
DUCKDB = "/_duckdb."


def _loaded(pid: int, libraries: tuple[str, ...]) -> set[str]:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {lib for lib in libraries if lib in maps}


@pytest.fixture(params=["duckdb", "postgresql", "duckdb+quota", "postgresql+quota"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    quota = "#quota" if request.param.endswith("quota") else ""
    if request.param.startswith("duckdb"):
        yield str(tmp_path / "ledger.duckdb") + quota
        return
    with fresh_database() as dsn:
        open_ledger(dsn).close()  # migrated, as replicas find it (the first start translates the migrations)
        yield dsn + quota


def test_a_gateway_records_calls_without_the_analytics_stack(
    tmp_path: Path, fake_provider: tuple[Starlette, str], ledger_url: str
) -> None:
    """On DuckDB the process loads DuckDB and nothing of the analytics; a PostgreSQL replica not even DuckDB."""
    _, fake_url = fake_provider
    ledger_url, quota = ledger_url.removesuffix("#quota"), ledger_url.endswith("#quota")
    if quota:  # in-process counters are restored from the ledger at start: without Arrow too
        with open_ledger(ledger_url) as seed:
            seed.record_events([event("earlier", team="search", user=None, ts=datetime.now(UTC))])
    config = tmp_path / "tokenops.toml"
    config.write_text(
        f'ledger = "{ledger_url}"\ndata_dir = "{tmp_path / "state"}"\n'
        f'[[gateway.upstreams]]\nname = "fake"\nkind = "openai"\nbase_url = "{fake_url}/v1"\n'
        'api_key_env = "FAKE_OPENAI_KEY"\n'
        + (
            '[[guard.quotas]]\nname = "team-month"\nscope = "team"\nperiod = "month"\nmax_usd = "1000"\n'
            if quota
            else ""
        )
    )
    _, key = KeyStore(tmp_path / "state" / "keys.sqlite").create(user="ana", team="search")
    port = _free_port()
    proc = _start(config, port, tmp_path / "gateway.log")
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key)
        for i in range(30):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"hi {i}"}])
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "stream"}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "tokenops_requests_total{" in metrics
        heavy = HEAVY if ledger_url.endswith(".duckdb") else (*HEAVY, DUCKDB)
        assert _loaded(proc.pid, heavy) == set(), f"a gateway-only process loaded {_loaded(proc.pid, heavy)}"
        # the dashboard API still works, loading what it needs on first use
        page = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert page.json() == {"status": "ok"}
    finally:
        proc.terminate()
        proc.wait(30)
    with open_ledger(ledger_url) as ledger:
        rows = ledger.query_rows(
            "SELECT count(*) AS n, count(*) FILTER (WHERE team = 'search' AND user_id = 'ana' AND NOT unpriced) "
            "AS attributed, sum(cost_total) > 0 AS priced FROM usage_events"
        )
    assert [(int(str(r["n"])), int(str(r["attributed"])), r["priced"]) for r in rows] == [(31 + quota, 31, True)]
