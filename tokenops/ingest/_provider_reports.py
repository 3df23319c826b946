"""What the OpenAI and Anthropic usage and cost report importers share.

Both providers page their admin reports the same way: a page holds time buckets, a bucket holds
result rows (one per group_by combination). A saved file is one page as a JSON document (pretty
printed or not), a JSON array of pages, or JSON Lines with one page per line. Each result row
becomes one record; a bad row is a `RowError` naming its line and JSON path
(`data[3].results[0].output_tokens`) and never drops the rows around it.

Line numbers: in JSON Lines a row's line is its page's line; in a pretty-printed document it is
the line where the row's object (or, for a bucket-level problem, the bucket's) starts, found by
`_object_lines` with one regex pass over the text, since `json` does not report positions.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tokenops.events import Cost, TokenUsage
from tokenops.ingest._rows import MAX_COUNT, Batch, Record, RowError, money_problem, open_text, too_many
from tokenops.pricing import Priced, Pricer

BATCH_ROWS = 5_000
"""Records handed to the ledger at a time."""

JsonPath = tuple[str | int, ...]


class Bad(ValueError):
    """A value that makes a row unusable; the message is the `RowError` reason."""


@dataclass(frozen=True, slots=True)
class Result:
    """One result row of a report bucket, with where it came from."""

    line: int
    """Line of the row in the file (see the module docstring)."""
    where: str
    """JSON path of the row, e.g. `data[3].results[0]`."""
    start: datetime
    """Bucket start (tz-aware UTC)."""
    end: datetime
    """Bucket end, exclusive."""
    fields: Mapping[str, Any]
    """The row as parsed (numbers with a fraction are `Decimal`, never float)."""

    @property
    def span(self) -> tuple[int, int]:
        """Bucket (start, end) in Unix seconds: the time part of a row's stable id."""
        return int(self.start.timestamp()), int(self.end.timestamp())


Span = Callable[[Mapping[str, Any], str], tuple[datetime, datetime]]
"""Reads a bucket's (start, end), raising `Bad` naming the JSON path when they are unusable."""
Convert = Callable[[Result], Record]
"""Turns one result row into a ledger record, raising `Bad` when it cannot."""


def read_report(path: Path, span: Span, convert: Convert) -> Iterator[Batch]:
    """Stream a saved report file as batches of records, every bad page, bucket or row named."""
    opened = open_text(path)
    with opened.text:
        batch = Batch()
        for page_line, where, page, lines in _pages(opened.text, str(path)):
            batch.rows += _page_rows(str(path), page_line, where, page, lines, span, convert, batch)
            if len(batch.records) >= BATCH_ROWS:
                batch.bytes_read = opened.position
                yield batch
                batch = Batch()
        batch.bytes_read = opened.position
        yield batch


def _page_rows(
    name: str,
    page_line: int,
    where: str,
    page: Mapping[str, Any] | RowError,
    lines: Mapping[JsonPath, int] | None,
    span: Span,
    convert: Convert,
    batch: Batch,
) -> int:
    """Read one page's rows into `batch` (records and errors); how many rows it counts for."""
    if isinstance(page, RowError):
        batch.errors.append(page)
        return 1
    count = 0
    for item in _results(name, page_line, where, page, lines, span):
        count += 1
        if isinstance(item, RowError):
            batch.errors.append(item)
            continue
        try:
            batch.records.append(checked(convert, item))
        except Bad as exc:
            batch.errors.append(RowError(name, item.line, str(exc)))
    return count


def checked(convert: Callable[[Result], Record], result: Result) -> Record:
    """`convert(result)`, raising `Bad` when its money does not fit the ledger (not a crashed import)."""
    record = convert(result)
    problem = money_problem(record)
    if problem:
        raise Bad(problem)
    return record


def line_rows(name: str, number: int, text: str | bytes | bytearray, span: Span, convert: Convert, batch: Batch) -> int:
    """Read one line of JSON Lines (a page) as `read_report` does, into `batch`; the rows it counts for."""
    if not isinstance(text, str):
        text = text.decode("utf-8")
    if not text.strip():
        return 0
    return _page_rows(name, *_page_of_line(text, number, name), span, convert, batch)


def is_json_lines(path: Path) -> bool:
    """Whether `read_report` reads the file as JSON Lines, one page per line (else as one document)."""
    opened = open_text(path)
    with opened.text:
        for line in opened.text:
            if line.strip():
                return _is_json_object(line)
    return False


def _pages(
    text: Any, name: str
) -> Iterator[tuple[int, str, Mapping[str, Any] | RowError, Mapping[JsonPath, int] | None]]:
    """(line, JSON path prefix, page or error, object start lines) for every page of the file."""
    first = ""
    head: list[str] = []
    for line in text:
        head.append(line)
        if line.strip():
            first = line
            break
    if not first:
        return
    if _is_json_object(first):  # JSON Lines (or a one-line document): one page per line
        number = len(head)
        yield _page_of_line(first, number, name)
        for line in text:
            number += 1
            if line.strip():
                yield _page_of_line(line, number, name)
        return
    document = "".join(head) + text.read()
    try:
        value = json.loads(document, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        yield exc.lineno, "", RowError(name, exc.lineno, _not_json(exc)), None
        return
    lines = _object_lines(document)
    if isinstance(value, list):
        for index, page in enumerate(value):
            prefix = f"[{index}]"
            yield lines.get((index,), 1), prefix, _page(page, name, lines.get((index,), 1), prefix), lines
    else:
        yield 1, "", _page(value, name, 1, ""), lines


def _is_json_object(line: str) -> bool:
    if not line.lstrip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        # a broken first line of JSON Lines is still JSON Lines if it does not end open
        return not line.rstrip().endswith(("{", "[", ","))


def _page_of_line(
    line: str, number: int, name: str
) -> tuple[int, str, Mapping[str, Any] | RowError, Mapping[JsonPath, int] | None]:
    try:
        value = json.loads(line, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        return number, "", RowError(name, number, _not_json(exc)), None
    return number, "", _page(value, name, number, ""), None


def _not_json(exc: json.JSONDecodeError) -> str:
    return f"not valid JSON: {exc.msg} at column {exc.colno} (a truncated or hand-edited page?); save the page again"


def _page(value: object, name: str, line: int, where: str) -> Mapping[str, Any] | RowError:
    label = where or "the page"
    if not isinstance(value, dict):
        return RowError(name, line, f"{label} is {shown(value)}, expected a report page object with a 'data' list")
    if value.get("object", "page") != "page":
        return RowError(name, line, f"{label} has object {value.get('object')!r}, expected 'page'")
    if not isinstance(value.get("data"), list):
        return RowError(
            name, line, f"{label} has no 'data' list of buckets; is this a saved usage or cost report page?"
        )
    return value


def _results(
    name: str,
    page_line: int,
    prefix: str,
    page: Mapping[str, Any],
    lines: Mapping[JsonPath, int] | None,
    span: Span,
) -> Iterator[Result | RowError]:
    root: JsonPath = _path_of(prefix)
    for b, bucket in enumerate(page["data"]):
        where = f"{prefix}.data[{b}]" if prefix else f"data[{b}]"
        bucket_line = lines.get((*root, "data", b), page_line) if lines is not None else page_line
        try:
            if not isinstance(bucket, dict):
                raise Bad(f"{where} is {shown(bucket)}, expected a bucket object")
            if bucket.get("object", "bucket") != "bucket":
                raise Bad(f"{where}.object is {bucket.get('object')!r}, expected 'bucket'")
            key = "results" if "results" in bucket else "result"  # some API reference samples say `result`
            rows = bucket.get(key)
            if not isinstance(rows, list):
                raise Bad(f"{where}.results is {shown(rows)}, expected a list of result rows")
            start, end = span(bucket, where)
        except Bad as exc:
            skipped = len(bucket.get("results") or ()) if isinstance(bucket, dict) else 0
            note = f" ({skipped} result rows in it skipped)" if skipped else ""
            yield RowError(name, bucket_line, f"{exc}{note}")
            continue
        for r, row in enumerate(rows):
            row_where = f"{where}.{key}[{r}]"
            line = lines.get((*root, "data", b, key, r), bucket_line) if lines is not None else page_line
            if not isinstance(row, dict):
                yield RowError(name, line, f"{row_where} is {shown(row)}, expected a result object")
            else:
                yield Result(line, row_where, start, end, row)


def _path_of(prefix: str) -> JsonPath:
    return (int(prefix[1:-1]),) if prefix else ()


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],:]')


def _object_lines(document: str) -> dict[JsonPath, int]:
    """Line where each object that is an array element starts, by its JSON path (a valid document)."""
    if "\n" not in document:
        return {}
    newlines = [m.start() for m in re.finditer("\n", document)]
    found: dict[JsonPath, int] = {}
    stack: list[list[Any]] = []  # [is_array, index or key, expecting_key]
    for match in _TOKEN.finditer(document):
        token = match.group()
        if token in "{[":
            if stack and stack[-1][0]:
                path = tuple(frame[1] for frame in stack)
                if token == "{":
                    found[path] = bisect.bisect_left(newlines, match.start()) + 1
            stack.append([token == "[", 0 if token == "[" else None, token == "{"])
        elif token in "}]":
            stack.pop()
        elif token == ",":
            if stack[-1][0]:
                stack[-1][1] += 1
            else:
                stack[-1][2] = True
        elif token == ":":
            stack[-1][2] = False
        elif stack and not stack[-1][0] and stack[-1][2]:
            stack[-1][1] = json.loads(token)
    return found


def shown(value: object) -> str:
    """A JSON value as the user wrote it (or what kind it is), for error messages."""
    if value is None:
        return "missing"
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "a list"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def whole(row: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> int:
    """A token or request count: a JSON integer >= 0 (absent is 0 when not `required`)."""
    value = row.get(key)
    if value is None:
        if required:
            raise Bad(f"{where}.{key} is missing, expected a whole number")
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise Bad(f"{where}.{key} is {shown(value)}, expected a whole number")
    if value < 0:
        raise Bad(f"{where}.{key} is {value}, expected a whole number >= 0")
    if value > MAX_COUNT:
        raise Bad(too_many(f"{where}.{key}", value))
    return value


def label(row: Mapping[str, Any], key: str, where: str) -> str | None:
    """An optional grouping field: a string or null."""
    value = row.get(key)
    if value is None or isinstance(value, str):
        return value
    raise Bad(f"{where}.{key} is {shown(value)}, expected a string or null")


def flag(row: Mapping[str, Any], key: str, where: str) -> bool | None:
    """An optional true/false field."""
    value = row.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise Bad(f"{where}.{key} is {shown(value)}, expected true, false or null")


def amount(value: object, where: str) -> Decimal:
    """A non-negative money amount from a JSON number or decimal string, exactly."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise Bad(f"{where} is {shown(value)}, expected a decimal amount")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise Bad(f"{where} is {shown(value)}, expected a decimal amount such as '123.45'") from None
    if not number.is_finite():
        raise Bad(f"{where} is {shown(value)}, expected a finite decimal amount")
    if number < 0:
        raise Bad(f"{where} is {shown(value)}; a report amount is never negative (credits are not in this report)")
    return number


def ordered(start: datetime, end: datetime, where: str) -> tuple[datetime, datetime]:
    """A bucket's (start, end), refusing an end that is not after the start."""
    if end <= start:
        raise Bad(f"{where} ends ({end.isoformat()}) before it starts ({start.isoformat()})")
    return start, end


def token_usage(where: str, **counts: int) -> TokenUsage:
    """`TokenUsage`, its consistency rules reported as a bad row."""
    try:
        return TokenUsage(**counts)
    except ValueError as exc:
        raise Bad(f"{where}: {exc}") from None


_PROBE = 1_000
_LONG_INPUT = 1_000_000
_COMPONENTS = ("input", "cache_read", "cache_write", "output", "other")

Rates = tuple[tuple[tuple[int, Decimal], ...], ...]
"""Per leaf (request, uncached, cache read, write 5m, write 1h, output, reasoning): the
(Cost component index, USD per unit) pairs it is charged at; zero rates left out."""


class BucketPricer:
    """List price of a whole usage bucket, as if each of its requests had been priced alone.

    A bucket sums many calls, so pricing its totals as one call would cross input-size tiers
    (Anthropic's >200k rate) that no single call crossed. Instead the price per token of each
    kind (uncached input, cache read, cache write 5m/1h, output) is taken from the Pricer with a
    small probe at the bucket start, below any tier, or above them for long-context buckets,
    then multiplied out. Rates are memoised per (model, time, variant): pricing is linear.
    """

    def __init__(self, pricer: Pricer | None = None) -> None:
        self._pricer = pricer or Pricer()
        self._rates: dict[tuple[object, ...], tuple[Rates, str] | str] = {}
        self._units: dict[tuple[object, ...], tuple[tuple[int, ...] | None, str] | str] = {}

    def price(
        self,
        model: str | None,
        usage: TokenUsage,
        requests: int,
        *,
        provider: str,
        ts: datetime,
        batch: bool = False,
        service_tier: str | None = None,
        long_context: bool = False,
    ) -> tuple[Cost | None, str]:
        """(cost, price source) of the bucket; cost None when the model has no price."""
        found = self.rates(model, provider, ts, batch, service_tier, long_context)
        if isinstance(found, str):
            return None, found
        rates, source = found
        counts = (
            requests,
            usage.uncached_input_tokens,
            usage.cache_read_tokens,
            usage.cache_write_tokens - usage.cache_write_1h_tokens,
            usage.cache_write_1h_tokens,
            usage.output_tokens - usage.reasoning_tokens,
            usage.reasoning_tokens,
        )
        parts = [Decimal(0)] * 5
        for leaf, count in zip(rates, counts, strict=True):
            if count:
                for component, rate in leaf:
                    parts[component] += rate * count
        return Cost(*parts), source

    def rates(
        self, model: str | None, provider: str, ts: datetime, batch: bool, service_tier: str | None, long_context: bool
    ) -> tuple[Rates, str] | str:
        """(rates, price source) that `price` multiplies out, or the source alone when there is no price."""
        if model is None:
            return "unpriced"
        key = (model, provider, ts, batch, service_tier, long_context)
        found = self._rates.get(key)
        if found is None:
            if len(self._rates) >= 4096:
                self._rates.clear()
            found = self._rates[key] = self._probe(model, provider, ts, batch, service_tier, long_context)
        return found

    def unit_rates(
        self, model: str | None, provider: str, ts: datetime, batch: bool, service_tier: str | None, long_context: bool
    ) -> tuple[tuple[int, ...] | None, str] | str:
        """`rates` per leaf summed over the cost components, in 1e-12 USD (the ledger's money unit) per count.

        The tuple is None when a rate is not a whole number of units (an override with an odd
        discount): then only `price`'s Decimal arithmetic is exact.
        """
        key = (model, provider, ts, batch, service_tier, long_context)
        found = self._units.get(key)
        if found is None:
            if len(self._units) >= 4096:
                self._units.clear()
            rated = self.rates(model, provider, ts, batch, service_tier, long_context)
            found = self._units[key] = rated if isinstance(rated, str) else (_whole_units(rated[0]), rated[1])
        return found

    def _probe(
        self, model: str, provider: str, ts: datetime, batch: bool, tier: str | None, long_context: bool
    ) -> tuple[Rates, str] | str:
        base = _LONG_INPUT if long_context else 0
        probes = (
            TokenUsage(),
            TokenUsage(input_tokens=base),
            TokenUsage(input_tokens=base + _PROBE),
            TokenUsage(input_tokens=base + _PROBE, cache_read_tokens=_PROBE),
            TokenUsage(input_tokens=base + _PROBE, cache_write_tokens=_PROBE),
            TokenUsage(input_tokens=base + _PROBE, cache_write_tokens=_PROBE, cache_write_1h_tokens=_PROBE),
            TokenUsage(input_tokens=base, output_tokens=_PROBE),
            TokenUsage(input_tokens=base, output_tokens=_PROBE, reasoning_tokens=_PROBE),
        )
        costs: list[tuple[Decimal, ...]] = []
        source = ""
        for probe in probes:
            priced = self._pricer.price(model, probe, provider=provider, ts=ts, batch=batch, service_tier=tier)
            if not isinstance(priced, Priced):
                return priced.source
            costs.append(tuple(getattr(priced.cost, name) for name in _COMPONENTS))
            source = priced.source
        fee, baseline = costs[0], costs[1]
        per_token = [tuple((a - b) / _PROBE for a, b in zip(cost, baseline, strict=True)) for cost in costs[2:]]
        return tuple(_sparse(rates) for rates in (fee, *per_token)), source


def _whole_units(rates: Rates) -> tuple[int, ...] | None:
    units = []
    for leaf in rates:
        total = sum((rate for _, rate in leaf), Decimal(0)).scaleb(12)
        if total != total.to_integral_value() or abs(total) >= 1 << 53:
            return None
        units.append(int(total))
    return tuple(units)


def _sparse(rates: tuple[Decimal, ...]) -> tuple[tuple[int, Decimal], ...]:
    return tuple((index, rate) for index, rate in enumerate(rates) if rate)
