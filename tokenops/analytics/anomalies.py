"""Spend anomalies: a seasonal robust baseline per series, incidents, what drove them, webhook alerts.

The online core (`seasonal_median`, `robust_scale`, `past_quantile`) lives in
`tokenops.analytics.detectors`, which also configures it for raw series of any kind (`surprise`,
scored on the Numenta Anomaly Benchmark by `bench/nab`). This module is its hourly-spend
configuration:

- expected value: the median of the same hour of week over the last four weeks;
- robust z: the residual over 1.4826 x the median absolute residual of the recent past (MAD),
  on sqrt(spend) so that quiet and busy hours are comparable (spend is a compound count);
- an hour is an anomaly when it is far above expected and either a volume outlier (also well
  above the busiest normal hour) or, for a workflow, a cost-per-call outlier (`Sensitivity`).

On the ledger, hourly spend per team / workflow / model / user is scored; consecutive anomalous
hours of one series make one `Incident`, which says how far above expected it was and which
sub-series drove it.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal, TypedDict, get_args

import httpx
import numpy as np

from tokenops.analytics.detectors import past_quantile, robust_scale, seasonal_median
from tokenops.store import Ledger
from tokenops.store.rows import utc_naive

log = logging.getLogger(__name__)

SeriesDimension = Literal["team", "workflow", "model", "user"]
SERIES_DIMENSIONS: tuple[str, ...] = get_args(SeriesDimension)
_COLUMN = {"team": "team", "workflow": "workflow", "model": "model", "user": "user_id"}
_DRILL = {
    "team": ("workflow", "model"),
    "workflow": ("model", "user"),
    "model": ("workflow", "team"),
    "user": ("workflow", "model"),
}
"""The two dimensions an incident of each dimension is broken down by to name its driver."""
WEEK_HOURS = 168

# ---------------------------------------------------------------------------------------------
# hourly spend on the ledger


@dataclass(frozen=True, slots=True)
class Sensitivity:
    """When an hour of spend is an anomaly: far above expected, and either a volume or a unit-cost outlier."""

    ratio: float = 1.5
    """Spend over expected spend (median of the same hour of week)."""
    min_excess_share: float = 0.02
    """Excess over expected, as a share of the series' typical daily spend."""
    z: float = 6.0
    """Volume test: robust z of sqrt(spend) over the seasonal baseline..."""
    busiest: float = 3.0
    """...and spend above this multiple of the busiest normal hour (99th percentile of active hours)..."""
    busiest_hours: int = 6 * WEEK_HOURS
    """...of this many past hours (six weeks: last month's month-end is in it)."""
    unit_z: float = 6.0
    """Unit-cost test: robust z of log(cost per call) against the past week's hours..."""
    min_calls: int = 5
    """...in an hour with at least this many calls."""
    cycles: int = 4
    """Weeks of the same hour of week the baseline takes the median of."""


@dataclass(frozen=True, slots=True)
class HourlySpend:
    """Spend and calls per hour of every series of one dimension, zero-filled."""

    hours: np.ndarray
    """datetime64[h] start of each hour, ascending."""
    keys: tuple[str, ...]
    """Series names (dimension values; NULL is '(none)')."""
    spend: np.ndarray
    """Priced USD, float, shape (keys, hours)."""
    calls: np.ndarray
    """Priced calls, shape (keys, hours)."""


def hourly_spend(ledger: Ledger, by: str, start: datetime, end: datetime, *, team: str | None = None) -> HourlySpend:
    """Priced spend and calls per hour and value of `by` over [start, end), of one team's calls if given."""
    column = _series_column(by)
    scope, scope_params = _scope(team)
    table = ledger.query(
        f"""
        SELECT date_trunc('hour', ts) AS hour, COALESCE({column}, '(none)') AS series,
               CAST(sum(cost_total) AS DOUBLE) AS cost, count(*) AS calls
        FROM usage_events WHERE ts >= ? AND ts < ? AND cost_total IS NOT NULL {scope}
        GROUP BY 1, 2
        """,
        [utc_naive(start), utc_naive(end), *scope_params],
    )
    first = np.datetime64(utc_naive(start), "h")
    hours = np.arange(first, np.datetime64(utc_naive(end - timedelta(microseconds=1)), "h") + 1)
    series = table.column("series").to_pylist()
    keys = tuple(sorted(set(series)))
    spend = np.zeros((len(keys), len(hours)))
    calls = np.zeros((len(keys), len(hours)))
    if table.num_rows:
        cell = (
            np.searchsorted(np.array(keys), np.array(series)),
            (table.column("hour").to_numpy().astype("datetime64[h]") - first).astype(np.int64),
        )
        np.add.at(spend, cell, table.column("cost").to_numpy(zero_copy_only=False))
        np.add.at(calls, cell, table.column("calls").to_numpy(zero_copy_only=False))
    return HourlySpend(hours, keys, spend, calls)


@dataclass(frozen=True, slots=True)
class HourScores:
    """Baseline and tests of each hour of one series."""

    expected: np.ndarray
    """Expected USD (median of the same hour of week over past weeks)."""
    z: np.ndarray
    """Robust z of sqrt(spend) against sqrt(expected); 0 where there is no history."""
    unit_z: np.ndarray
    """Robust z of log(cost per call) against the past week's hours; 0 where not measurable."""
    volume: np.ndarray
    """Hours whose spend is a volume outlier (the unit-cost test aside)."""
    anomalous: np.ndarray
    """Hours that are an anomaly under the `Sensitivity`."""


def score_hours(
    spend: np.ndarray, calls: np.ndarray, sensitivity: Sensitivity = Sensitivity(), *, unit_test: bool = True
) -> HourScores:
    """Score hourly spend from the past only; nothing is anomalous before a week of history.

    `unit_test` is for series whose calls are alike (a workflow): in a team's, a model's or a
    person's series the cost per call moves whenever the mix of work does (month-end reports).
    """
    root = np.sqrt(spend)
    base = seasonal_median(root, WEEK_HOURS, sensitivity.cycles)
    residual = root - base
    window = WEEK_HOURS * sensitivity.cycles
    day_totals = np.convolve(spend, np.ones(24))[: len(spend)]
    typical = np.nan_to_num(seasonal_median(day_totals, 24, 28), nan=0.0)  # a day's spend, past 4 weeks
    floor = max(float(np.sqrt(typical.max() / 24)) * 0.05, 1e-9)
    scale = robust_scale(np.where((spend > 0) | (base > 0), residual, np.nan), window, 24, floor)
    z = np.nan_to_num(residual / scale, nan=0.0)
    busiest = past_quantile(np.where(spend > 0, spend, np.nan), sensitivity.busiest_hours, 24, 0.99)
    # cost per call against the past week's median, in units of one call's spread (busy hours weigh more)
    unit = np.where(calls >= sensitivity.min_calls, np.log(np.maximum(spend, 1e-12) / np.maximum(calls, 1)), np.nan)
    unit_residual = (unit - past_quantile(unit, WEEK_HOURS, 24, 0.5)) * np.sqrt(calls)
    unit_z = np.nan_to_num(unit_residual / robust_scale(unit_residual, WEEK_HOURS, 24, 0.05), nan=0.0)
    expected = np.nan_to_num(base, nan=0.0) ** 2
    volume = (z >= sensitivity.z) & (spend >= sensitivity.busiest * np.nan_to_num(busiest, nan=np.inf))
    anomalous = (
        (spend >= sensitivity.ratio * expected)
        & (spend - expected >= sensitivity.min_excess_share * typical)
        & (typical > 0)
        & (volume | (unit_test & (unit_z >= sensitivity.unit_z)))
    )
    return HourScores(expected, z, unit_z, volume, anomalous)


@dataclass(frozen=True, slots=True)
class Driver:
    """The sub-series that made most of an incident's excess spend."""

    values: tuple[tuple[str, str], ...]
    """(dimension, value) pairs, e.g. (("workflow", "triage"), ("model", "gpt-4o"))."""
    excess: Decimal
    """Its spend in the incident's hours minus its median over the same hours of past weeks."""
    share: Decimal
    """Its part of the incident's excess (0..1, two decimals)."""


@dataclass(frozen=True, slots=True)
class Incident:
    """Consecutive anomalous hours of one series: one alert."""

    dimension: str
    """`team`, `workflow`, `model` or `user`."""
    value: str
    """The series: which team, workflow, model or user."""
    start: datetime
    """First anomalous hour (UTC)."""
    end: datetime
    """End of the last anomalous hour (exclusive)."""
    actual: Decimal
    """Priced spend of the series in [start, end), exact."""
    expected: Decimal
    """Spend the baseline expected for those hours (to the micro-dollar)."""
    peak_z: float
    """Largest robust z of the spend in those hours."""
    unit_cost: bool
    """The cost per call jumped (not only the number of calls)."""
    driver: Driver | None
    """What made most of the excess, when known."""
    team: str | None = None
    """Only this team's calls were looked at (a team lead's view)."""

    @property
    def key(self) -> str:
        """Identity across runs: an incident that grows keeps its key, so it is alerted once."""
        return f"{self.team or '*'}:{self.dimension}:{self.value}:{self.start.isoformat()}"

    @property
    def excess(self) -> Decimal:
        """Actual minus expected spend."""
        return self.actual - self.expected

    @property
    def ratio(self) -> Decimal | None:
        """Actual over expected spend, None when nothing was expected."""
        return (self.actual / self.expected).quantize(Decimal("0.1")) if self.expected > 0 else None

    @property
    def text(self) -> str:
        """One line for a chat channel: what, when, how much, and what drove it."""
        day = self.start.strftime("%Y-%m-%d")
        span = f"{day} {self.start:%H:%M}-{self.end:%H:%M} UTC"
        if self.end - self.start > timedelta(hours=24) or self.end.date() != self.start.date():
            span = f"{self.start:%Y-%m-%d %H:%M} - {self.end:%Y-%m-%d %H:%M} UTC"
        times = f", {self.ratio}x" if self.ratio is not None else ""
        within = f" (team {self.team!r})" if self.team is not None and self.dimension != "team" else ""
        line = (
            f"tokenops anomaly: {self.dimension} {self.value!r}{within} spend {span} was {usd(self.actual)} "
            f"vs {usd(self.expected)} expected (+{usd(self.excess)}{times})"
        )
        if self.unit_cost:
            line += "; cost per call jumped"
        if self.driver is not None:
            what = " on ".join(f"{d} {v!r}" for d, v in self.driver.values)
            line += f"; {self.driver.share:.0%} of it from {what}"
        return line


def usd(amount: Decimal) -> str:
    """`$412`, `$41.20`, `$0.0612`: whole dollars when large, three significant digits when small."""
    if abs(amount) >= 100:
        return f"${amount:,.0f}"
    if abs(amount) >= 1:
        return f"${amount:,.2f}"
    return f"${float(amount):.3g}" if amount else "$0"


def find_incidents(
    ledger: Ledger,
    by: str = "team",
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    sensitivity: Sensitivity = Sensitivity(),
    team: str | None = None,
) -> list[Incident]:
    """Spend incidents of every series of `by` whose first hour is in [since, until), earliest first.

    Hours are scored from the weeks before them only, so `since` may be any hour: history is read
    from before it. `until` defaults to the end of the last complete hour of data, `since` to a
    week before `until`. `team` limits every series to that team's calls.
    """
    column = _series_column(by)
    first_data, last_data = _data_hours(ledger)
    end = _hour(until) if until is not None else last_data
    start = _hour(since) if since is not None else end - timedelta(days=7)
    lookback = timedelta(hours=max(sensitivity.busiest_hours, WEEK_HOURS * sensitivity.cycles, 24 * 29))
    history = max(start - lookback, min(first_data, start))  # hours before the first call are not zero spend
    data = hourly_spend(ledger, by, history, end, team=team)
    first = int((np.datetime64(utc_naive(start), "h") - data.hours[0]).astype(np.int64)) if len(data.hours) else 0
    found = []
    for key, spend, calls in zip(data.keys, data.spend, data.calls, strict=True):
        scores = score_hours(spend, calls, sensitivity, unit_test=by == "workflow")
        hours = np.flatnonzero(scores.anomalous[first:]) + first
        for run in np.split(hours, np.flatnonzero(np.diff(hours) > 1) + 1) if len(hours) else []:
            lo, hi = _when(data.hours[run[0]]), _when(data.hours[run[-1]]) + timedelta(hours=1)
            found.append(
                Incident(
                    dimension=by,
                    value=key,
                    start=lo,
                    end=hi,
                    actual=_spend(ledger, column, key, lo, hi, team),
                    expected=Decimal(repr(float(scores.expected[run].sum()))).quantize(Decimal("0.000001")),
                    peak_z=round(float(scores.z[run].max()), 1),
                    unit_cost=not bool(scores.volume[run].any()),
                    driver=None,
                    team=team,
                )
            )
    found = [dataclasses.replace(i, driver=_driver(ledger, i, sensitivity.cycles)) for i in found]
    return sorted(found, key=lambda i: (i.start, i.dimension, i.value))


def _driver(ledger: Ledger, incident: Incident, cycles: int) -> Driver | None:
    """The sub-series with the largest excess over its median of the same hours in past weeks."""
    column = _series_column(incident.dimension)
    a, b = _DRILL[incident.dimension]
    spans = [(incident.start - timedelta(weeks=k), incident.end - timedelta(weeks=k)) for k in range(cycles + 1)]
    sums = ", ".join(
        f"COALESCE(sum(cost_total) FILTER (WHERE ts >= ? AND ts < ?), 0) AS w{k}" for k in range(len(spans))
    )
    within = " OR ".join("(ts >= ? AND ts < ?)" for _ in spans)
    bounds = [utc_naive(t) for span in spans for t in span]
    scope, scope_params = _scope(incident.team)
    rows = ledger.query_rows(
        f"""
        SELECT COALESCE({_COLUMN[a]}, '(none)') AS a, COALESCE({_COLUMN[b]}, '(none)') AS b, {sums}
        FROM usage_events
        WHERE COALESCE({column}, '(none)') = ? AND cost_total IS NOT NULL AND ({within}) {scope}
        GROUP BY 1, 2
        """,
        [*bounds, incident.value, *bounds, *scope_params],
    )
    excess = {
        (str(r["a"]), str(r["b"])): Decimal(str(r["w0"]))
        - statistics.median(Decimal(str(r[f"w{k}"])) for k in range(1, len(spans)))
        for r in rows
    }
    if not excess or incident.excess <= 0:
        return None
    # the pair when it explains most of it, else the single dimension value that explains most
    candidates: dict[tuple[tuple[str, str], ...], Decimal] = {((a, va), (b, vb)): e for (va, vb), e in excess.items()}
    for (va, vb), e in excess.items():
        candidates[((a, va),)] = candidates.get(((a, va),), Decimal(0)) + e
        candidates[((b, vb),)] = candidates.get(((b, vb),), Decimal(0)) + e
    pair = max((k for k in candidates if len(k) == 2), key=lambda k: candidates[k])
    single = max((k for k in candidates if len(k) == 1), key=lambda k: candidates[k])
    values = pair if candidates[pair] >= incident.excess / 2 or candidates[pair] >= candidates[single] else single
    share = min(max(candidates[values] / incident.excess, Decimal(0)), Decimal(1)).quantize(Decimal("0.01"))
    return Driver(values, candidates[values], share)


def _spend(ledger: Ledger, column: str, value: str, start: datetime, end: datetime, team: str | None) -> Decimal:
    scope, scope_params = _scope(team)
    rows = ledger.query_rows(
        f"""
        SELECT COALESCE(sum(cost_total), 0) AS cost FROM usage_events
        WHERE COALESCE({column}, '(none)') = ? AND ts >= ? AND ts < ? {scope}
        """,
        [value, utc_naive(start), utc_naive(end), *scope_params],
    )
    return Decimal(str(rows[0]["cost"])).normalize()


def _scope(team: str | None) -> tuple[str, list[object]]:
    return ("AND team = ?", [team]) if team is not None else ("", [])


def _data_hours(ledger: Ledger) -> tuple[datetime, datetime]:
    """First hour with a call, and the end of the last complete hour."""
    row = ledger.query_rows("SELECT min(ts) AS first, max(ts) AS last FROM usage_events")[0]
    first, last = row["first"], row["last"]
    if not isinstance(first, datetime) or not isinstance(last, datetime):
        now = _hour(datetime.now(UTC))
        return now, now
    return _hour(first), _hour(last)


def _hour(t: datetime) -> datetime:
    aware = t if t.tzinfo else t.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _when(hour: np.datetime64) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(hours=int(hour.astype("datetime64[h]").astype(np.int64)))


def _series_column(by: str) -> str:
    if by not in SERIES_DIMENSIONS:
        raise ValueError(f"Unknown anomaly dimension {by!r}; choose from {', '.join(SERIES_DIMENSIONS)}")
    return _COLUMN[by]


# ---------------------------------------------------------------------------------------------
# alerts


class IncidentFields(TypedDict):
    """An incident as JSON: money as exact decimal strings, times ISO 8601 UTC."""

    key: str
    dimension: str
    value: str
    start: str
    end: str
    actual: str
    expected: str
    excess: str
    ratio: str | None
    peak_z: float
    unit_cost: bool
    driver: dict[str, str] | None
    driver_share: str | None
    team: str | None
    text: str


def incident_fields(incident: Incident) -> IncidentFields:
    """The structured part of an alert, and a row of the API answer."""
    driver = incident.driver
    return IncidentFields(
        key=incident.key,
        dimension=incident.dimension,
        value=incident.value,
        start=incident.start.isoformat().replace("+00:00", "Z"),
        end=incident.end.isoformat().replace("+00:00", "Z"),
        actual=_exact(incident.actual),
        expected=_exact(incident.expected),
        excess=_exact(incident.excess),
        ratio=None if incident.ratio is None else str(incident.ratio),
        peak_z=incident.peak_z,
        unit_cost=incident.unit_cost,
        driver=None if driver is None else dict(driver.values),
        driver_share=None if driver is None else str(driver.share),
        team=incident.team,
        text=incident.text,
    )


def _exact(amount: Decimal) -> str:
    return format(amount.normalize(), "f")


@dataclass
class IncidentWebhook:
    """Posts each incident once to a Slack-compatible webhook (`{"text": ...}` plus `"tokenops"` fields).

    Remembers the keys it delivered, so calling `send` again with a grown incident (same series,
    same first hour) posts nothing; a failed post is logged and retried on the next `send`.
    """

    url: str
    """Incoming-webhook URL."""
    timeout_s: float = 5.0
    """Per post."""
    transport: httpx.BaseTransport | None = None
    """For tests and proxies."""
    sent: set[str] = field(default_factory=set)
    """Keys of the incidents already delivered."""

    def send(self, incidents: Iterable[Incident]) -> list[Incident]:
        """Post the incidents not yet delivered; returns those posted now."""
        posted = []
        with httpx.Client(timeout=self.timeout_s, transport=self.transport) as client:
            for incident in incidents:
                if incident.key in self.sent:
                    continue
                try:
                    response = client.post(
                        self.url, json={"text": incident.text, "tokenops": incident_fields(incident)}
                    )
                    response.raise_for_status()
                except httpx.HTTPError as exc:
                    log.error("anomaly webhook %s failed (%s); will retry: %s", self.url, exc, incident.text)
                    continue
                self.sent.add(incident.key)
                posted.append(incident)
        return posted
