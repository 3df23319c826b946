"""What every importer shares: rows read with their line numbers, rejected rows, batches and reports.

An importer turns one file into `Batch`es: the records it could read (or, on a fast path, Arrow
tables already in a ledger table's shape) and a `RowError` for every row it could not, naming
`file:line` and why. A bad row never stops an import and never drops the good rows around it.
Records get stable ids (`stable_id`) so importing the same file twice never double counts.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import pyarrow as pa
import pyarrow.json as pa_json

from tokenops.events import (
    BilledCost,
    Cost,
    Outcome,
    Person,
    ProviderUsage,
    SeatLicense,
    TaskRun,
    TimeEntry,
    UsageEvent,
)
from tokenops.store._bulk import KEEP_FREED

MAX_COUNT = 2**63 - 1
"""The largest token count the ledger holds (BIGINT): a bigger one is a bad row, not a crashed import."""
MAX_MONEY = Decimal("999999.999999999999")
"""The largest amount of money the ledger holds (DECIMAL(18,12)): a bigger one is a bad row, not a crashed import."""

T = TypeVar("T")
R = TypeVar("R")

Record = UsageEvent | TaskRun | Outcome | Person | SeatLicense | TimeEntry | ProviderUsage | BilledCost
"""Anything an importer can hand to the ledger."""

READER_CONFIG: dict[str, str | bool | int | float | list[str]] = {"threads": 1, **KEEP_FREED}
"""DuckDB settings of an importer's own connection (parsing `metadata` JSON and the like).

Each chunk is parsed serially and the parallelism is across chunks (`in_order`) and between
parsing and the ledger writer (`run._Writer`): splitting one chunk over threads costs more CPU
than it saves time (Arrow's multi-threaded CSV reader takes 3x the CPU of its serial one on
quoted multi-line records), and on a two-core machine the writer needs a core too.
"""
PARSERS = 2
"""Chunks parsed at once by the chunked importers (`in_order`); each parses serially."""
SINGLE_JSON = pa_json.ReadOptions(use_threads=False)
"""Arrow JSON reading options of the chunked importers (serial, see `READER_CONFIG`)."""

MAX_ERRORS_KEPT = 10_000
"""Rejected rows remembered for the report; more are counted, not kept (a 5M-row file of garbage)."""


@dataclass(frozen=True, slots=True)
class RowError:
    """A rejected input row."""

    path: str
    """File the row came from."""
    line: int
    """1-based line of the row in that file (the first line of a multi-line CSV record)."""
    reason: str
    """What is wrong with it and, where it helps, how to fix it."""

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass(slots=True)
class Batch:
    """Part of a file, ready for the ledger."""

    records: list[Record] = field(default_factory=list)
    """Parsed records, written through the ledger's `record_*` methods."""
    tables: dict[str, pa.Table] = field(default_factory=dict)
    """Fast path: Arrow tables already in a ledger table's schema (`rows.to_arrow` shape), by table name."""
    errors: list[RowError] = field(default_factory=list)
    """Rows of this part that were rejected."""
    rows: int = 0
    """Input rows this batch covers (good and bad)."""
    bytes_read: int = 0
    """Position in the file after this batch, for the progress bar (0 if unknown)."""


@dataclass(slots=True)
class ImportReport:
    """What an import did, for the CLI summary and the API response."""

    source: str
    """Importer name."""
    files: list[str] = field(default_factory=list)
    """Files read."""
    rows: int = 0
    """Input rows seen."""
    imported: int = 0
    """Rows new to the ledger."""
    duplicates: int = 0
    """Good rows already in the ledger (a re-import)."""
    rejected: int = 0
    """Rows rejected (all of them, even beyond `errors`)."""
    errors: list[RowError] = field(default_factory=list)
    """The first `MAX_ERRORS_KEPT` rejected rows."""

    @property
    def ok(self) -> bool:
        """True when no row was rejected."""
        return self.rejected == 0

    def add_errors(self, errors: Sequence[RowError]) -> None:
        """Count rejected rows, keeping the first ones."""
        self.rejected += len(errors)
        room = MAX_ERRORS_KEPT - len(self.errors)
        if room > 0:
            self.errors.extend(errors[:room])

    def summary(self) -> str:
        """One line: rows read, imported, already there, rejected."""
        return (
            f"{self.source}: {self.rows:,} rows read from {len(self.files)} file(s): {self.imported:,} imported, "
            f"{self.duplicates:,} already in the ledger, {self.rejected:,} rejected"
        )

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "source": self.source,
            "files": self.files,
            "rows": self.rows,
            "imported": self.imported,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "errors": [str(e) for e in self.errors],
        }


class Importer(Protocol):
    """One source format. Modules under `tokenops.ingest` expose one as `IMPORTER`.

    The attributes are read-only here, so a frozen dataclass or plain class attributes both qualify.
    """

    @property
    def name(self) -> str:
        """Command name: `tokenops import <name> FILE`."""
        ...

    @property
    def description(self) -> str:
        """One line for `tokenops import --help`."""
        ...

    @property
    def patterns(self) -> tuple[str, ...]:
        """Globs of the files it reads in a directory (`*.csv`, `*.jsonl`, `*.json` ...)."""
        ...

    def read(self, path: Path) -> Iterator[Batch]:
        """Stream one file as batches, in constant memory."""
        ...


def too_many(name: str, value: int) -> str:
    """The reason a count beyond `MAX_COUNT` is a bad row."""
    return f"{name} is {value}, more than the ledger holds (2^63 - 1); expected a whole number of tokens"


def too_costly(name: str, value: Decimal) -> str:
    """The reason an amount beyond `MAX_MONEY` (either sign) is a bad row."""
    return (
        f"{name} {value:f} exceeds the ledger's limit: it stores amounts below 1,000,000 (DECIMAL(18,12)); "
        "check the row's amounts and token counts"
    )


def money_problem(record: Record) -> str | None:
    """Why a record's money does not fit the ledger (`too_costly`), or None."""
    if isinstance(record, UsageEvent | ProviderUsage) and record.cost is not None:
        return cost_problem(record.cost)
    if isinstance(record, BilledCost):
        return _amounts_problem(
            [("billed", record.billed), ("effective", record.effective), ("list_cost", record.list_cost)]
        )
    return None


def cost_problem(cost: Cost) -> str | None:
    """Why a priced cost (its total or a component) does not fit the ledger's money columns, or None."""
    return _amounts_problem([("cost", cost.total), *((f"cost.{name}", getattr(cost, name)) for name in _COST_PARTS)])


def _amounts_problem(amounts: Sequence[tuple[str, Decimal | None]]) -> str | None:
    for name, value in amounts:
        if value is not None and abs(value) > MAX_MONEY:
            return too_costly(name, value)
    return None


_COST_PARTS = ("input", "cache_read", "cache_write", "output", "other")


def stable_id(source: str, *parts: object) -> str:
    """A deterministic id for a row that has none, so a re-import hits the same ledger key."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=16).hexdigest()
    return f"{source}:{digest}"


class _Counting(io.RawIOBase):
    """Counts bytes read from the underlying (possibly compressed) file, for progress."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


@dataclass(slots=True)
class Opened:
    """A text stream on a file (gunzipped if it ends in .gz) and how far into the file it is."""

    text: IO[str]
    """Decoded text (UTF-8, a BOM skipped)."""
    _counter: _Counting

    @property
    def position(self) -> int:
        """Bytes of the file on disk consumed so far."""
        return self._counter.count


def open_text(path: Path) -> Opened:
    """Open a file for streaming, transparently gunzipping `.gz`."""
    counter = _Counting(path.open("rb"))
    raw: IO[bytes] = io.BufferedReader(counter, buffer_size=1 << 20)
    if path.suffix == ".gz":
        raw = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
    return Opened(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""), counter)


@dataclass(frozen=True, slots=True)
class Chunk:
    """Whole lines (or CSV records) of a file, for importers that parse many rows at once."""

    data: bytes | bytearray
    """The lines, each ending in a newline except perhaps the file's last; UTF-8, no BOM.

    A bytearray when `line_chunks` read it: its buffer is reused once nothing refers to the chunk."""
    first_line: int
    """1-based line of the file the chunk starts on."""
    lines: int
    """Newlines in `data`."""
    position: int
    """Bytes of the file on disk consumed once this chunk is read (for progress)."""

    def text(self) -> IO[str]:
        """The chunk as a text stream, for the row-by-row path."""
        return io.StringIO(self.data.decode("utf-8"), newline="")


def line_chunks(path: Path, size: int = 8 << 20, *, quoted: bool = False, skip: int = 0) -> Iterator[Chunk]:
    """A file (gunzipped if `.gz`) in chunks of about `size` bytes that end on a line boundary.

    Args:
        path: The file.
        size: Bytes read at a time.
        quoted: CSV: a newline inside a quoted field (an odd number of `"` before it) does not end
            a chunk, so every chunk holds whole records.
        skip: Lines at the top to leave out (a CSV header the caller read itself).

    A chunk's bytes are read straight into a buffer that is used again once nothing holds the
    chunk: fresh memory for every chunk cost more in page faults than the parse of the chunk's
    columns (see `_Buffers`).
    """
    buffers = _Buffers()
    with _Source(path) as source:
        carry = source.read(3)
        if carry == b"\xef\xbb\xbf":
            carry = b""
        line = 1
        for _ in range(skip):
            while b"\n" not in carry:
                more = source.read(1 << 16)
                if not more:
                    return
                carry += more
            carry = carry[carry.index(b"\n") + 1 :]
            line += 1
        while True:
            data = buffers.take(len(carry) + size)
            data[: len(carry)] = carry
            read = source.read_into(data, len(carry))
            if not read:
                if carry:
                    del data[len(carry) :]
                    yield Chunk(data, line, _count(data, b"\n"), source.position)
                return
            del data[len(carry) + read :]
            cut = _boundary(data, len(carry), quoted)
            if cut < 0:
                carry = bytes(data)  # no complete line yet: read on
                continue
            carry = bytes(data[cut + 1 :])
            del data[cut + 1 :]
            newlines = _count(data, b"\n")
            yield Chunk(data, line, newlines, source.position)
            line += newlines


class _Buffers:
    """Chunk buffers, each used again once no chunk (nor anything made from it) refers to it.

    A 16 MB read into new memory faults in 4,096 pages, and the memory the allocators hand back
    between chunks is returned to the system (DuckDB calls `malloc_trim` every 100 ms): on a LiteLLM
    import the chunker's page faults took ~0.6 s of system time per million rows. A buffer is
    reused only when this pool holds the last reference to it, so no chunk's bytes ever change
    under a reader; with every buffer still in use a new one is made.
    """

    KEPT = 4
    """Buffers kept: the chunk being read, the parsers' chunks (`PARSERS`) and one waiting."""

    def __init__(self) -> None:
        self._kept: list[bytearray] = []

    def take(self, size: int) -> bytearray:
        """A buffer of exactly `size` bytes (its old contents are to be overwritten)."""
        for i in range(len(self._kept) if _REUSE else 0):
            if self._refs(i) == _FREE_REFS:
                buffer = self._kept[i]
                if len(buffer) > size:
                    del buffer[size:]
                elif len(buffer) < size:
                    buffer.extend(bytes(size - len(buffer)))
                self._kept.append(self._kept.pop(i))
                return buffer
        buffer = bytearray(size)
        if len(self._kept) >= self.KEPT:
            self._kept.pop(0)
        self._kept.append(buffer)
        return buffer

    def _refs(self, i: int) -> int:
        buffer = self._kept[i]
        return sys.getrefcount(buffer)


def _free_refs() -> int:
    """What `_Buffers._refs` reads for a buffer only the pool holds, measured the same way.

    Not a constant: how many of those references the interpreter borrows rather than counts
    changed in Python 3.14. Any holder of a chunk (or of a view of its bytes) adds one.
    """
    probe = _Buffers()
    probe._kept.append(bytearray(1))
    return probe._refs(0)


_FREE_REFS = _free_refs()
_REUSE = getattr(sys, "_is_gil_enabled", lambda: True)()
"""Reference counts are exact only with the GIL: a free-threaded build reads chunks into new buffers."""


class _Source:
    """A file's bytes (gunzipped if `.gz`) and how much of the file on disk has been read."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("rb", buffering=0)
        self._counter: _Counting | None = None
        self._stream: IO[bytes] = self._file
        if path.suffix == ".gz":
            self._counter = _Counting(self._file)
            self._stream = gzip.GzipFile(fileobj=io.BufferedReader(self._counter, buffer_size=1 << 20))  # type: ignore[assignment]

    def __enter__(self) -> _Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.close()
        self._file.close()

    def read(self, size: int) -> bytes:
        """Up to `size` bytes (fewer only at the end)."""
        return self._stream.read(size)

    def read_into(self, buffer: bytearray, start: int) -> int:
        """Fill `buffer` from `start` on; the bytes read (fewer than asked only at the end)."""
        done = 0
        with memoryview(buffer) as view:
            while start + done < len(buffer):
                with view[start + done :] as rest:
                    got = self._stream.readinto(rest)  # type: ignore[attr-defined]
                if not got:
                    break
                done += got
        return done

    @property
    def position(self) -> int:
        """Bytes of the file on disk consumed so far."""
        return self._counter.count if self._counter is not None else self._file.tell()


def _boundary(data: bytearray, start: int, quoted: bool) -> int:
    """Index of the last newline at or after `start` that ends a record of `data` (-1 if none)."""
    cut = data.rfind(b"\n", start)
    if quoted and cut >= 0:
        with memoryview(data) as view, view[:cut] as before:
            quotes = _count(before, b'"')
        while cut >= start and quotes % 2:  # inside a quoted field: look further back
            previous = data.rfind(b"\n", start, cut)
            quotes -= data.count(b'"', max(previous, 0), cut)
            cut = previous
    return cut if cut >= start else -1


_GIL_FREE_COUNT = 1 << 16
"""From this size on, a byte is counted by numpy, which releases the GIL (and is ~2x faster than
`bytes.count`): the chunker's two passes over every chunk then run beside the parser threads."""


def _count(data: bytes | bytearray | memoryview, byte: bytes) -> int:
    """How many times `byte` occurs in `data`."""
    if len(data) < _GIL_FREE_COUNT:
        return bytes(data).count(byte) if isinstance(data, memoryview) else data.count(byte)
    import numpy as np  # a dependency of pyarrow, loaded with it

    values = np.frombuffer(data, np.uint8)
    found = np.empty(min(len(values), _COUNT_SLICE), dtype=bool)
    total = 0
    for start in range(0, len(values), _COUNT_SLICE):
        part = values[start : start + _COUNT_SLICE]
        np.equal(part, byte[0], out=found[: len(part)])
        total += int(np.count_nonzero(found[: len(part)]))
    return total


_COUNT_SLICE = 1 << 20
"""Bytes compared at a time: one 1 MB scratch array per count instead of a new one the size of the chunk."""


def csv_records(opened: Opened, path: Path) -> tuple[list[str], Iterator[tuple[int, list[str]] | RowError]]:
    """The header and the records as (line, values): no dict per row, for importers of millions of rows.

    A record with the wrong number of fields is a RowError; blank lines are skipped. Header names
    are stripped; values are kept as written.
    """
    reader = _reader(opened.text)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return [], iter(())
    return header, _records(reader, len(header), str(path))


def chunk_records(chunk: Chunk, width: int, path: Path) -> Iterator[tuple[int, list[str]] | RowError]:
    """The CSV records of a chunk (header already read) as (line, values), as `csv_records` gives them."""
    return _records(_reader(chunk.text()), width, str(path), chunk.first_line - 1)


FIELD_LIMIT = 1 << 30
"""Longest CSV field read, in characters: the csv module's default (128 KB) is shorter than many a
logged prompt, response or tag list. A longer field is a bad row."""


def _reader(text: IO[str]) -> Any:
    """A csv reader that takes fields up to `FIELD_LIMIT` long."""
    # The limit is the csv module's one process-wide setting: raise it, never lower it.
    if csv.field_size_limit() < FIELD_LIMIT:
        csv.field_size_limit(FIELD_LIMIT)
    return csv.reader(text)


def _records(reader: Any, width: int, name: str, offset: int = 0) -> Iterator[tuple[int, list[str]] | RowError]:
    line = offset + reader.line_num + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # a field beyond FIELD_LIMIT: the reader goes on after the record
            yield RowError(name, line, f"not readable as CSV: {exc}")
            line = offset + reader.line_num + 1
            continue
        if len(values) != width:
            if values:  # a blank line is not a row
                yield RowError(name, line, f"expected {width} fields as in the header, found {len(values)}")
        else:
            yield line, values
        line = offset + reader.line_num + 1


def csv_rows(opened: Opened, path: Path) -> Iterator[tuple[int, dict[str, str]] | RowError]:
    """CSV records as (line, {header: value}); a record with the wrong number of fields is a RowError.

    Header names are stripped; values are kept as written (callers decide what NULL looks like).
    """
    header, records = csv_records(opened, path)
    for item in records:
        if isinstance(item, RowError):
            yield item
        else:
            yield item[0], dict(zip(header, item[1], strict=True))


def jsonl_rows(opened: Opened, path: Path) -> Iterator[tuple[int, Any] | RowError]:
    """JSON Lines as (line, value); a line that is not JSON is a RowError, blank lines are skipped."""
    for number, text in enumerate(opened.text, start=1):
        if not text.strip():
            continue
        try:
            yield number, orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            yield RowError(str(path), number, f"not valid JSON: {exc.msg} at column {exc.colno}")


def coalesced(batches: Iterable[Batch], rows: int) -> Iterator[Batch]:
    """Batches of at least `rows` input rows (but the last), merging consecutive ones.

    Every ledger append checks keys against the whole table: fewer, larger appends of a big import
    are much cheaper than many small ones.
    """
    return map(_merged, grouped(batches, rows, lambda batch: batch.rows))


def grouped(items: Iterable[T], rows: int, count: Callable[[T], int]) -> Iterator[list[T]]:
    """Consecutive items in lists of at least `rows` input rows (but the last), `count(item)` rows each."""
    pending: list[T] = []
    total = 0
    for item in items:
        pending.append(item)
        total += count(item)
        if total >= rows:
            yield pending
            pending, total = [], 0
    if pending:
        yield pending


def _merged(batches: list[Batch]) -> Batch:
    if len(batches) == 1:
        return batches[0]
    merged = Batch(rows=sum(b.rows for b in batches), bytes_read=batches[-1].bytes_read)
    tables: dict[str, list[pa.Table]] = {}
    for batch in batches:
        merged.records.extend(batch.records)
        merged.errors.extend(batch.errors)
        for name, table in batch.tables.items():
            tables.setdefault(name, []).append(table)
    merged.tables = {name: pa.concat_tables(parts) for name, parts in tables.items()}
    return merged


def in_order(items: Iterable[T], work: Callable[[T], R], workers: int = PARSERS) -> Iterator[R]:
    """`work(item)` for every item, `workers` items at a time on threads, results in the items' order.

    For chunk parsers whose work is mostly Arrow and DuckDB (which release the GIL): at most
    `workers` chunks are in flight, so memory stays bounded whatever the file size.
    """
    if workers <= 1:
        yield from map(work, items)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="tokenops-import-parser") as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) >= workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of at most `size` items."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _connection(location: str, default_table: str) -> tuple[str, list[str]]:
    """(libpq URL without the `table` parameter, [schema,] table name)."""
    parts = urlsplit(location)
    query = parse_qsl(parts.query, keep_blank_values=True)
    table = next((v for k, v in query if k == "table"), default_table)
    conninfo = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "table"])))
    return conninfo, table.split(".", 1)


def shown(location: str) -> str:
    """A database URL with its password hidden, for reports and errors."""
    parts = urlsplit(location)
    if parts.password is None:
        return location
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def table_records(
    location: str, table: str, columns: Sequence[str], required: Sequence[str], size: int, order_by: str
) -> Iterator[tuple[list[dict[str, Any]], int]]:
    """Rows of a PostgreSQL table as dicts, `size` at a time through a server-side cursor, with the first row's number.

    Args:
        location: `postgresql://` URL; `?table=schema.name` overrides `table`.
        table: Table read by default (found through the search path).
        columns: Columns read when the table has them (others are left alone).
        required: Columns it must have.
        size: Rows per chunk.
        order_by: Column the rows come in order of (so row numbers are stable).
    """
    import psycopg  # only when a database is read: `tokenops import` must not need it otherwise
    from psycopg import sql
    from psycopg.rows import dict_row

    conninfo, name_parts = _connection(location, table)
    with psycopg.connect(conninfo) as conn:
        name = sql.Identifier(*name_parts)
        probe = conn.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(name))
        present = [c.name for c in probe.description or ()]
        missing = [c for c in required if c not in present]
        if missing:
            raise FileNotFoundError(f"{'.'.join(name_parts)!r} has no column(s) {', '.join(missing)}")
        wanted = sql.SQL(", ").join(sql.Identifier(c) for c in columns if c in present)
        query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(wanted, name, sql.Identifier(order_by))
        with conn.cursor(name="tokenops_import", row_factory=dict_row) as cursor:
            cursor.itersize = size
            cursor.execute(query)
            first = 1
            while chunk := cursor.fetchmany(size):
                yield chunk, first
                first += len(chunk)


def table_size(location: str, table: str) -> int:
    """How many rows a table holds (the planner's estimate when there is one, else a count)."""
    import psycopg
    from psycopg import sql

    conninfo, name_parts = _connection(location, table)
    with psycopg.connect(conninfo) as conn:
        name = sql.Identifier(*name_parts).as_string(conn)
        row = conn.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [name]).fetchone()
        if row is not None and row[0] > 0:
            return int(row[0])
        counted = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*name_parts))).fetchone()
        return int(counted[0]) if counted else 0
