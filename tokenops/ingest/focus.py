"""FOCUS 1.x cost and usage files (CSV, CSV.gz, Parquet) as billed cost lines.

A cloud bill in FOCUS (AWS Data Exports, Azure Cost Management, Google, Oracle ...) becomes one
`BilledCost` per line in `billed_costs`, never a usage event: the bill covers calls the gateway
may already have metered, and `tokenops reconcile` compares the two instead of adding them.

Identity. FOCUS lines carry no id, so a line's id is a hash of its content (every column,
normalised so CSV and Parquet copies of a bill agree, column order and file name ignored) plus
its position among the identical lines before it in the same file: the first copy is #0, the
second #1. Re-importing a file, or a refreshed export that repeats earlier lines, therefore adds
nothing, while two genuinely identical lines in one file stay two charges. The count of earlier
copies is kept in a scratch DuckDB file, not in memory, so a file of any length streams in
constant memory.

Speed (issue 6). A CSV file with a one-line header of distinct FOCUS columns is read by the
chunk into columns (`_focus_arrow`), and a Parquet file by the record batch: the usual lines
reach the ledger as an Arrow table, with the same digests, ids and values the line-by-line
path gives them. Any line the columnar reader is not sure of (a quirky value, a bad line, a
chunk it cannot split into records as Python's `csv` module does) is read here, line by line,
so every bad line is still named `file:line: reason` and the good ones around it are kept.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Final

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tokenops.events import BilledCost
from tokenops.ingest import _focus_columns as cols
from tokenops.ingest._focus_arrow import Plan, cost_ids, parse_batch, parse_chunk
from tokenops.ingest._rows import (
    MAX_MONEY,
    READER_CONFIG,
    Batch,
    Chunk,
    RowError,
    chunk_records,
    csv_rows,
    grouped,
    in_order,
    line_chunks,
    open_text,
    stable_id,
    too_costly,
)

BATCH_ROWS: Final = 10_000
"""Lines per batch handed to the ledger by the row-by-row path (Parquet, CSV the columnar path does not read)."""

CHUNK_BYTES: Final = 4 << 20
"""Bytes of CSV read into columns at a time (whole records)."""

PARQUET_ROWS: Final = 16_384
"""Parquet rows read into columns at a time."""

APPEND_ROWS: Final = 50_000
"""Lines per ledger append on the columnar path (chunks are merged up to it)."""

QUANTITY_LIMIT: Final = Decimal("1e22")
"""Quantities the ledger column DECIMAL(28,6) can hold are below this in absolute value."""

_CURRENCY = re.compile(r"[A-Za-z]{3}")
_PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True, slots=True)
class _Unreadable(RowError):
    """The file cannot be read or lacks FOCUS columns: reported once at line 1, and no row is read."""


class FocusImporter:
    """`tokenops import focus FILE|DIR`: FOCUS cost and usage exports."""

    name = "focus"
    description = "FOCUS 1.x cost and usage exports (CSV, CSV.gz, Parquet) as billed costs"
    patterns = ("*.csv", "*.csv.gz", "*.parquet")

    def read(self, path: Path) -> Iterator[Batch]:
        """Stream a FOCUS file; Parquet is recognised by its magic bytes, anything else is read as CSV."""
        with path.open("rb") as head:
            is_parquet = head.read(4) == _PARQUET_MAGIC
        if is_parquet and (layout := _parquet_layout(path)) is not None:
            yield from _columnar_parquet(path, layout)
            return
        if not is_parquet and (layout := _csv_layout(path)) is not None:
            yield from _columnar(path, layout)
            return
        lines = _parquet_lines(path) if is_parquet else _csv_lines(path)
        yield from _batches(path, lines)


IMPORTER = FocusImporter()


class _Layout:
    """A file's columns, worked out once: how to normalise each, and the order they are hashed in."""

    def __init__(self, names: list[str], *, typed: bool) -> None:
        self.names = names
        self.tags = names.index("Tags") if "Tags" in names else None
        kept = [n for n in cols.KEPT_AS_TAGS if n in names]
        self.tag_columns = kept + [n for n in names if n[:2].lower() == "x_"]
        """Columns copied into a line's tags, FOCUS ones first, then every x_ column."""
        self.model_column = next((n for n in names if n.lower() in cols.MODEL_COLUMNS), None)
        """An x_ column naming the model, if the file has one (tokenops' own export does)."""
        self._typed_input = typed  # Parquet cells come typed; CSV cells are all text
        # Hashed in a fixed order that depends on the column names only: plain text columns, then the rest.
        order = sorted((i for i in range(len(names)) if i != self.tags), key=lambda i: names[i].lower())
        kinds = {
            i: _NUMBER if names[i] in cols.NUMBERS else _TIME if names[i] in cols.DATETIMES else _TEXT for i in order
        }
        plain = [i for i in order if kinds[i] == _TEXT and names[i] not in cols.ENUMS]
        self._plain = (plain, [names[i] for i in plain], [names[i].lower() + "\x1e" for i in plain])
        self._special = [
            (i, names[i], kinds[i], cols.ENUMS.get(names[i]), names[i].lower() + "\x1e")
            for i in order
            if i not in plain
        ]
        self._parsed: dict[tuple[str, str], tuple[Decimal | datetime, str]] = {}  # bills repeat their values

    def plan(self) -> Plan:
        """The layout as the columnar reader takes it."""
        hashed = self._plain[0] + [i for i, *_ in self._special]
        return Plan(self.names, hashed, self.tags, self.tag_columns, self.model_column)

    def read(self, values: Sequence[object]) -> _Line:
        """Normalised text of every cell (so CSV and Parquet copies agree), typed numbers and times, digest."""
        indexes, names, prefixes = self._plain
        if self._typed_input:
            texts = [cols.cell_text(values[i]) for i in indexes]
        else:  # the hot path: most cells of a CSV bill are plain text, kept as written
            texts = [None if (value := values[i]) in cols.NULLS else value for i in indexes]  # type: ignore[misc]
        strings: dict[str, str | None] = dict(zip(names, texts, strict=True))
        parts = [prefix + ("\x00" if text is None else text) for prefix, text in zip(prefixes, texts, strict=True)]
        typed: dict[str, Decimal | datetime] = {}
        parsed = self._parsed
        for i, name, kind, enum, prefix in self._special:
            value = values[i]
            text: str | None
            if isinstance(value, str):
                if value in cols.NULLS or value.strip() in cols.NULLS:
                    text = None
                elif enum is not None:
                    text = enum.get(value.lower(), value)
                elif kind == _TEXT:
                    text = value
                else:
                    found = parsed.get((name, value)) or self._parse(name, kind, value)
                    typed[name], text = found
            elif value is None:
                text = None
            elif kind == _NUMBER or isinstance(value, float | Decimal):
                typed[name], text = _typed(name, _NUMBER, value)
            elif kind == _TIME or isinstance(value, datetime):
                typed[name], text = _typed(name, _TIME, value)
            else:
                text = cols.cell_text(value)
            strings[name] = text
            parts.append(prefix + ("\x00" if text is None else text))
        tags = cols.user_tags(values[self.tags]) if self.tags is not None else {}
        if self.tags is not None:  # compared as data: key order and spacing of the JSON do not matter
            strings["Tags"] = json.dumps(tags, sort_keys=True) if tags else None
            parts.append("tags\x1e" + (strings["Tags"] or "\x00"))
        digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()
        return _Line(strings, typed, tags, digest)

    def _parse(self, name: str, kind: int, value: str) -> tuple[Decimal | datetime, str]:
        """Parse a number or time not seen lately, remembering it (bounded: memory stays flat)."""
        if len(self._parsed) >= 50_000:
            self._parsed.clear()
        found = self._parsed[(name, value)] = _typed(name, kind, value)
        return found


_TEXT, _NUMBER, _TIME = 0, 1, 2


def _typed(name: str, kind: int, value: object) -> tuple[Decimal | datetime, str]:
    """A number or time cell, parsed, and its normal text (the one CSV and Parquet agree on)."""
    if kind == _NUMBER:
        number = cols.decimal(value, name)
        assert number is not None  # nulls never reach here
        return number, format(number.normalize(), "f")
    instant = cols.timestamp(value, name)
    assert instant is not None
    return instant, instant.isoformat()


@dataclass(frozen=True, slots=True)
class _Line:
    """One line of a FOCUS file, normalised."""

    strings: dict[str, str | None]
    """Every cell as text (None for NULL), by canonical column name."""
    typed: dict[str, Decimal | datetime]
    """Decimal and date-time cells, parsed."""
    tags: dict[str, str]
    """The line's own Tags."""
    digest: str
    """Content hash: what makes two lines the same charge."""


Item = _Layout | tuple[int, list[object], int] | RowError
"""What the file readers yield: the layout first, then (line, cells, bytes read) or a rejected line."""


def _csv_lines(path: Path) -> Iterator[Item]:
    """Each CSV record with its line number, or why it could not be read."""
    opened = open_text(path)
    with opened.text:
        started = False
        for item in csv_rows(opened, path):
            if isinstance(item, RowError):
                yield item
                continue
            line, row = item
            if not started:
                names = cols.canonical_header(list(row))
                missing = _missing(names)
                if missing:
                    yield _Unreadable(str(path), 1, missing)
                    return
                yield _Layout(names, typed=False)
                started = True
            yield line, list(row.values()), opened.position


def _parquet_lines(path: Path) -> Iterator[Item]:
    """Each Parquet row with its number from 1 (a Parquet file has no lines)."""
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        yield _Unreadable(str(path), 1, f"not a readable Parquet file ({exc}); export it again")
        return
    names = cols.canonical_header(parquet.schema_arrow.names)
    missing = _missing(names)
    if missing:
        yield _Unreadable(str(path), 1, missing)
        return
    yield _Layout(names, typed=True)
    total, size, number = max(parquet.metadata.num_rows, 1), path.stat().st_size, 0
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
        columns = [column.to_pylist() for column in batch.columns]
        for values in zip(*columns, strict=True):
            number += 1
            yield number, list(values), size * number // total


def _missing(names: list[str]) -> str | None:
    absent = [c for c in cols.REQUIRED if c not in names]
    if "ProviderName" not in names and "ServiceProviderName" not in names:
        absent.append("ProviderName (or ServiceProviderName)")
    if not absent:
        return None
    return f"not a FOCUS cost and usage file: missing column(s) {', '.join(absent)}; export it as FOCUS 1.x"


def _csv_layout(path: Path) -> _Layout | None:
    """The layout of a CSV file the columnar path can read: a one-line header of distinct FOCUS columns."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as raw:
        first = raw.readline(1 << 20)
    line = first.removeprefix(b"\xef\xbb\xbf").removesuffix(b"\n").removesuffix(b"\r")
    if not first.endswith(b"\n") or b"\r" in line or line.count(b'"') % 2:
        return None  # `line_chunks` skips the first line up to its newline: the header must be all of it
    try:
        header = next(csv.reader([line.decode("utf-8")]))
    except (UnicodeDecodeError, StopIteration):
        return None
    stripped = [h.strip() for h in header]
    names = cols.canonical_header(stripped)
    if len(set(stripped)) != len(names) or len(set(names)) != len(names) or _missing(names):
        return None  # the row path reports it (or reads what the duplicate columns leave)
    return _Layout(names, typed=False)


def _parquet_layout(path: Path) -> _Layout | None:
    """The layout of a Parquet file the columnar path can read: distinct FOCUS columns."""
    try:
        names = cols.canonical_header(pq.ParquetFile(path).schema_arrow.names)
    except (pa.ArrowException, OSError):
        return None  # the row path reports it
    if len(set(names)) != len(names) or _missing(names):
        return None
    return _Layout(names, typed=True)


def _columnar_parquet(path: Path, layout: _Layout) -> Iterator[Batch]:
    """A Parquet file by the record batch: typed cells turned into text once per value (`parse_batch`)."""
    plan = layout.plan()
    parquet = pq.ParquetFile(path)
    total, size = max(parquet.metadata.num_rows, 1), path.stat().st_size

    def numbered() -> Iterator[tuple[int, pa.RecordBatch]]:
        first = 1
        for batch in parquet.iter_batches(batch_size=PARQUET_ROWS):
            yield first, batch
            first += batch.num_rows

    def work(item: tuple[int, pa.RecordBatch]) -> _Part:
        first, batch = item
        parsed = parse_batch(batch, plan)
        position = size * (first + batch.num_rows - 1) // total
        part = _Part(parsed.table, parsed.digests, [True] * batch.num_rows, [], [], batch.num_rows, position)
        if parsed.usual.all():
            return part
        digests, part.columnar = [], []
        fast = iter(parsed.digests[i : i + 16] for i in range(0, len(parsed.digests), 16))
        for i, usual in enumerate(parsed.usual.tolist()):
            if usual:
                digests.append(next(fast))
                part.columnar.append(True)
            else:  # the row path, on the row's own typed cells
                _slow((first + i, [column[i].as_py() for column in batch.columns]), path, layout, part, digests)
        part.digests = b"".join(digests)
        return part

    yield from _assembled(in_order(numbered(), work))


@dataclass(slots=True)
class _Part:
    """A chunk read: its usual lines in columns, the others by the row path, before numbering copies."""

    table: pa.Table | None
    """`billed_costs` columns of the lines read in columns (no `cost_id` yet)."""
    digests: bytes
    """16-byte content digest of every good line, in file order."""
    columnar: list[bool]
    """Per good line: whether it is in `table` (else in `fields`)."""
    fields: list[dict[str, object]]
    """`BilledCost` fields of the good lines the row path read."""
    errors: list[RowError]
    rows: int
    position: int


def _columnar(path: Path, layout: _Layout) -> Iterator[Batch]:
    """A CSV file by the chunk: Arrow reads the usual lines, the row path the others (see `_focus_arrow`)."""
    plan = layout.plan()
    chunks = line_chunks(path, CHUNK_BYTES, quoted=True, skip=1)
    yield from _assembled(in_order(chunks, lambda chunk: _part(chunk, path, layout, plan)))


def _assembled(parts: Iterator[_Part]) -> Iterator[Batch]:
    """Parts merged into batches of about `APPEND_ROWS` lines, copies numbered across the whole file."""
    occurrences = _Occurrences()
    try:
        for pending in grouped(parts, APPEND_ROWS, lambda part: part.rows):  # as `coalesced` groups batches
            yield _assemble(pending, occurrences)
    finally:
        occurrences.close()


def _part(chunk: Chunk, path: Path, layout: _Layout, plan: Plan) -> _Part:
    parsed = parse_chunk(chunk, plan)
    part = _Part(None, b"", [], [], [], 0, chunk.position)
    digests: list[bytes] = []
    if parsed is None:  # the whole chunk line by line, as `_csv_lines` reads a file
        for item in chunk_records(chunk, len(plan.names), path):
            part.rows += 1
            _slow(item, path, layout, part, digests)
        part.digests = b"".join(digests)
        return part
    part.table, part.rows = parsed.table, len(parsed.usual)
    if not parsed.unusual:
        part.digests, part.columnar = parsed.digests, [True] * part.rows
        return part
    fast = iter(parsed.digests[i : i + 16] for i in range(0, len(parsed.digests), 16))
    slow = iter(parsed.unusual)
    for usual in parsed.usual.tolist():
        if usual:
            digests.append(next(fast))
            part.columnar.append(True)
        else:
            line, text = next(slow)
            _slow(
                next(chunk_records(Chunk(text.encode(), line, 0, 0), len(plan.names), path)),
                path,
                layout,
                part,
                digests,
            )
    part.digests = b"".join(digests)
    return part


def _slow(
    item: tuple[int, Sequence[object]] | RowError, path: Path, layout: _Layout, part: _Part, digests: list[bytes]
) -> None:
    """One record (CSV) or row (Parquet) by the row path."""
    if isinstance(item, RowError):
        part.errors.append(item)
        return
    line, values = item
    try:
        digest, fields = _charge(layout.read(values), layout)
    except ValueError as exc:
        part.errors.append(RowError(str(path), line, str(exc)))
        return
    digests.append(bytes.fromhex(digest))
    part.columnar.append(False)
    part.fields.append(fields)


def _assemble(parts: list[_Part], occurrences: _Occurrences) -> Batch:
    """Parts in file order as one batch: copies numbered, ids given (as `_finish` gives them)."""
    digests = b"".join(p.digests for p in parts)
    copies = occurrences.number(np.frombuffer(digests, dtype=">u8")[::2].astype(np.uint64))
    ids = cost_ids(digests, copies)
    batch = Batch(rows=sum(p.rows for p in parts), bytes_read=parts[-1].position)
    batch.errors = [e for p in parts for e in p.errors]
    fields = [f for p in parts for f in p.fields]
    if fields:
        columnar = np.concatenate([np.asarray(p.columnar, dtype=bool) for p in parts])
        slow = ids.take(pa.array(np.flatnonzero(~columnar))).to_pylist()
        batch.records = [BilledCost(cost_id=i, **f) for i, f in zip(slow, fields, strict=True)]  # type: ignore[arg-type]
        ids = ids.filter(pa.array(columnar))
    tables = [p.table for p in parts if p.table is not None]
    if tables:
        batch.tables["billed_costs"] = pa.concat_tables(tables).append_column("cost_id", ids)
    return batch


def _batches(path: Path, items: Iterator[Item]) -> Iterator[Batch]:
    occurrences = _Occurrences()
    layout: _Layout | None = None
    try:
        batch, pending = Batch(), []
        for item in items:
            if isinstance(item, _Layout):
                layout = item
                continue
            batch.rows += not isinstance(item, _Unreadable)
            if isinstance(item, RowError):
                batch.errors.append(item)
                continue
            line, values, batch.bytes_read = item
            assert layout is not None  # readers yield the layout before any line
            try:
                pending.append(_charge(layout.read(values), layout))
            except ValueError as exc:
                batch.errors.append(RowError(str(path), line, str(exc)))
            if batch.rows >= BATCH_ROWS:
                yield _finish(batch, pending, occurrences)
                batch, pending = Batch(), []
        if batch.rows or batch.errors:
            yield _finish(batch, pending, occurrences)
    finally:
        occurrences.close()


def _finish(batch: Batch, pending: list[tuple[str, dict[str, object]]], occurrences: _Occurrences) -> Batch:
    copies = occurrences.number([int(digest[:16], 16) for digest, _ in pending])
    batch.records = [
        BilledCost(cost_id=stable_id("focus", digest, copy), **fields)  # type: ignore[arg-type]
        for (digest, fields), copy in zip(pending, copies, strict=True)
    ]
    return batch


def _charge(line: _Line, layout: _Layout) -> tuple[str, dict[str, object]]:
    """A line's content digest and its `BilledCost` fields; ValueError says what is wrong."""
    strings, typed = line.strings, line.typed
    billed = _money(typed, "BilledCost", required=True)
    currency = strings.get("BillingCurrency")
    if currency is None or not _CURRENCY.fullmatch(currency):
        raise ValueError(f"BillingCurrency is {currency!r}, expected a three-letter ISO 4217 code such as USD")
    start = _required_time(typed, "ChargePeriodStart")
    end = _required_time(typed, "ChargePeriodEnd")
    if end < start:
        raise ValueError(f"ChargePeriodEnd {end.isoformat()} is before ChargePeriodStart {start.isoformat()}")
    category = strings.get("ChargeCategory")
    if category not in cols.CHARGE_CATEGORIES.values():
        raise ValueError(
            f"ChargeCategory is {category!r}, expected one of {', '.join(cols.CHARGE_CATEGORIES.values())}"
        )
    provider = strings.get("ServiceProviderName") or strings.get("ProviderName")
    if provider is None:
        raise ValueError("ProviderName is empty; FOCUS requires the provider on every line")
    quantity = typed.get("ConsumedQuantity")
    assert quantity is None or isinstance(quantity, Decimal)
    if quantity is not None and abs(quantity) >= QUANTITY_LIMIT:
        raise ValueError(f"ConsumedQuantity {quantity} is too large to store (at most 22 integer digits)")
    fields: dict[str, object] = {
        "source": "import:focus",
        "provider": cols.provider_id(provider),
        "start": start,
        "end": end,
        "billed": billed,
        "currency": currency.upper(),
        "effective": _money(typed, "EffectiveCost"),
        "list_cost": _money(typed, "ListCost"),
        "service": strings.get("ServiceName"),
        "model": (layout.model_column and strings[layout.model_column]) or cols.model_name(strings),
        "line_item": strings.get("ChargeDescription"),
        "charge_category": category,
        "project_id": strings.get("SubAccountId"),
        "account_id": strings.get("BillingAccountId"),
        "quantity": quantity,
        "unit": strings.get("ConsumedUnit"),
        "tags": _tags(line, layout.tag_columns),
    }
    return line.digest, fields


def _money(typed: dict[str, Decimal | datetime], column: str, *, required: bool = False) -> Decimal | None:
    value = typed.get(column)
    assert value is None or isinstance(value, Decimal)  # a NUMBERS column
    if value is None and required:
        raise ValueError(f"{column} is empty; FOCUS requires it on every line (0 for free usage)")
    if value is not None and abs(value) > MAX_MONEY:
        raise ValueError(too_costly(column, value))
    return value


def _required_time(typed: dict[str, Decimal | datetime], column: str) -> datetime:
    value = typed.get(column)
    assert value is None or isinstance(value, datetime)  # a DATETIMES column
    if value is None:
        raise ValueError(f"{column} is empty; FOCUS requires it on every line")
    return value


def _tags(line: _Line, columns: list[str]) -> dict[str, str]:
    """The line's own Tags, then the FOCUS columns kept as tags and every x_ column (columns win)."""
    tags = dict(line.tags)
    strings = line.strings
    for name in columns:
        value = strings[name]
        if value is not None:
            tags[name] = value
    return tags


class _Occurrences:
    """How many identical lines came before each line of one file, counted on disk (flat memory)."""

    def __init__(self) -> None:
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._conn: duckdb.DuckDBPyConnection | None = None

    def number(self, digests: list[int] | np.ndarray) -> list[int]:
        """For each 64-bit line digest, in order, the count of equal digests before it in the file."""
        if not len(digests):
            return []
        conn = self._connect()
        conn.register("_b", pa.table({"d": pa.array(digests, pa.uint64()), "i": pa.array(np.arange(len(digests)))}))
        try:
            result = conn.execute(
                "SELECT coalesce(p.n, 0) + row_number() OVER (PARTITION BY b.d ORDER BY b.i) - 1 "
                "FROM _b b LEFT JOIN (SELECT d, count(*) AS n FROM seen WHERE d IN (SELECT d FROM _b) GROUP BY d) p "
                "ON p.d = b.d ORDER BY b.i"
            ).fetchall()
            conn.execute("INSERT INTO seen SELECT d FROM _b")
        finally:
            conn.unregister("_b")
        return [int(row[0]) for row in result]

    def _connect(self) -> duckdb.DuckDBPyConnection:
        if self._conn is None:
            self._dir = tempfile.TemporaryDirectory(prefix="tokenops-focus-")
            self._conn = duckdb.connect(
                str(Path(self._dir.name) / "seen.duckdb"), config={**READER_CONFIG, "memory_limit": "64MB"}
            )
            self._conn.execute("CREATE TABLE seen (d UBIGINT)")
        return self._conn

    def close(self) -> None:
        """Drop the scratch database."""
        if self._conn is not None:
            self._conn.close()
        if self._dir is not None:
            self._dir.cleanup()
