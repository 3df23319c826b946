"""The `tokenops` command: one module per command group, assembled here."""

from __future__ import annotations

import typer

from tokenops.cli import (
    budgets,
    demo,
    evals,
    events,
    export,
    imports,
    keys,
    migrate,
    price,
    reconcile,
    report,
    serve,
    users,
)

app = typer.Typer(
    name="tokenops",
    help="Know what your LLM spend buys, and keep it under control.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)
app.command("demo")(demo.demo)
app.command("serve")(serve.serve)
app.command("price")(price.price)
app.command("import")(imports.import_)
app.command("migrate")(migrate.migrate)
app.command("reconcile")(reconcile.reconcile)
app.add_typer(events.app, name="events")
app.add_typer(report.app, name="report")
app.add_typer(keys.app, name="keys")
app.add_typer(budgets.app, name="budgets")
app.add_typer(export.app, name="export")
app.add_typer(users.app, name="users")
app.add_typer(evals.app, name="eval")


def main() -> None:
    """Entry point of the `tokenops` script."""
    app()


__all__ = ["app", "main"]
