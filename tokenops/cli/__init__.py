"""The `tokenops` command: one module per command group, imported only when its command runs.

`tokenops serve` should not load the report, import and demo code (and their libraries) into a
gateway process, so the group below resolves a command name to its module on demand; `--help`
still lists every command.
"""

from __future__ import annotations

import importlib

import typer
from typer import _click as click  # typer ships its own click; its group API is typed with it
from typer.core import TyperGroup

COMMANDS: dict[str, tuple[str, str]] = {
    # name: (module, attribute); a Typer attribute is a command group, a function one command
    "demo": ("tokenops.cli.demo", "demo"),
    "serve": ("tokenops.cli.serve", "serve"),
    "price": ("tokenops.cli.price", "price"),
    "import": ("tokenops.cli.imports", "import_"),
    "migrate": ("tokenops.cli.migrate", "migrate"),
    "reconcile": ("tokenops.cli.reconcile", "reconcile"),
    "events": ("tokenops.cli.events", "app"),
    "report": ("tokenops.cli.report", "app"),
    "keys": ("tokenops.cli.keys", "app"),
    "budgets": ("tokenops.cli.budgets", "app"),
    "export": ("tokenops.cli.export", "app"),
    "users": ("tokenops.cli.users", "app"),
    "eval": ("tokenops.cli.evals", "app"),
}


def load_command(name: str) -> click.Command:
    """The click command behind `tokenops NAME`, importing its module."""
    module, attribute = COMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    if isinstance(target, typer.Typer):
        command: click.Command = typer.main.get_group(target)
    else:
        single = typer.Typer()
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """A command group whose subcommands are imported when first looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        if cmd_name not in self.commands:
            self.commands[cmd_name] = load_command(cmd_name)
        return self.commands[cmd_name]


app = typer.Typer(
    name="tokenops",
    cls=LazyGroup,
    help="Know what your LLM spend buys, and keep it under control.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _root() -> None:
    """Know what your LLM spend buys, and keep it under control."""


def main() -> None:
    """Entry point of the `tokenops` script."""
    app()


__all__ = ["app", "main"]
