"""`tokenops keys`: virtual keys for applications and people calling through the gateway."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from tokenops.cli.common import ConfigOption, fail, settings_from
from tokenops.cli.output import Format, FormatOption, emit, rows_table
from tokenops.gateway.keys import Role
from tokenops.web.app import key_store

app = typer.Typer(help="Create, list and revoke gateway keys (stored hashed).", no_args_is_help=True)


@app.command()
def create(
    user: Annotated[str | None, typer.Option(help="User the key's spend is charged to.")] = None,
    team: Annotated[str | None, typer.Option(help="Team the key's spend is charged to.")] = None,
    name: Annotated[str | None, typer.Option(help="Label, e.g. the application using it.")] = None,
    admin: Annotated[
        bool, typer.Option("--admin", help="An admin key: may also change policies (`tokenops budgets`).")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Create a key; the secret is printed once and never stored."""
    if user is None and team is None:
        raise fail("give --user and/or --team so the key's spend can be attributed")
    role: Role = "admin" if admin else "app"
    info, secret = key_store(settings_from(config)).create(user=user, team=team, name=name, role=role)
    console = Console()
    console.print(f"created {role} key [bold]{info.key_id}[/bold] for user={user!r} team={team!r}")
    console.print("secret (shown once, store it now):", style="yellow")
    print(secret)


@app.command("list")
def list_keys(
    fmt: FormatOption = Format.table,
    config: ConfigOption = None,
) -> None:
    """List keys (ids and owners; secrets are never shown)."""
    keys = key_store(settings_from(config)).list()
    rows = [
        {
            "key_id": k.key_id,
            "user": k.user,
            "team": k.team,
            "name": k.name,
            "role": k.role,
            "created_at": k.created_at,
            "revoked": k.revoked,
        }
        for k in keys
    ]
    emit(rows_table(rows, empty_column="key_id"), fmt, title="gateway keys")


@app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="Key id, e.g. key_1a2b3c4d.")], config: ConfigOption = None
) -> None:
    """Refuse a key from now on."""
    if not key_store(settings_from(config)).revoke(key_id):
        raise fail(f"No active key {key_id!r}")
    Console().print(f"revoked {key_id}")
