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
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import pyarrow as pa

from tokenops.events import BilledCost, Outcome, Person, ProviderUsage, SeatLicense, TaskRun, TimeEntry, UsageEvent

Record = UsageEvent | TaskRun | Outcome | Person | SeatLicense | TimeEntry | ProviderUsage | BilledCost
"""Anything an importer can hand to the ledger."""

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
    """One source format. Modules under `tokenops.ingest` expose one as `IMPORTER`."""

    name: str
    """Command name: `tokenops import <name> FILE`."""
    description: str
    """One line for `tokenops import --help`."""
    patterns: tuple[str, ...]
    """Globs of the files it reads in a directory (`*.csv`, `*.jsonl`, `*.json` ...)."""

    def read(self, path: Path) -> Iterator[Batch]:
        """Stream one file as batches, in constant memory."""
        ...


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


def csv_rows(opened: Opened, path: Path) -> Iterator[tuple[int, dict[str, str]] | RowError]:
    """CSV records as (line, {header: value}); a record with the wrong number of fields is a RowError.

    Header names are stripped; values are kept as written (callers decide what NULL looks like).
    """
    reader = csv.reader(opened.text)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return
    width = len(header)
    line = reader.line_num + 1
    for values in reader:
        if len(values) != width:
            if values:  # a blank line is not a row
                yield RowError(str(path), line, f"expected {width} fields as in the header, found {len(values)}")
        else:
            yield line, dict(zip(header, values, strict=True))
        line = reader.line_num + 1


def jsonl_rows(opened: Opened, path: Path) -> Iterator[tuple[int, Any] | RowError]:
    """JSON Lines as (line, value); a line that is not JSON is a RowError, blank lines are skipped."""
    for number, text in enumerate(opened.text, start=1):
        if not text.strip():
            continue
        try:
            yield number, json.loads(text)
        except json.JSONDecodeError as exc:
            yield RowError(str(path), number, f"not valid JSON: {exc.msg} at column {exc.colno}")


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
