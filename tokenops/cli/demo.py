"""`tokenops demo`: a realistic organisation in a fresh ledger, served at once."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from starlette.routing import Mount

from tokenops.cli.common import settings_from
from tokenops.cli.serve import run_server
from tokenops.config import Settings
from tokenops.demo import generate_org, load_demo
from tokenops.gateway.upstream import Upstream
from tokenops.guard import Policies
from tokenops.store import DuckDBLedger
from tokenops.testing import create_fake_provider
from tokenops.web.app import key_store
from tokenops.web.users import user_store

# The demo has no provider keys and no network: its gateway calls a fake provider served by the
# same process, so every gateway feature can be tried against the demo ledger.
DEMO_PROVIDER = "/_demo_provider"


def build_demo(path: Path, *, seed: int, console: Console) -> dict[str, int]:
    """Generate the demo organisation into a new DuckDB file at `path`."""
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console, transient=True
    ) as progress:
        task = progress.add_task("generating the demo organisation", total=None)
        org = generate_org(seed, end=datetime.now(UTC).date())
        progress.update(task, description="loading the ledger", total=len(org.tables()), completed=0)
        with DuckDBLedger(path) as ledger:
            written = load_demo(ledger, org, progress=lambda name: progress.advance(task))
    console.print(
        f"demo organisation: {written.get('usage_events', 0):,} model calls, "
        f"{written.get('task_runs', 0):,} task runs, {written.get('people', 0)} people "
        f"in {time.perf_counter() - started:.1f} s -> {path}"
    )
    return written


def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Folder for the demo ledger and local state.")] = Path(
        "tokenops-demo"
    ),
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same organisation.")] = 7,
    fresh: Annotated[bool, typer.Option("--fresh", help="Regenerate even if a demo ledger exists.")] = False,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8787,
    serve: Annotated[bool, typer.Option(help="Serve after generating (--no-serve to only build).")] = True,
) -> None:
    """Generate a realistic demo organisation (60 people, 90 days) and serve it."""
    console = Console()
    ledger_path = directory / "tokenops.duckdb"
    if fresh or not ledger_path.exists():
        build_demo(ledger_path, seed=seed, console=console)
    else:
        console.print(f"reusing the demo ledger {ledger_path} (--fresh to regenerate)")
    if serve:
        settings = demo_settings(directory, ledger_path, host, port)
        _, key = key_store(settings).create(user="demo", team="engineering", name="tokenops demo")
        base = f"http://{host}:{port}"
        console.print(
            f"gateway: OpenAI base_url={base}/v1, Anthropic base_url={base}, api_key={key}\n"
            f"         (calls go to a built-in fake provider at {base}{DEMO_PROVIDER}; see docs/gateway.md)"
        )
        console.print(f"dashboard: {base}/ sign in as " + ", or ".join(demo_users(settings)))
        run_server(settings, console=console, mounts=[Mount(DEMO_PROVIDER, app=create_fake_provider())])


def demo_users(settings: Settings) -> list[str]:
    """A fresh admin and a support lead for the demo dashboard; returns 'name / password (role)' lines."""
    users = user_store(settings)
    shown = []
    for name, role, team in (("admin", "admin", None), ("support-lead", "lead", "support")):
        users.remove(name)  # new passwords on every start, printed once like the key
        _, password = users.create(name, role, team)
        shown.append(f"{name} / {password} ({role}{' of ' + team if team else ''})")
    return shown


DEMO_POLICIES = Policies.model_validate(
    {
        "task_budgets": [
            # the runaway refund loop in the demo data cost $130 in one run: this budget would have stopped it at $2
            {"name": "refund-run", "workflow": "refund_agent", "max_usd": "2.00", "on_exceed": "block"},
            {
                "name": "coding-run",
                "workflow": "coding_agent",
                "max_usd": "3.00",
                "on_exceed": "downgrade",
                "downgrade_to": "gpt-4.1-mini",
            },
            {"name": "contract-run", "workflow": "contract_review", "max_usd": "4.00", "on_exceed": "alert"},
        ],
        "quotas": [
            {"name": "team-monthly", "scope": "team", "period": "month", "max_usd": "400", "on_exceed": "alert"},
            {"name": "user-daily", "scope": "user", "period": "day", "max_usd": "25"},
        ],
        "iteration_caps": [{"workflow": "*_agent", "max_calls": 60}],
        "output_caps": [{"workflow": "ticket_triage", "max_output_tokens": 64}],
    }
)
"""Guardrails the demo server runs with, so the Budgets page and `tokenops budgets show` have something to show."""


def demo_settings(directory: Path, ledger_path: Path, host: str, port: int) -> Settings:
    """Settings of the demo server: its own state folder, upstreams pointing at the built-in fake provider."""
    base = f"http://{host}:{port}{DEMO_PROVIDER}"
    upstreams = [
        Upstream(name="demo-openai", kind="openai", base_url=f"{base}/v1"),
        Upstream(name="demo-anthropic", kind="anthropic", base_url=base),
    ]
    settings = settings_from(None, ledger=str(ledger_path), data_dir=directory / "state")
    return settings.model_copy(
        update={
            "server": settings.server.model_copy(update={"host": host, "port": port}),
            "gateway": settings.gateway.model_copy(update={"upstreams": upstreams}),
            "guard": DEMO_POLICIES,
        }
    )
