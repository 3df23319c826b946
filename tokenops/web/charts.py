"""Charts drawn on the server as inline SVG: no script, no CDN, readable with JavaScript off.

A chart is a pure function of rows to SVG text. Every mark carries a `<title>` (the browser's
own tooltip) and the chart states what it holds in `data-` attributes (series, points, exact
total), so the numbers can be checked against the JSON API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from html import escape

from tokenops.web.html import money
from tokenops.web.responses import decimal_text

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f")
OTHER = "(other teams)"
NO_TEAM = "(no team)"
_W, _H, _LEFT, _BOTTOM, _TOP = 920, 260, 64, 24, 8


def _day(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _nice_max(top: Decimal) -> Decimal:
    """A round axis maximum at or above `top` (1, 2 or 5 times a power of ten)."""
    if top <= 0:
        return Decimal(1)
    exponent = top.adjusted()
    for step in (1, 2, 5, 10):
        candidate = Decimal(step).scaleb(exponent)
        if candidate >= top:
            return candidate
    return Decimal(10).scaleb(exponent)  # pragma: no cover - the loop always returns


def series_by(rows: Sequence[Mapping[str, object]], key: str, *, keep: int = 7) -> dict[str, dict[date, Decimal]]:
    """Daily cost per `key` value, the `keep` biggest by total and the rest folded into one series."""
    totals: dict[str, Decimal] = {}
    for row in rows:
        name = str(row[key]) if row.get(key) is not None else NO_TEAM
        totals[name] = totals.get(name, Decimal(0)) + Decimal(str(row["cost"]))
    ranked = sorted(totals, key=lambda n: (-totals[n], n))
    kept = set(ranked[:keep]) if len(ranked) > keep + 1 else set(ranked)
    series: dict[str, dict[date, Decimal]] = {n: {} for n in ranked if n in kept}
    if len(kept) < len(ranked):
        series[OTHER] = {}
    for row in rows:
        name = str(row[key]) if row.get(key) is not None else NO_TEAM
        target = series[name if name in kept else OTHER]
        day = _day(row["period"])
        target[day] = target.get(day, Decimal(0)) + Decimal(str(row["cost"]))
    return series


def stacked_bars(series: Mapping[str, Mapping[date, Decimal]], *, label: str) -> str:
    """Daily stacked bars (one colour per series) with a dollar axis and a legend."""
    days = sorted({d for points in series.values() for d in points})
    if not days:
        return '<p class="empty">No spend in this range.</p>'
    span = (days[-1] - days[0]).days + 1
    day_totals = {d: sum((p.get(d, Decimal(0)) for p in series.values()), Decimal(0)) for d in days}
    top = _nice_max(max(day_totals.values()))
    plot_w, plot_h = _W - _LEFT - 8, _H - _BOTTOM - _TOP
    bar_w = plot_w / span
    marks: list[str] = []
    for index, (name, points) in enumerate(series.items()):
        colour = PALETTE[index % len(PALETTE)]
        for day, cost in sorted(points.items()):
            below = sum((series[n].get(day, Decimal(0)) for n in list(series)[:index]), Decimal(0))
            y0 = _TOP + plot_h - float(below / top) * plot_h
            height = float(cost / top) * plot_h
            x = _LEFT + (day - days[0]).days * bar_w
            marks.append(
                f'<rect class="bar" x="{x:.1f}" y="{y0 - height:.1f}" width="{max(bar_w - 1, 1):.1f}" '
                f'height="{height:.2f}" fill="{colour}" data-series="{escape(name)}" data-day="{day.isoformat()}" '
                f'data-cost="{decimal_text(cost)}"><title>{day.isoformat()} {escape(name)}: '
                f"{escape(money(cost))}</title></rect>"
            )
    axis = []
    for i in range(5):
        value = top * i / 4
        y = _TOP + plot_h - plot_h * i / 4
        axis.append(
            f'<line x1="{_LEFT}" x2="{_W - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(money(value))}</text>'
        )
    step = max(1, span // 6)
    for offset in range(0, span, step):
        x = _LEFT + offset * bar_w + bar_w / 2
        day = date.fromordinal(days[0].toordinal() + offset)
        axis.append(f'<text x="{x:.1f}" y="{_H - 6}" text-anchor="middle">{day.strftime("%b %d")}</text>')
    total = sum(day_totals.values(), Decimal(0))
    legend = "".join(
        f'<li><span class="swatch" style="background:{PALETTE[i % len(PALETTE)]}"></span>{escape(name)}</li>'
        for i, name in enumerate(series)
    )
    return (
        f'<figure class="chart" data-series="{len(series)}" data-points="{len(marks)}" '
        f'data-total="{decimal_text(total)}"><svg viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="{escape(label)}">{"".join(axis)}{"".join(marks)}</svg>'
        f'<figcaption><ul class="legend">{legend}</ul></figcaption></figure>'
    )
