"""`tokenops report cfo` on a small demo organisation: HTML figures equal the API's, and the PDF prints.

The PDF's pages are rasterised with pypdfium2, written as PNG files, and checked to hold ink.
"""

from __future__ import annotations

import dataclasses
import re
import struct
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium  # type: ignore[import-untyped]
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from tests.factories import event
from tokenops.analytics.maturity import maturity
from tokenops.analytics.spend import Filters
from tokenops.analytics.unit_economics import cost_per_outcome
from tokenops.analytics.yield_ import GroupYield, ai_yield
from tokenops.cli import app as cli
from tokenops.config import Settings
from tokenops.demo import generate_org, load_demo
from tokenops.store import DuckDBLedger
from tokenops.web import create_app
from tokenops.web.responses import decimal_text
from tokenops.web.users import user_store

MONTH = "2026-10"
START, END = "2026-10-01", "2026-11-01"
CHROMIUM = Path("/usr/bin/chromium")


@dataclasses.dataclass
class Demo:
    ledger: Path
    folder: Path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    folder = tmp_path_factory.mktemp("cfo")
    path = folder / "demo.duckdb"
    with DuckDBLedger(path) as ledger:
        load_demo(ledger, generate_org(7, scale=0.05))
        at = datetime(2026, 10, 12, 10, tzinfo=UTC)
        blocked = event("guard-x1", ts=at, workflow="refund_agent", model="gpt-4o", input_tokens=0, output_tokens=0)
        cheap = event("guard-d1", ts=at + timedelta(hours=1), workflow="ticket_triage", model="gpt-4o-mini")
        ledger.record_events(
            [
                dataclasses.replace(blocked, cost=None, status="blocked", error_type="tokenops_task_budget_exceeded"),
                dataclasses.replace(cheap, model_requested="gpt-4o"),
            ]
        )
    return Demo(path, folder)


def report(demo: Demo, name: str) -> Path:
    out = demo.folder / name
    args = ["report", "cfo", "--month", MONTH, "--out", str(out), "--ledger", str(demo.ledger)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def html(demo: Demo) -> str:
    return report(demo, "report.html").read_text()


@pytest.fixture(scope="module")
def pdf(demo: Demo) -> Path | None:
    """Printed before the API opens the ledger (one process may not open a DuckDB file two ways)."""
    return report(demo, "report.pdf") if CHROMIUM.exists() else None


@pytest.fixture(scope="module")
def api(demo: Demo, html: str, pdf: Path | None) -> Iterator[TestClient]:
    settings = Settings(ledger=str(demo.ledger), data_dir=demo.folder / "state")
    user_store(settings).create("cfo", "viewer", password="report-password")
    with DuckDBLedger(demo.ledger) as ledger, TestClient(create_app(settings, ledger)) as client:
        client.post("/signin", data={"name": "cfo", "password": "report-password"})
        yield client


def figures(html: str, key: str) -> list[str]:
    return re.findall(rf'data-figure="{key}" data-value="([^"]*)"', html)


def test_the_months_spend_equals_the_api(html: str, api: TestClient) -> None:
    month = {"start": START, "end": END}
    summary = api.get("/api/summary", params=month).json()
    assert figures(html, "total") == [summary["cost"]]
    assert figures(html, "unpriced") == [str(summary["unpriced_events"])]
    assert summary["unpriced_events"] > 0 and 'data-callout="unpriced"' in html
    previous = api.get("/api/summary", params={"start": "2026-09-01", "end": START}).json()
    change = (Decimal(summary["cost"]) - Decimal(previous["cost"])) / Decimal(previous["cost"])
    assert Decimal(figures(html, "change")[0]) == change
    teams = api.get("/api/spend", params={**month, "by": "team"}).json()["rows"]
    assert figures(html, "team_cost") == [r["cost"] for r in teams]
    workflows = api.get("/api/spend", params={**month, "by": "workflow"}).json()["rows"]
    assert figures(html, "workflow_cost") == [r["cost"] for r in workflows[:8]]


def test_cost_per_completed_task_and_guardrail_savings(html: str, api: TestClient) -> None:
    guard = api.get("/api/budgets", params={"start": START, "end": END}).json()["guardrails"]["totals"]
    assert (guard["blocked"], guard["downgraded"]) == (1, 1)
    assert figures(html, "guard_saving") == [guard["saving"]] and Decimal(guard["saving"]) > 0
    top = re.search(r'<tr data-workflow="([^"]+)">', html)
    assert top is not None
    ledger: DuckDBLedger = api.app.state.ledger  # type: ignore[attr-defined]
    runs = ledger.query_rows(
        """SELECT e.task_run_id, sum(e.cost_total) AS cost, bool_or(e.unpriced) AS unknown
           FROM usage_events e JOIN task_runs r USING (task_run_id)
           WHERE e.workflow = ? AND r.status = 'completed' AND e.ts >= ? AND e.ts < ? GROUP BY 1""",
        [top.group(1), datetime(2026, 10, 1), datetime(2026, 11, 1)],
    )
    priced = [Decimal(str(r["cost"])) for r in runs if not r["unknown"]]
    row = html[top.start() : html.index("</tr>", top.start())]
    assert figures(row, "cost_per_completed") == [str((sum(priced, Decimal(0)) / len(priced)).normalize())]


def test_the_value_section_shows_what_the_analytics_say(html: str, api: TestClient) -> None:
    """Yield with its interval, cost per outcome, maturity and savings come from the same functions as the API."""
    assert 'data-section="value"' in html and 'class="pending"' not in html
    ledger: DuckDBLedger = api.app.state.ledger  # type: ignore[attr-defined]
    assert figures(html, "rung") == [maturity(ledger).level]
    whole = ai_yield(ledger, "all").rows[0]
    if isinstance(whole, GroupYield):
        assert figures(html, "hours_saved") == [decimal_text(whole.hours_saved)]
        assert f"{whole.hours_saved_low:,.0f} to {whole.hours_saved_high:,.0f} h" in html
    else:
        assert "No estimate" in html
    month = Filters(start=datetime(2026, 10, 1, tzinfo=UTC), end=datetime(2026, 11, 1, tzinfo=UTC))
    expected = [r for r in cost_per_outcome(ledger, "workflow", month).to_pylist() if r["cost_per_outcome"]][:3]
    assert figures(html, "cost_per_outcome") == [decimal_text(r["cost_per_outcome"]) for r in expected]
    assert len(figures(html, "saving")) <= 3
    assert "http://" not in html and "https://" not in html and "<script" not in html


def _png(pixels: np.ndarray, path: Path) -> None:
    height, width, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y, :, :3].tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def test_the_pdf_has_one_or_two_pages_with_ink(demo: Demo, pdf: Path | None) -> None:
    if pdf is None:
        pytest.skip("Chromium is not installed: `make test` installs it (apt-get install chromium)")
    document = pdfium.PdfDocument(pdf)
    try:
        assert 1 <= len(document) <= 2
        for index in range(len(document)):
            pixels = document[index].render(scale=1, rev_byteorder=True).to_numpy()
            png = demo.folder / f"page-{index + 1}.png"
            _png(pixels, png)
            assert png.read_bytes()[:4] == b"\x89PNG"
            ink = (pixels[:, :, :3] < 200).any(axis=2).mean()
            assert ink > 0.01, (index, ink)  # text and a chart, not a blank page
    finally:
        document.close()


def test_bad_month_and_output_are_refused(demo: Demo) -> None:
    runner = CliRunner()
    bad = runner.invoke(cli, ["report", "cfo", "--month", "2026-13", "--out", "x.pdf", "--ledger", str(demo.ledger)])
    assert bad.exit_code == 2 and "is not YYYY-MM" in bad.output
    wrong = runner.invoke(cli, ["report", "cfo", "--month", MONTH, "--out", "x.docx", "--ledger", str(demo.ledger)])
    assert wrong.exit_code == 2 and "must end in .pdf or .html" in wrong.output
