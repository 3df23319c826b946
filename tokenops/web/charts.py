"""Charts drawn on the server as inline SVG: no script, no CDN, readable with JavaScript off.

A chart is a pure function of rows to SVG text. Every mark carries a `<title>` (the browser's
own tooltip) and the chart states what it holds in `data-` attributes (series, points, exact
total), so the numbers can be checked against the JSON API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


# --- horizontal bars, intervals, lines and a waterfall (the analytics pages) ------------------

_ROW, _LABEL_W, _VALUE_W = 20, 190, 150


def _short(label: str, keep: int = 30) -> str:
    return label if len(label) <= keep else label[: keep - 1] + "…"


def _num(value: Decimal | float) -> str:
    return decimal_text(value) if isinstance(value, Decimal) else repr(float(value))


@dataclass(frozen=True, slots=True)
class Bar:
    """One row of a horizontal bar chart: a label and one or more stacked parts."""

    label: str
    """Row label (a workflow, a model, a team ...)."""
    parts: tuple[tuple[str, Decimal | float], ...]
    """(series, value) pairs, stacked left to right; negative values count as zero."""
    shown: str
    """The row's value for people, written after the bar."""


def hbars(bars: Sequence[Bar], *, label: str, reference: float | None = None, ref_label: str = "") -> str:
    """Horizontal (stacked) bars, one row per label, with an optional reference line (e.g. break-even)."""
    if not bars:
        return '<p class="empty">Nothing to chart for these filters.</p>'
    series = list(dict.fromkeys(name for bar in bars for name, _ in bar.parts))
    totals = [sum(max(float(v), 0.0) for _, v in bar.parts) for bar in bars]
    top = float(_nice_max(Decimal(repr(max([*totals, reference or 0.0])))))
    plot_w = _W - _LABEL_W - _VALUE_W
    head = _TOP + (14 if reference is not None else 0)
    height = head + _TOP + _ROW * len(bars)
    marks: list[str] = []
    for i, bar in enumerate(bars):
        y, x = head + i * _ROW, float(_LABEL_W)
        marks.append(f'<text x="{_LABEL_W - 6}" y="{y + 14}" text-anchor="end">{escape(_short(bar.label))}</text>')
        for name, value in bar.parts:
            width = max(float(value), 0.0) / top * plot_w
            colour = PALETTE[series.index(name) % len(PALETTE)]
            marks.append(
                f'<rect class="bar" x="{x:.1f}" y="{y + 3}" width="{width:.2f}" height="{_ROW - 6}" fill="{colour}" '
                f'data-label="{escape(bar.label)}" data-series="{escape(name)}" data-value="{_num(value)}">'
                f"<title>{escape(bar.label)} {escape(name)}: {escape(_num(value))}</title></rect>"
            )
            x += width
        marks.append(f'<text x="{x + 4:.1f}" y="{y + 14}">{escape(bar.shown)}</text>')
    if reference is not None:
        rx = _LABEL_W + reference / top * plot_w
        marks.append(
            f'<line class="reference" x1="{rx:.1f}" x2="{rx:.1f}" y1="{head - 2}" y2="{height - 4}" stroke="#102a43" '
            f'stroke-dasharray="4 3"/><text x="{rx:.1f}" y="{head - 4}" text-anchor="middle">{escape(ref_label)}</text>'
        )
    legend = _legend(series) if len(series) > 1 else ""
    return (
        f'<figure class="chart hbars" data-bars="{len(bars)}" data-points="{sum(len(b.parts) for b in bars)}">'
        f'<svg viewBox="0 0 {_W} {height}" role="img" aria-label="{escape(label)}">{"".join(marks)}</svg>'
        f"{legend}</figure>"
    )


def _legend(series: Sequence[str]) -> str:
    items = "".join(
        f'<li><span class="swatch" style="background:{PALETTE[i % len(PALETTE)]}"></span>{escape(name)}</li>'
        for i, name in enumerate(series)
    )
    return f'<figcaption><ul class="legend">{items}</ul></figcaption>'


@dataclass(frozen=True, slots=True)
class Interval:
    """An estimate with its interval, or the reason there is none."""

    label: str
    """Row label."""
    point: Decimal | None
    """The estimate; None when the data cannot support one."""
    low: Decimal | None
    """Lower end of the interval."""
    high: Decimal | None
    """Upper end of the interval."""
    shown: str
    """The estimate and interval for people, or why there is none (e.g. 'insufficient data: ...')."""


def intervals(rows: Sequence[Interval], *, label: str, reference: Decimal | None = None, ref_label: str = "") -> str:
    """Each estimate as a dot with its interval drawn as an error bar; rows without one say so in words."""
    if not rows:
        return '<p class="empty">Nothing to estimate for these filters.</p>'
    values = [v for r in rows for v in (r.point, r.low, r.high) if v is not None]
    values += [reference] if reference is not None else []
    lo = min([Decimal(0), *values])
    hi = _nice_max(max([Decimal(0), *values]) - lo) + lo if values else Decimal(1)
    plot_w = _W - _LABEL_W - _VALUE_W - 130

    def x_of(value: Decimal) -> float:
        return _LABEL_W + float((value - lo) / (hi - lo)) * plot_w if hi > lo else float(_LABEL_W)

    head = _TOP + 14
    height = head + _TOP + _ROW * len(rows) + 14
    marks = [
        f'<line class="grid" x1="{x_of(lo):.1f}" x2="{x_of(lo):.1f}" y1="{head}" y2="{height - 18}"/>'
        f'<text x="{x_of(lo):.1f}" y="{height - 4}" text-anchor="middle">{_num(lo)}</text>'
        f'<text x="{x_of(hi):.1f}" y="{height - 4}" text-anchor="middle">{_num(hi)}</text>'
    ]
    if reference is not None:
        rx = x_of(reference)
        marks.append(
            f'<line class="reference" x1="{rx:.1f}" x2="{rx:.1f}" y1="{head - 2}" y2="{height - 18}" stroke="#102a43" '
            f'stroke-dasharray="4 3"/><text x="{rx:.1f}" y="{head - 4}" text-anchor="middle">'
            f"{escape(ref_label)}</text>"
        )
    for i, row in enumerate(rows):
        y = head + i * _ROW
        marks.append(f'<text x="{_LABEL_W - 6}" y="{y + 14}" text-anchor="end">{escape(_short(row.label))}</text>')
        if row.point is None:
            marks.append(
                f'<text class="insufficient" x="{_LABEL_W}" y="{y + 14}" data-label="{escape(row.label)}">'
                f"{escape(row.shown)}</text>"
            )
            continue
        low = row.low if row.low is not None else row.point
        high = row.high if row.high is not None else row.point
        x0, x1, xp, mid = x_of(low), x_of(high), x_of(row.point), y + _ROW / 2
        marks.append(
            f'<g class="estimate" data-label="{escape(row.label)}" data-point="{_num(row.point)}" '
            f'data-low="{_num(low)}" data-high="{_num(high)}"><title>{escape(row.label)}: {escape(row.shown)}</title>'
            f'<line class="whisker" x1="{x0:.1f}" x2="{x1:.1f}" y1="{mid}" y2="{mid}"/>'
            f'<line class="whisker" x1="{x0:.1f}" x2="{x0:.1f}" y1="{mid - 5}" y2="{mid + 5}"/>'
            f'<line class="whisker" x1="{x1:.1f}" x2="{x1:.1f}" y1="{mid - 5}" y2="{mid + 5}"/>'
            f'<circle class="point" cx="{xp:.1f}" cy="{mid}" r="4" fill="#102a43"/></g>'
            f'<text x="{_W - _VALUE_W - 120}" y="{y + 14}">{escape(row.shown)}</text>'
        )
    estimates = sum(r.point is not None for r in rows)
    return (
        f'<figure class="chart intervals" data-estimates="{estimates}" data-insufficient="{len(rows) - estimates}">'
        f'<svg viewBox="0 0 {_W} {height}" role="img" aria-label="{escape(label)}">{"".join(marks)}</svg></figure>'
    )


def lines(
    series: Mapping[str, Sequence[tuple[date, float]]],
    *,
    label: str,
    reference: float | None = None,
    ref_label: str = "",
) -> str:
    """One line per series over days (weekly points), with an optional horizontal reference line."""
    points = [(d, v) for values in series.values() for d, v in values]
    if not points:
        return '<p class="empty">No data points for these filters.</p>'
    first, last = min(d for d, _ in points), max(d for d, _ in points)
    span = max((last - first).days, 1)
    values = [v for _, v in points] + ([reference] if reference is not None else [])
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.1 or 0.1
    lo, hi = lo - pad, hi + pad
    plot_w, plot_h = _W - _LEFT - 40, _H - _BOTTOM - _TOP

    def xy(day: date, value: float) -> tuple[float, float]:
        return _LEFT + (day - first).days / span * plot_w, _TOP + plot_h - (value - lo) / (hi - lo) * plot_h

    marks = []
    for i in range(5):
        value = lo + (hi - lo) * i / 4
        y = xy(first, value)[1]
        marks.append(
            f'<line x1="{_LEFT}" x2="{_W - 40}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value:.0%}</text>'
        )
    if reference is not None:
        y = xy(first, reference)[1]
        marks.append(
            f'<line class="reference" x1="{_LEFT}" x2="{_W - 40}" y1="{y:.1f}" y2="{y:.1f}" stroke="#102a43" '
            f'stroke-dasharray="4 3"/><text x="{_W - 42}" y="{y - 4:.1f}" text-anchor="end">{escape(ref_label)}</text>'
        )
    for index, (name, values_of) in enumerate(series.items()):
        colour = PALETTE[index % len(PALETTE)]
        coords = [xy(d, v) for d, v in values_of]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        marks.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        marks += [
            f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}" data-series="{escape(name)}" '
            f'data-day="{d.isoformat()}" data-value="{v!r}"><title>{escape(name)} week of {d.isoformat()}: '
            f"{v:.1%}</title></circle>"
            for (x, y), (d, v) in zip(coords, values_of, strict=True)
        ]
    for offset in range(0, span + 1, max(1, span // 6)):
        day = date.fromordinal(first.toordinal() + offset)
        marks.append(f'<text x="{xy(day, lo)[0]:.1f}" y="{_H - 6}" text-anchor="middle">{day.strftime("%b %d")}</text>')
    return (
        f'<figure class="chart lines" data-series="{len(series)}" data-points="{len(points)}">'
        f'<svg viewBox="0 0 {_W} {_H}" role="img" aria-label="{escape(label)}">{"".join(marks)}</svg>'
        f"{_legend(list(series))}</figure>"
    )


def waterfall(start: tuple[str, Decimal], steps: Sequence[tuple[str, Decimal]], end: tuple[str, Decimal]) -> str:
    """A start value, the steps that move it (green down, red up) and the end value, as floating columns."""
    width, height, col = 560, 220, 100
    levels, running = [start[1]], start[1]
    for _, delta in steps:
        running += delta
        levels.append(running)
    top = _nice_max(max([*levels, end[1]]))
    plot_h = height - _BOTTOM - _TOP - 14

    def y_of(value: Decimal) -> float:
        return _TOP + 14 + plot_h - float(max(value, Decimal(0)) / top) * plot_h

    moves = [(name, levels[i], levels[i + 1], "down" if d < 0 else "up") for i, (name, d) in enumerate(steps)]
    columns = [(start[0], Decimal(0), start[1], "total"), *moves, (end[0], Decimal(0), end[1], "total")]
    colours = {"total": "#4e79a7", "down": "#59a14f", "up": "#e15759"}
    marks = []
    for i, (name, a, b, kind) in enumerate(columns):
        x = 40 + i * (col + 10)
        y0, y1 = y_of(max(a, b)), y_of(min(a, b))
        value = b - a
        marks.append(
            f'<rect class="bar step" x="{x}" y="{y0:.1f}" width="{col}" height="{max(y1 - y0, 1):.1f}" '
            f'fill="{colours[kind]}" data-step="{escape(name)}" data-value="{decimal_text(value)}">'
            f"<title>{escape(name)}: {escape(_signed(value, kind))}</title></rect>"
            f'<text x="{x + col / 2}" y="{y0 - 4:.1f}" text-anchor="middle">{escape(_signed(value, kind))}</text>'
            f'<text x="{x + col / 2}" y="{height - 6}" text-anchor="middle">{escape(name)}</text>'
        )
    return (
        f'<figure class="chart waterfall" data-steps="{len(columns)}">'
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="Waterfall">{"".join(marks)}</svg></figure>'
    )


def _signed(value: Decimal, kind: str) -> str:
    if kind == "total":
        return money(value)
    return ("+" if value >= 0 else "-") + money(abs(value))
