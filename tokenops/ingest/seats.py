"""`tokenops import seats`: per-seat AI tool licences (Copilot, ChatGPT Team ...) -> seat licences.

Seats are part of what AI costs per person, beside metered tokens. A seat is keyed by person,
tool and start date, and re-importing a file replaces it (an end date added later updates it).

Header names are matched like the roster's (case-insensitive, punctuation ignored, first alias
wins; other columns ignored):

    person_id     required  person_id, person, email, employee_email, employee_id, id, user_id, user
    tool          required  tool, product, license, licence, seat, app
    monthly_cost  required  monthly_cost, monthly_cost_usd, cost_per_month, monthly_price, price_per_month, cost
    start_date    required  start_date, start, assigned_on, assigned (YYYY-MM-DD)
    end_date      optional  end_date, end, revoked_on, revoked (YYYY-MM-DD; empty while active)
    currency      optional  must be USD when present
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from tokenops.events import SeatLicense
from tokenops.ingest._rows import Batch
from tokenops.ingest._time import BadValue, Columns, Field, parse_money, person_key, read_csv
from tokenops.ingest.roster import CURRENCY, PERSON, check_usd, iso_date

FIELDS = (
    PERSON,
    Field("tool", ("product", "license", "licence", "seat", "app"), True),
    Field("monthly_cost", ("monthly_cost_usd", "cost_per_month", "monthly_price", "price_per_month", "cost"), True),
    Field("start_date", ("start", "assigned_on", "assigned"), True),
    Field("end_date", ("end", "revoked_on", "revoked")),
    CURRENCY,
)


def _seat(cols: Columns, row: Mapping[str, str]) -> SeatLicense:
    check_usd(cols, row)
    start = iso_date(cols, row, "start_date")
    if start is None:
        raise BadValue(f"{cols.label('start_date')} is empty; a seat is paid from a first day")
    end = iso_date(cols, row, "end_date")
    if end is not None and end < start:
        raise BadValue(f"{cols.label('end_date')} {end.isoformat()} is before {cols.label('start_date')} {start}")
    return SeatLicense(
        person_id=person_key(cols.need(row, "person_id")),
        tool=cols.need(row, "tool"),
        monthly_cost=parse_money(cols.need(row, "monthly_cost"), cols.label("monthly_cost")),
        start_date=start,
        end_date=end,
    )


class Seats:
    """The seat licences CSV."""

    name = "seats"
    description = "AI seat licences CSV: person, tool, monthly cost (USD), start date, end date"
    patterns: tuple[str, ...] = ("*.csv", "*.csv.gz")

    def read(self, path: Path) -> Iterator[Batch]:
        """Stream the file's seats."""
        yield from read_csv(path, FIELDS, _seat)


IMPORTER = Seats()
