"""`tokenops import roster`: an HR roster CSV -> people with the loaded hourly cost of their time.

The loaded hourly cost (salary plus overheads, in USD) is what turns hours saved into money, so
a row without one, or with a negative one, is rejected rather than stored as $0. People are a
replace table: re-importing a roster updates rates, teams and roles in place.

Header names are matched case-insensitively, ignoring spaces and punctuation ("Hourly Cost
(USD)" is `hourly_cost_usd`); when a file has several aliases of one field, the first alias
listed wins. Other columns (salary, manager ...) are ignored.

    person_id           required  person_id, person, email, employee_email, employee_id, id, user_id, user
    team                required  team, department, dept, group
    loaded_hourly_cost  required  loaded_hourly_cost, loaded_hourly_cost_usd, loaded_rate, hourly_cost,
                                  hourly_cost_usd, cost_per_hour, hourly_rate, rate
    name                optional  name, full_name, employee_name, display_name
    role                optional  role, title, job_title, position
    start_date          optional  start_date, hire_date, started_on, start (YYYY-MM-DD)
    currency            optional  must be USD when present
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path

from tokenops.events import Person
from tokenops.ingest._rows import Batch
from tokenops.ingest._time import BadValue, Columns, Field, parse_money, person_key, read_csv

PERSON = Field("person_id", ("person", "email", "employee_email", "employee_id", "id", "user_id", "user"), True)
"""Who a row is about; shared with the seat licences CSV."""

CURRENCY = Field("currency")

FIELDS = (
    PERSON,
    Field("team", ("department", "dept", "group"), True),
    Field(
        "loaded_hourly_cost",
        (
            "loaded_hourly_cost_usd",
            "loaded_rate",
            "hourly_cost",
            "hourly_cost_usd",
            "cost_per_hour",
            "hourly_rate",
            "rate",
        ),
        True,
    ),
    Field("name", ("full_name", "employee_name", "display_name")),
    Field("role", ("title", "job_title", "position")),
    Field("start_date", ("hire_date", "started_on", "start")),
    CURRENCY,
)


def iso_date(cols: Columns, row: Mapping[str, str], name: str) -> date | None:
    """An optional YYYY-MM-DD date (HR systems export ISO dates; anything else is ambiguous)."""
    text = cols.get(row, name)
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadValue(f"{cols.label(name)} is {text!r}, expected a date as YYYY-MM-DD") from None


def check_usd(cols: Columns, row: Mapping[str, str]) -> None:
    """Costs are USD; a row in another currency is refused, not silently mis-valued."""
    currency = cols.get(row, CURRENCY.name)
    if currency is not None and currency.upper() != "USD":
        raise BadValue(f"{cols.label(CURRENCY.name)} is {currency!r}; tokenops values time in USD, convert first")


def _person(cols: Columns, row: Mapping[str, str]) -> Person:
    check_usd(cols, row)
    return Person(
        person_id=person_key(cols.need(row, "person_id")),
        team=cols.need(row, "team"),
        loaded_hourly_cost=parse_money(cols.need(row, "loaded_hourly_cost"), cols.label("loaded_hourly_cost")),
        name=cols.get(row, "name"),
        role=cols.get(row, "role"),
        start_date=iso_date(cols, row, "start_date"),
    )


class Roster:
    """The HR roster CSV."""

    name = "roster"
    description = "HR roster CSV: person, team, loaded hourly cost (USD), name, role, start date"
    patterns: tuple[str, ...] = ("*.csv", "*.csv.gz")

    def read(self, path: Path) -> Iterator[Batch]:
        """Stream the roster's people."""
        yield from read_csv(path, FIELDS, _person)


IMPORTER = Roster()
