"""Why a call costs what it costs: a line-by-line breakdown of a `Priced` (or why it is `Unpriced`).

`breakdown` gives the structure (for JSON and tests), `explain` plain text lines and `render` a
`rich` table; `tokenops price` prints one of them. Nothing here prices anything: the numbers are
the `PriceLine`s `Pricer.price` computed, so the breakdown always adds up to the recorded cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from tokenops.events.usage import TokenUsage
from tokenops.pricing.calc import Priced, PriceLine, Unpriced

_ORDER = {
    "input_tokens": 0,
    "cache_read_tokens": 1,
    "cache_write_tokens": 2,
    "cache_write_1h_tokens": 3,
    "output_tokens": 4,
    "output_reasoning_tokens": 5,
}
_LABELS = {
    "cache_read_tokens": "cache read",
    "cache_write_1h_tokens": "cache write (1h)",
    "output_tokens": "output",
    "output_reasoning_tokens": "output (reasoning)",
    "requests": "request fee",
}


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the breakdown: count x rate = amount."""

    label: str
    """What is billed, e.g. `input (uncached)` or `cache write (1h)`."""
    count: Decimal
    """Units billed on this line."""
    unit: str
    """`tok`, `request` ..."""
    rate: Decimal
    """USD per `per_label`."""
    per_label: str
    """`MTok`, `K requests` ..."""
    note: str
    """Why this rate, e.g. `tier >200k`; empty at the base rate."""
    amount: Decimal
    """USD."""


@dataclass(frozen=True, slots=True)
class Explanation:
    """A call's cost, line by line, with where the prices came from."""

    model: str
    """Model as asked for."""
    usage: TokenUsage
    """Tokens priced."""
    rows: tuple[Row, ...]
    """Billed lines, input first; empty when unpriced."""
    total: Decimal | None
    """Sum of the rows; None when the call cannot be priced (never $0)."""
    source: str
    """`price_source` as recorded in the ledger."""
    notes: tuple[str, ...]
    """Discounts, GPU-hour rates, a batch price that is not listed, or why the call is unpriced."""


class Line(str):
    """A plain-text line that `rich` prints verbatim: `[[pricing.overrides]]` is not markup."""

    __slots__ = ()

    def __rich__(self) -> Text:
        return Text(str(self))


def breakdown(result: Priced | Unpriced, model: str, usage: TokenUsage) -> Explanation:
    """The structure behind `explain` and `render`."""
    if isinstance(result, Unpriced):
        return Explanation(model, usage, (), None, result.source, (result.reason,))
    lines = sorted(result.lines, key=lambda line: _ORDER.get(line.unit, len(_ORDER)))
    units = {line.unit for line in lines}
    rows = tuple(_row(line, usage, units) for line in lines)
    return Explanation(model, usage, rows, result.cost.total, result.source, result.notes)


def explain(result: Priced | Unpriced, model: str, usage: TokenUsage) -> list[str]:
    """What a call costs, one line per billed unit, then the total and the price source."""
    return [Line(text) for text in _text(breakdown(result, model, usage))]


def render(result: Priced | Unpriced, model: str, usage: TokenUsage) -> RenderableType:
    """`explain` as a `rich` table."""
    info = breakdown(result, model, usage)
    if info.total is None:
        return Group(Text(_header(info)), *(Text(f"unpriced: {note}", style="red") for note in info.notes))
    table = Table(show_edge=False)
    table.add_column("line")
    table.add_column("count", justify="right")
    table.add_column("rate", justify="right")
    table.add_column("", style="dim")
    table.add_column("amount", justify="right")
    for row in info.rows:
        table.add_row(
            Text(row.label),
            Text(f"{row.count:,} {row.unit}"),
            Text(f"{_rate(row.rate)}/{row.per_label}"),
            Text(row.note),
            Text(_usd(row.amount)),
        )
    table.add_row(Text("total", style="bold"), Text(""), Text(""), Text(""), Text(_usd(info.total), style="bold"))
    footer = [Text(f"source: {info.source}", style="dim")]
    footer += [Text(f"note: {note}") for note in info.notes]
    return Group(Text(_header(info)), table, *footer)


def _row(line: PriceLine, usage: TokenUsage, units: set[str]) -> Row:
    if line.unit == "input_tokens":
        label = "input (uncached)" if line.count < usage.input_tokens else "input"
    elif line.unit == "cache_write_tokens":
        label = "cache write (5m)" if "cache_write_1h_tokens" in units else "cache write"
    else:
        label = _LABELS.get(line.unit, line.unit.replace("_", " "))
    unit, per_label = _units(line)
    note = "" if line.tier_start is None else f"tier >{_tokens(line.tier_start)}"
    return Row(label, line.count, unit, line.rate, per_label, note, line.amount)


def _units(line: PriceLine) -> tuple[str, str]:
    if line.unit.endswith("_tokens"):
        return "tok", "MTok" if line.per == 1_000_000 else f"{line.per:,} tok"
    if line.unit == "requests":
        return "request", "K requests" if line.per == 1_000 else f"{line.per:,} requests"
    return line.unit.replace("_", " "), f"{line.per:,}"


def _text(info: Explanation) -> list[str]:
    out = [_header(info)]
    if info.total is None:
        out += [f"  unpriced: {note}" for note in info.notes]
        return out
    counts = [f"{row.count:,}" for row in info.rows]
    rates = [
        f"{row.unit} x {_rate(row.rate)}/{row.per_label}" + (f" ({row.note})" if row.note else "") for row in info.rows
    ]
    amounts = [_usd(row.amount) for row in info.rows] + [_usd(info.total)]
    label_w = max([len(row.label) for row in info.rows] + [len("total")])
    count_w = max([len(count) for count in counts] + [0])
    rate_w = max([len(rate) for rate in rates] + [0])
    amount_w = max(len(amount) for amount in amounts)
    for row, count, rate, amount in zip(info.rows, counts, rates, amounts, strict=False):
        out.append(f"  {row.label:<{label_w}}  {count:>{count_w}} {rate:<{rate_w}} = {amount:>{amount_w}}")
    out.append(f"  {'total':<{label_w}}  {'':>{count_w}} {'':<{rate_w}} = {amounts[-1]:>{amount_w}}")
    out.append(f"  source: {info.source}")
    out += [f"  note: {note}" for note in info.notes]
    return out


def _header(info: Explanation) -> str:
    usage = info.usage
    inside = [
        f"{count:,} {what}"
        for count, what in (
            (usage.cache_read_tokens, "cache read"),
            (usage.cache_write_tokens, "cache write"),
            (usage.cache_write_1h_tokens, "of them 1h"),
        )
        if count
    ]
    text = f"{info.model}: {usage.input_tokens:,} input tokens"
    if inside:
        text += f" ({', '.join(inside)})"
    text += f", {usage.output_tokens:,} output tokens"
    if usage.reasoning_tokens:
        text += f" ({usage.reasoning_tokens:,} reasoning)"
    return text


def _tokens(count: int) -> str:
    """`200000` -> `200k`, `199999` -> `199,999`."""
    if count % 1_000_000 == 0 and count:
        return f"{count // 1_000_000}M"
    if count % 1_000 == 0 and count:
        return f"{count // 1_000}k"
    return f"{count:,}"


def _usd(value: Decimal) -> str:
    """At least 6 decimals (micro-dollars), more when the amount needs them, at most 10."""
    return f"${value:,.{_places(value, 6, 10)}f}"


def _rate(value: Decimal) -> str:
    """At least 2 decimals: `$6.00`, `$0.075`, `$2.125`; at most 6 (GPU-hour rates can recur)."""
    return f"${value:,.{_places(value, 2, 6)}f}"


def _places(value: Decimal, minimum: int, maximum: int) -> int:
    exponent = value.normalize().as_tuple().exponent
    return min(max(minimum, -exponent), maximum) if isinstance(exponent, int) else minimum
