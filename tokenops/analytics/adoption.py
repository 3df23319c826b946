"""Who uses AI and how evenly: spend and calls across people, for the organisation and per team.

A few heavy users and many idle seats is the usual shape of early adoption; the numbers here
say how far along an organisation is: the share of the top 5 users, the people who made no call,
and the Gini coefficient (0 when everyone spends the same, towards 1 when one person spends it
all). Everyone in `people` counts, with zero when they made no call; users seen in calls but
missing from `people` count too, in the team their calls name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

import pyarrow as pa

from tokenops.analytics.spend import Filters
from tokenops.store import Ledger

TOP = 5
"""How many of the heaviest users `top_cost_share` covers."""
_SHARE = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class Adoption:
    """How AI use is spread across the people of one scope."""

    scope: str
    """`all` or a team."""
    people: int
    """People in the scope."""
    active_people: int
    """People who made at least one call."""
    people_without_use: int
    """People who made no call in the period."""
    calls: int
    """Calls made by the scope's people."""
    cost: Decimal
    """Their priced spend, USD."""
    top_cost_share: Decimal | None
    """Share of the spend made by the 5 heaviest spenders (0.82 = 82%); None at $0."""
    top_calls_share: Decimal | None
    """Share of the calls made by the 5 heaviest callers; None without calls."""
    cost_gini: Decimal | None
    """Gini coefficient of spend per person (zeros included); None at $0."""
    calls_gini: Decimal | None
    """Gini coefficient of calls per person; None without calls."""
    without_use: tuple[str, ...]
    """person_id of everyone who made no call."""


def gini(values: Sequence[Decimal]) -> Decimal | None:
    """Gini coefficient: mean absolute difference over twice the mean; None when everything is zero.

    With values sorted ascending and ranks i = 1..n: 2 x sum(i x v_i) / (n x sum(v)) - (n + 1) / n.
    """
    total = sum(values, Decimal(0))
    if not values or total == 0:
        return None
    n = len(values)
    ranked = sum((i * v for i, v in enumerate(sorted(values), start=1)), Decimal(0))
    return 2 * ranked / (n * total) - Decimal(n + 1) / n


def top_share(values: Sequence[Decimal], top: int = TOP) -> Decimal | None:
    """Share of the total held by the `top` largest values; None when the total is zero."""
    total = sum(values, Decimal(0))
    if total == 0:
        return None
    return sum(sorted(values, reverse=True)[:top], Decimal(0)) / total


def adoption(ledger: Ledger, filters: Filters | None = None) -> list[Adoption]:
    """Adoption for the whole organisation (`all`) then each team, over the calls `filters` select.

    A `team` filter keeps that team's people; `user` is ignored (a distribution needs everyone).
    """
    filters = filters or Filters()
    where, params = replace(filters, team=None, user=None).where()
    rows = ledger.query_rows(
        f"""
        WITH usage AS (
            SELECT user_id, min(team) AS team, coalesce(sum(cost_total), 0) AS cost, count(*) AS calls
            FROM usage_events WHERE {where} AND user_id IS NOT NULL GROUP BY user_id
        )
        SELECT p.person_id, p.team, coalesce(u.cost, 0) AS cost, coalesce(u.calls, 0) AS calls
        FROM people AS p LEFT JOIN usage AS u ON u.user_id = p.person_id
        UNION ALL
        SELECT u.user_id AS person_id, u.team, u.cost, u.calls
        FROM usage AS u LEFT JOIN people AS p ON p.person_id = u.user_id
        WHERE p.person_id IS NULL
        """,
        params,
    )
    people = [
        (
            str(r["person_id"]),
            None if r["team"] is None else str(r["team"]),
            Decimal(str(r["cost"])),
            int(str(r["calls"])),
        )
        for r in rows
    ]
    if filters.team is not None:
        people = [p for p in people if p[1] == filters.team]
    teams = sorted({team for _, team, _, _ in people if team is not None})
    scopes = [("all", people)] + [(t, [p for p in people if p[1] == t]) for t in teams]
    return [_scope(name, members) for name, members in scopes]


def _scope(name: str, members: list[tuple[str, str | None, Decimal, int]]) -> Adoption:
    costs = [cost for _, _, cost, _ in members]
    calls = [Decimal(n) for _, _, _, n in members]
    idle = tuple(sorted(person for person, _, _, n in members if n == 0))
    return Adoption(
        scope=name,
        people=len(members),
        active_people=len(members) - len(idle),
        people_without_use=len(idle),
        calls=int(sum(calls, Decimal(0))),
        cost=sum(costs, Decimal(0)),
        top_cost_share=_round(top_share(costs)),
        top_calls_share=_round(top_share(calls)),
        cost_gini=_round(gini(costs)),
        calls_gini=_round(gini(calls)),
        without_use=idle,
    )


def _round(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(_SHARE)


def adoption_table(rows: Sequence[Adoption]) -> pa.Table:
    """The adoption rows as a table for `emit` (the list of people without use stays in JSON)."""
    share = pa.decimal128(10, 4)
    schema = pa.schema(
        [
            ("scope", pa.string()),
            ("people", pa.int64()),
            ("active_people", pa.int64()),
            ("people_without_use", pa.int64()),
            ("calls", pa.int64()),
            ("cost", pa.decimal128(38, 12)),
            ("top_cost_share", share),
            ("top_calls_share", share),
            ("cost_gini", share),
            ("calls_gini", share),
        ]
    )
    return pa.Table.from_pylist(
        [{field: getattr(row, field) for field in schema.names} for row in rows],
        schema=schema,
    )
