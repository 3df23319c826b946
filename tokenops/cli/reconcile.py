"""`tokenops reconcile`: what tokenops metered against what the providers reported and billed."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from tokenops.analytics.reconcile import Window, reconcile_table, totals
from tokenops.analytics.reconcile import reconcile as reconcile_rows
from tokenops.cli.common import (
    ConfigOption,
    LedgerOption,
    SinceOption,
    UntilOption,
    make_filters,
    reading,
    settings_from,
)
from tokenops.cli.output import Format, FormatOption, emit
from tokenops.web.responses import decimal_text

TABLE_COLUMNS = {
    "day": "day",
    "provider": "provider",
    "model": "model",
    "metered_calls": "calls",
    "metered_cost": "metered",
    "unpriced_calls": "unpriced",
    "unattributed_cost": "unattributed",
    "token_gap": "token gap",
    "provider_cost": "billed or list",
    "basis": "basis",
    "gap": "gap",
    "gap_pct": "gap %",
    "captured_pct": "captured %",
}
"""Columns of the table view (csv and json have them all), and their headings."""


def reconcile(
    since: SinceOption = None,
    until: UntilOption = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider (openai, anthropic ...).")] = None,
    fmt: FormatOption = Format.table,
    config: ConfigOption = None,
    ledger: LedgerOption = None,
) -> None:
    """Per day and model: metered spend vs the providers' usage and cost reports, and the gap.

    Import the providers' reports first (`tokenops import openai-usage|openai-costs|anthropic-usage|anthropic-costs`).
    The gap is billed (or, without a bill, usage at list price) minus metered; unpriced and
    unattributed metered spend are shown apart.
    """
    settings = settings_from(config, ledger=ledger)
    filters = make_filters(since=since, until=until)
    window = Window(start=filters.start, end=filters.end, provider=provider)
    with reading(settings) as store:
        table = reconcile_table(store, window)
        summary = totals(reconcile_rows(store, window))
    if fmt is not Format.table:
        emit(table, fmt)
        return
    shown = table.select(list(TABLE_COLUMNS)).rename_columns(list(TABLE_COLUMNS.values()))
    emit(shown, fmt, title="reconciliation: metered vs provider reports (USD)")
    captured = f"{summary.captured_pct}%" if summary.captured_pct is not None else "n/a"
    Console().print(
        f"metered ${decimal_text(summary.metered_cost)} · provider ${decimal_text(summary.provider_cost)} · "
        f"gap ${decimal_text(summary.gap)} · captured {captured} · {summary.unpriced_calls:,} unpriced calls · "
        f"unattributed ${decimal_text(summary.unattributed_cost)}",
        highlight=False,
    )
