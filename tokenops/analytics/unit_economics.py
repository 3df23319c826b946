"""Cost per outcome, taken apart into the three levers that move it, and which lever moved.

    cost per outcome = (cost per token) x (tokens per task) x (tasks per outcome)
                     =      C / T       x       T / N       x       N / O

C is the priced cost of a group's calls in the period, T their tokens (input + output), N the
distinct task runs those calls belong to (failed and abandoned ones too: they are part of what an
outcome costs), O the outcomes in the period credited to the group (through their linked task
runs, or their own workflow/team/person). Unpriced calls are left out of C and T and counted
apart (`unpriced_events`, `unpriced_tokens`): the levers describe what is known, never a $0 guess.

Between two periods the change in cost per outcome is split over the three levers with the
symmetric Shapley decomposition: lever x's share is its change times the mean, over the six
orders in which the levers can change, of the product of the other two. In exact rationals the
three shares sum to the total change with no residual (`Fraction`); the Decimal columns are
rounded to 10^-12 USD by largest remainder so that they still add up to the rounded total.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal, get_args

import pyarrow as pa

from tokenops.analytics.kpis import EVERYTHING, MONEY, money, outcome_value_sql
from tokenops.analytics.run_totals import call_totals, has_run_totals
from tokenops.analytics.spend import EVENT_MEASURE, Filters
from tokenops.store import Ledger

OutcomeDimension = Literal["workflow", "team", "user", "customer"]
OUTCOME_DIMENSIONS: tuple[str, ...] = get_args(OutcomeDimension)
_PICO = Fraction(1, 10**12)
Factors = tuple[Fraction, Fraction, Fraction]
"""(cost per token, tokens per task, tasks per outcome)."""


@dataclass(frozen=True, slots=True)
class Levers:
    """A group's cost per outcome and its three factors over one period."""

    cost: Decimal
    """Priced cost C, USD."""
    tokens: int
    """Tokens T of the priced calls (input + output)."""
    task_runs: int
    """Distinct task runs N of the group's calls."""
    outcomes: int
    """Outcomes O credited to the group."""
    unpriced_events: int
    """Calls without a known price, left out of C and T."""
    unpriced_tokens: int
    """Their tokens."""

    @property
    def defined(self) -> bool:
        """All three factors exist (no zero denominator)."""
        return bool(self.tokens and self.task_runs and self.outcomes)

    def factors(self) -> Factors:
        """(cost per token, tokens per task, tasks per outcome), exact."""
        if not self.defined:
            raise ValueError("cost per outcome is undefined without tokens, task runs and outcomes")
        return (
            Fraction(self.cost) / self.tokens,
            Fraction(self.tokens, self.task_runs),
            Fraction(self.task_runs, self.outcomes),
        )

    def cost_per_outcome(self) -> Fraction | None:
        """C / O exactly (the product of the factors); None without outcomes."""
        return Fraction(self.cost) / self.outcomes if self.outcomes else None


def shapley(a: Factors, b: Factors) -> Factors:
    """Each factor's exact share of b0*b1*b2 - a0*a1*a2 (symmetric Shapley, sums exactly)."""
    shares = []
    for i in range(3):
        j, k = (i + 1) % 3, (i + 2) % 3
        # x_i moves first (2 orders: others at a), last (2: others at b), or in the middle (1 each)
        weight = 2 * a[j] * a[k] + 2 * b[j] * b[k] + a[j] * b[k] + b[j] * a[k]
        shares.append((b[i] - a[i]) * weight / 6)
    return shares[0], shares[1], shares[2]


def round_parts(total: Fraction, parts: Sequence[Fraction]) -> tuple[Decimal, list[Decimal]]:
    """Round to 10^-12 so the rounded parts still sum to the rounded total (largest remainder)."""

    def pico(x: Fraction) -> int:
        return round(x / _PICO)

    whole = pico(total)
    units = [pico(p) for p in parts]
    drift = whole - sum(units)
    order = sorted(range(len(parts)), key=lambda i: abs(parts[i] / _PICO - units[i]), reverse=True)
    for step in range(abs(drift)):
        units[order[step % len(order)]] += 1 if drift > 0 else -1
    return Decimal(whole).scaleb(-12), [Decimal(c).scaleb(-12) for c in units]


def _check(by: str) -> None:
    if by not in OUTCOME_DIMENSIONS:
        raise ValueError(f"Unknown dimension {by!r} for outcomes; choose from {', '.join(OUTCOME_DIMENSIONS)}")


def levers(ledger: Ledger, by: str = "workflow", filters: Filters = EVERYTHING) -> dict[object, Levers]:
    """The three levers of every group in a period (groups with calls or outcomes).

    N, the distinct runs per group, comes from the runs' stored totals where the ledger keeps them
    (`run_totals`): a DISTINCT over 10M calls is the costly part of this report.
    """
    _check(by)
    totals = has_run_totals(ledger)  # asked once for the calls' runs and the outcomes
    priced = "coalesce(sum(input_tokens + output_tokens) FILTER (WHERE NOT unpriced), 0)"
    measures = [("cost", EVENT_MEASURE["cost"]), ("tokens", priced)]
    measures += [(name, EVENT_MEASURE[name]) for name in ("unpriced_events", "unpriced_tokens")]
    calls = call_totals(ledger, [by], filters, measures, totals=totals)
    sql, value_params = outcome_value_sql([by], None, filters, totals=totals)
    outcomes = {row[by]: int(str(row["outcomes"])) for row in ledger.query_rows(sql, value_params)}
    result = {
        row[by]: Levers(
            cost=Decimal(str(row["cost"])),
            tokens=int(str(row["tokens"])),
            task_runs=int(str(row["task_runs"])),
            outcomes=outcomes.get(row[by], 0),
            unpriced_events=int(str(row["unpriced_events"])),
            unpriced_tokens=int(str(row["unpriced_tokens"])),
        )
        for row in calls
    }
    for key, count in outcomes.items():
        if key not in result:
            result[key] = Levers(Decimal(0), 0, 0, count, 0, 0)
    return result


def levers_from_kpis(table: pa.Table, by: str = "workflow") -> dict[object, Levers]:
    """The levers of every group, from `kpis(ledger, [by], filters=f)` rows: what `levers(ledger, by, f)` reads.

    A page showing both reads the calls once. The KPI rows carry every number the levers need (priced
    tokens are all tokens less the unpriced calls'), but not when `f` filters by model: KPIs then leave
    outcomes out, so such callers use `levers`.
    """
    _check(by)
    if "outcomes" not in table.column_names:
        raise ValueError("the KPI rows have no outcomes (grouped or filtered by model or feature): use levers()")
    rows = table.to_pylist()
    # `levers`' order: groups with calls by name (no group last), then groups with outcomes only (no group first)
    rows.sort(key=lambda r: (r["events"] == 0, (r[by] is None) == (r["events"] > 0), str(r[by])))
    return {
        row[by]: Levers(
            cost=Decimal(str(row["cost"])),
            tokens=int(row["input_tokens"]) + int(row["output_tokens"]) - int(row["unpriced_tokens"]),
            task_runs=int(row["task_runs"]),
            outcomes=int(row["outcomes"]),
            unpriced_events=int(row["unpriced_events"]),
            unpriced_tokens=int(row["unpriced_tokens"]),
        )
        for row in rows
    }


def _decimal(x: Fraction | None) -> Decimal | None:
    return None if x is None else Decimal(round(x / _PICO)).scaleb(-12)


def cost_per_outcome(ledger: Ledger, by: str = "workflow", filters: Filters = EVERYTHING) -> pa.Table:
    """Cost per outcome per group with its three levers, costliest outcome first."""
    return outcome_table(levers(ledger, by, filters), by)


def outcome_table(found: dict[object, Levers], by: str = "workflow") -> pa.Table:
    """`cost_per_outcome`'s table from levers already read (`levers` or `levers_from_kpis`)."""
    rows = []
    for key, lv in found.items():
        f = lv.factors() if lv.defined else None
        rows.append(
            {
                by: key,
                "cost": money(lv.cost),
                "tokens": lv.tokens,
                "task_runs": lv.task_runs,
                "outcomes": lv.outcomes,
                "cost_per_token": float(f[0]) if f else None,
                "tokens_per_task": float(f[1]) if f else None,
                "tasks_per_outcome": float(f[2]) if f else None,
                "cost_per_outcome": _decimal(lv.cost_per_outcome()),
                "unpriced_events": lv.unpriced_events,
                "unpriced_tokens": lv.unpriced_tokens,
            }
        )
    rows.sort(key=lambda r: (r["cost_per_outcome"] is None, -(r["cost_per_outcome"] or 0)))  # type: ignore[operator]
    return pa.Table.from_pylist(rows, schema=_outcome_schema(by))


def _outcome_schema(by: str) -> pa.Schema:
    return pa.schema(
        [pa.field(by, pa.string()), pa.field("cost", MONEY)]
        + [pa.field(n, pa.int64()) for n in ("tokens", "task_runs", "outcomes")]
        + [pa.field(n, pa.float64()) for n in ("cost_per_token", "tokens_per_task", "tasks_per_outcome")]
        + [pa.field("cost_per_outcome", MONEY)]
        + [pa.field(n, pa.int64()) for n in ("unpriced_events", "unpriced_tokens")]
    )


@dataclass(frozen=True, slots=True)
class Variance:
    """How a group's cost per outcome changed between two periods, lever by lever (exact)."""

    key: object
    """The group (a workflow name, a team ...)."""
    before: Levers
    """Period A."""
    after: Levers
    """Period B."""
    total: Fraction
    """Cost per outcome in B minus in A, USD."""
    price: Fraction
    """Share of the change due to cost per token (model mix, caching, discounts)."""
    volume: Fraction
    """Share due to tokens per task (prompt size, loops, retries)."""
    conversion: Fraction
    """Share due to tasks per outcome (failures, runs that produce nothing)."""


def outcome_variance(
    ledger: Ledger, a: Filters, b: Filters, by: str = "workflow"
) -> tuple[list[Variance], list[object]]:
    """Per group, which lever moved cost per outcome from period `a` to `b`; and the groups where it is undefined."""
    before, after = levers(ledger, by, a), levers(ledger, by, b)
    done, undefined = [], []
    for key in sorted(set(before) | set(after), key=str):
        x, y = before.get(key), after.get(key)
        if x is None or y is None or not (x.defined and y.defined):
            undefined.append(key)
            continue
        fa, fb = x.factors(), y.factors()
        price, volume, conversion = shapley(fa, fb)
        total = fb[0] * fb[1] * fb[2] - fa[0] * fa[1] * fa[2]
        done.append(Variance(key, x, y, total, price, volume, conversion))
    done.sort(key=lambda v: -abs(v.total))
    return done, undefined


def variance_table(variances: Sequence[Variance], by: str = "workflow") -> pa.Table:
    """Rows for people and JSON: both periods' cost per outcome and the three shares, in USD."""
    rows = []
    for v in variances:
        total, (price, volume, conversion) = round_parts(v.total, [v.price, v.volume, v.conversion])
        rows.append(
            {
                by: v.key,
                "cost_per_outcome_a": _decimal(v.before.cost_per_outcome()),
                "cost_per_outcome_b": _decimal(v.after.cost_per_outcome()),
                "change": total,
                "cost_per_token_effect": price,
                "tokens_per_task_effect": volume,
                "tasks_per_outcome_effect": conversion,
            }
        )
    fields = [pa.field(by, pa.string())] + [
        pa.field(n, MONEY)
        for n in ("cost_per_outcome_a", "cost_per_outcome_b", "change")
        + ("cost_per_token_effect", "tokens_per_task_effect", "tasks_per_outcome_effect")
    ]
    return pa.Table.from_pylist(rows, schema=pa.schema(fields))
