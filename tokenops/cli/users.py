"""`tokenops users`: who may sign in to the dashboard (admin, team lead, viewer)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

from tokenops.cli.common import ConfigOption, fail, settings_from
from tokenops.cli.output import Format, FormatOption, emit, rows_table
from tokenops.web.users import USER_ROLES, user_store

app = typer.Typer(
    help="Create, list and remove dashboard users (passwords stored as scrypt hashes).", no_args_is_help=True
)


@app.command()
def create(
    name: Annotated[str, typer.Option(help="Sign-in name.")],
    role: Annotated[
        str,
        typer.Option(
            help=f"One of {', '.join(USER_ROLES)}: admin sees everything, "
            "a lead only their --team, a viewer reads every team."
        ),
    ] = "viewer",
    team: Annotated[str | None, typer.Option(help="The team a lead sees (leads only).")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input instead of generating one.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Create a user; a generated password is printed once and never stored."""
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    try:
        user, secret = user_store(settings_from(config)).create(name, role, team, password)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    console = Console()
    scope = f" of team {user.team!r}" if user.team else ""
    console.print(f"created {user.role} [bold]{user.name}[/bold]{scope}")
    if password is None:
        console.print("password (shown once, store it now):", style="yellow")
        print(secret)


@app.command("list")
def list_users(
    fmt: FormatOption = Format.table,
    config: ConfigOption = None,
) -> None:
    """List users (names, roles and teams; passwords are never shown)."""
    rows = [
        {"name": u.name, "role": u.role, "team": u.team, "created_at": u.created_at}
        for u in user_store(settings_from(config)).list()
    ]
    emit(rows_table(rows, empty_column="name"), fmt, title="dashboard users")


@app.command()
def remove(name: Annotated[str, typer.Argument(help="Sign-in name.")], config: ConfigOption = None) -> None:
    """Delete a user; their open sessions stop working at once."""
    if not user_store(settings_from(config)).remove(name):
        raise fail(f"No user {name!r}")
    Console().print(f"removed {name}")
