"""`tokenops budgets`: read and change a running server's guardrail policies through its admin API.

Changes apply on every replica within a second, without a restart, and survive restarts (they
are stored; `tokenops budgets reset` goes back to the config file's `[guard]` section).
"""

from __future__ import annotations

import json
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from tokenops.cli.common import ConfigOption, fail, settings_from

app = typer.Typer(
    help="Guardrail policies of a running server: task budgets, quotas, rate limits.", no_args_is_help=True
)

ServerOption = Annotated[
    str | None, typer.Option("--server", help="tokenops server URL (default: the config's [server] address).")
]
AdminKeyOption = Annotated[
    str,
    typer.Option(
        "--admin-key",
        envvar="TOKENOPS_ADMIN_KEY",
        help="An admin key (`tokenops keys create --admin`).",
        show_default=False,
    ),
]
WorkflowGlob = Annotated[str, typer.Option("--workflow", help="Workflow name or glob the policy covers.")]
MaxUsd = Annotated[Decimal | None, typer.Option("--max-usd", help="Dollar limit.")]
MaxTokens = Annotated[int | None, typer.Option("--max-tokens", help="Token limit (input + output).")]
WarnAt = Annotated[Decimal, typer.Option("--warn-at", help="Share of the limit that raises a warning and one alert.")]


def _client(server: str | None, admin_key: str, config: Path | None) -> httpx.Client:
    if server is None:
        settings = settings_from(config)
        server = f"http://{settings.server.host}:{settings.server.port}"
    return httpx.Client(base_url=server, headers={"authorization": f"Bearer {admin_key}"}, timeout=10)


def _call(client: httpx.Client, method: str, path: str, body: object = None) -> dict[str, Any]:
    try:
        response = client.request(method, path, json=body)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach the tokenops server at {str(client.base_url)!r}: {exc}") from exc
    try:
        data: dict[str, Any] = response.json()
    except json.JSONDecodeError:
        data = {"error": {"message": response.text}}
    if response.status_code >= 400:
        raise fail(f"{response.status_code}: {data.get('error', {}).get('message', response.text)}")
    return data


def _send(server: str | None, admin_key: str, config: Path | None, method: str, path: str, body: object = None) -> None:
    """One admin API request; print the policies in force it answers with."""
    with _client(server, admin_key, config) as client:
        _print(_call(client, method, path, body))


def _print(view: dict[str, Any]) -> None:
    origin = view["origin"]
    where = f"admin version {view['version']} saved by {view['saved_by']} at {view['saved_at']}"
    Console(stderr=True).print(f"policies in force: {where if origin == 'admin' else 'from the config file'}")
    typer.echo(json.dumps(view["policies"], indent=2))


def _limits(max_usd: Decimal | None, max_tokens: int | None, warn_at: Decimal) -> dict[str, Any]:
    if max_usd is None and max_tokens is None:
        raise fail("give --max-usd and/or --max-tokens")
    out: dict[str, Any] = {"warn_at": str(warn_at)}
    if max_usd is not None:
        out["max_usd"] = str(max_usd)
    if max_tokens is not None:
        out["max_tokens"] = max_tokens
    return out


@app.command()
def show(server: ServerOption = None, admin_key: AdminKeyOption = "", config: ConfigOption = None) -> None:
    """Print the policies in force (JSON) and where they came from."""
    _send(server, admin_key, config, "GET", "/api/admin/policies")


@app.command()
def task(
    name: Annotated[str, typer.Argument(help="Budget name (shown in refusals and alerts).")],
    max_usd: MaxUsd = None,
    max_tokens: MaxTokens = None,
    workflow: WorkflowGlob = "*",
    on_exceed: Annotated[str, typer.Option(help="block, downgrade or alert.")] = "block",
    downgrade_to: Annotated[str | None, typer.Option(help="Cheaper model for `downgrade`.")] = None,
    downgrade_at: Annotated[Decimal, typer.Option(help="Share of the budget after which calls downgrade.")] = Decimal(
        "0.8"
    ),
    warn_at: WarnAt = Decimal("0.8"),
    server: ServerOption = None,
    admin_key: AdminKeyOption = "",
    config: ConfigOption = None,
) -> None:
    """Add or replace a per-task-run budget (the total across every call of one task run)."""
    body = {
        "workflow": workflow,
        "on_exceed": on_exceed,
        "downgrade_to": downgrade_to,
        "downgrade_at": str(downgrade_at),
        **_limits(max_usd, max_tokens, warn_at),
    }
    _send(server, admin_key, config, "PUT", f"/api/admin/policies/task_budgets/{name}", body)


@app.command()
def quota(
    name: Annotated[str, typer.Argument(help="Quota name (unique).")],
    scope: Annotated[str, typer.Option(help="Counted per: org, key, user, team, customer, workflow or model.")],
    period: Annotated[str, typer.Option(help="day, week or month (resets at local midnight).")],
    max_usd: MaxUsd = None,
    max_tokens: MaxTokens = None,
    match: Annotated[str, typer.Option(help="Glob of the scope values covered.")] = "*",
    workflow: WorkflowGlob = "*",
    on_exceed: Annotated[str, typer.Option(help="block or alert.")] = "block",
    warn_at: WarnAt = Decimal("0.8"),
    server: ServerOption = None,
    admin_key: AdminKeyOption = "",
    config: ConfigOption = None,
) -> None:
    """Add or replace a quota per key, user, team, customer, workflow or model over a day, week or month."""
    body = {
        "scope": scope,
        "period": period,
        "match": match,
        "workflow": workflow,
        "on_exceed": on_exceed,
        **_limits(max_usd, max_tokens, warn_at),
    }
    _send(server, admin_key, config, "PUT", f"/api/admin/policies/quotas/{name}", body)


@app.command("rate-limit")
def rate_limit(
    name: Annotated[str, typer.Argument(help="Rate limit name (unique).")],
    scope: Annotated[str, typer.Option(help="Counted per: org, key, user, team, customer, workflow or model.")] = "key",
    rpm: Annotated[int | None, typer.Option("--rpm", help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option("--tpm", help="Tokens per minute.")] = None,
    match: Annotated[str, typer.Option(help="Glob of the scope values covered.")] = "*",
    workflow: WorkflowGlob = "*",
    server: ServerOption = None,
    admin_key: AdminKeyOption = "",
    config: ConfigOption = None,
) -> None:
    """Add or replace a requests/tokens-per-minute limit."""
    body = {"scope": scope, "match": match, "workflow": workflow, "requests_per_minute": rpm, "tokens_per_minute": tpm}
    _send(server, admin_key, config, "PUT", f"/api/admin/policies/rate_limits/{name}", body)


@app.command()
def remove(
    kind: Annotated[str, typer.Argument(help="task_budgets, quotas, rate_limits or escalations.")],
    name: Annotated[str, typer.Argument(help="Name of the entry.")],
    server: ServerOption = None,
    admin_key: AdminKeyOption = "",
    config: ConfigOption = None,
) -> None:
    """Remove one named policy."""
    _send(server, admin_key, config, "DELETE", f"/api/admin/policies/{kind.replace('-', '_')}/{name}")


@app.command()
def apply(
    file: Annotated[Path, typer.Argument(help="A TOML file with a [guard] section (or a JSON policy set).")],
    server: ServerOption = None,
    admin_key: AdminKeyOption = "",
    config: ConfigOption = None,
) -> None:
    """Replace the whole policy set with the one in FILE (validated by the server first)."""
    try:
        text = file.read_text()
        data = json.loads(text) if file.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as exc:
        raise fail(f"cannot read {str(file)!r}: {exc}") from exc
    policies = data.get("guard", data) if isinstance(data, dict) else data
    _send(server, admin_key, config, "PUT", "/api/admin/policies", policies)


@app.command()
def reset(server: ServerOption = None, admin_key: AdminKeyOption = "", config: ConfigOption = None) -> None:
    """Drop the admin's changes: the config file's [guard] policies apply again."""
    _send(server, admin_key, config, "DELETE", "/api/admin/policies")
