"""Inline SVG for guardrails: spend against a limit (horizontal bars) and daily counts (stacked bars).

Like `tokenops.web.charts`, a chart is a pure function of rows to SVG text, every mark carries a
`<title>` tooltip and its exact value in `data-` attributes, and the figure says what it holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from html import escape

from tokenops.web.charts import PALETTE
from tokenops.web.responses import decimal_text

_W, _LEFT, _RIGHT, _ROW, _TOP = 920, 230, 120, 18, 18
_STATE_COLOUR = {"over": "#d64545", "warn": "#f0b429", "ok": "#4e79a7"}
_ACTION_COLOUR = {"blocked": "#d64545", "downgraded": "#f0b429"}


@dataclass(frozen=True, slots=True)
class LimitBar:
    """One subject's use of a limit."""

    label: str
    """Task run id or scope value."""
    share: Decimal
    """Share of the limit used (1 = at the limit)."""
    state: str
    """over, warn or ok (the colour)."""
    shown: str
    """What was used, for people: '$1.20 of $2.00'."""


def limit_bars(bars: Sequence[LimitBar], *, warn_at: Decimal, label: str) -> str:
    """One horizontal bar per subject, with the limit (100%) and the warning share marked."""
    if not bars:
        return '<p class="empty">Nothing counted against this limit in the period.</p>'
    top = max(Decimal(1), min(max(b.share for b in bars), Decimal(2)))  # beyond 2x the bar is clipped
    plot_w = _W - _LEFT - _RIGHT
    height = _TOP + _ROW * len(bars) + 6

    def x_of(share: Decimal) -> float:
        return _LEFT + float(min(share, top) / top) * plot_w

    marks = []
    for i, bar in enumerate(bars):
        y = _TOP + i * _ROW
        width = max(x_of(bar.share) - _LEFT, 1.0)
        clipped = " ▸" if bar.share > top else ""
        marks.append(
            f'<text x="{_LEFT - 6}" y="{y + 12}" text-anchor="end">{escape(bar.label[-34:])}</text>'
            f'<rect class="bar limit" x="{_LEFT}" y="{y + 2}" width="{width:.1f}" height="{_ROW - 5}" '
            f'fill="{_STATE_COLOUR.get(bar.state, PALETTE[0])}" data-subject="{escape(bar.label)}" '
            f'data-share="{decimal_text(bar.share)}" data-state="{escape(bar.state)}">'
            f"<title>{escape(bar.label)}: {escape(bar.shown)} ({bar.share * 100:.0f}% of the limit)</title></rect>"
            f'<text x="{_LEFT + width + 4:.1f}" y="{y + 12}">{bar.share * 100:.0f}%{clipped}</text>'
        )
    limit_x, warn_x = x_of(Decimal(1)), x_of(warn_at)
    guides = (
        f'<line class="limit-line" x1="{limit_x:.1f}" x2="{limit_x:.1f}" y1="{_TOP - 4}" y2="{height}" '
        'stroke="#102a43" stroke-width="1.5"/>'
        f'<text x="{limit_x:.1f}" y="{_TOP - 6}" text-anchor="middle">limit</text>'
        f'<line class="warn-line" x1="{warn_x:.1f}" x2="{warn_x:.1f}" y1="{_TOP - 4}" y2="{height}" '
        'stroke="#f0b429" stroke-dasharray="4 3"/>'
    )
    return (
        f'<figure class="chart limits" data-bars="{len(bars)}" data-over="{sum(b.state == "over" for b in bars)}">'
        f'<svg viewBox="0 0 {_W} {height}" role="img" aria-label="{escape(label)}">{guides}{"".join(marks)}</svg>'
        "</figure>"
    )


def daily_counts(series: Mapping[str, Mapping[date, int]], *, label: str) -> str:
    """Calls per day stacked by action (blocked, downgraded), with a count axis and a legend."""
    days = sorted({d for points in series.values() for d in points})
    if not days:
        return '<p class="empty">No calls were blocked or downgraded in this range.</p>'
    width, height, left, bottom, top_pad = 920, 200, 48, 24, 8
    span = (days[-1] - days[0]).days + 1
    totals = {d: sum(p.get(d, 0) for p in series.values()) for d in days}
    top = max(max(totals.values()), 1)
    plot_w, plot_h = width - left - 8, height - bottom - top_pad
    bar_w = plot_w / span
    marks = []
    for index, (name, points) in enumerate(series.items()):
        colour = _ACTION_COLOUR.get(name, PALETTE[index % len(PALETTE)])
        for day, count in sorted(points.items()):
            below = sum(series[n].get(day, 0) for n in list(series)[:index])
            bar_h = count / top * plot_h
            y = top_pad + plot_h - below / top * plot_h - bar_h
            x = left + (day - days[0]).days * bar_w
            marks.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{max(bar_w - 1, 1):.1f}" height="{bar_h:.2f}" '
                f'fill="{colour}" data-series="{escape(name)}" data-day="{day.isoformat()}" data-count="{count}">'
                f"<title>{day.isoformat()} {escape(name)}: {count:,} calls</title></rect>"
            )
    axis = []
    for i in range(3):
        y = top_pad + plot_h - plot_h * i / 2
        axis.append(
            f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{top * i / 2:,.0f}</text>'
        )
    for offset in range(0, span, max(1, span // 6)):
        day = date.fromordinal(days[0].toordinal() + offset)
        x = left + offset * bar_w + bar_w / 2
        axis.append(f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle">{day.strftime("%b %d")}</text>')
    legend = "".join(
        f'<li><span class="swatch" style="background:{_ACTION_COLOUR.get(n, PALETTE[i % len(PALETTE)])}"></span>'
        f"{escape(n)}</li>"
        for i, n in enumerate(series)
    )
    total = sum(totals.values())
    return (
        f'<figure class="chart" data-series="{len(series)}" data-points="{len(marks)}" data-total="{total}">'
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">{"".join(axis)}'
        f'{"".join(marks)}</svg><figcaption><ul class="legend">{legend}</ul></figcaption></figure>'
    )
