"""Run an importer over files and directories into a ledger, with progress and a report.

Importers are found by name: `tokenops import openai-usage FILE` loads the module
`tokenops.ingest.openai_usage` and uses its `IMPORTER`. Adding a source is adding a module.
An importer that also reads a database (`tokenops import litellm postgresql://...`) declares the
URL schemes it takes and a `read_location` (`LocationImporter`).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol, TypeGuard

from tokenops.errors import TokenopsError
from tokenops.events import BilledCost, Outcome, Person, ProviderUsage, SeatLicense, TaskRun, TimeEntry, UsageEvent
from tokenops.ingest._rows import Batch, Importer, ImportReport, Record
from tokenops.pricing import Pricer
from tokenops.store import Ledger

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes total) across all files as an import proceeds."""


Location = Path | str
"""A file or directory, or a URL for importers that read a database."""

_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):(/*)(.*)$", re.DOTALL)


class UnknownSource(TokenopsError):
    """No importer has that name."""


class LocationImporter(Importer, Protocol):
    """An importer that can also read a URL, e.g. a PostgreSQL table."""

    @property
    def schemes(self) -> tuple[str, ...]:
        """URL schemes it reads (`postgresql`, `postgres`)."""
        ...

    def read_location(self, location: str) -> Iterator[Batch]:
        """Stream the rows at `location` as batches; `bytes_read` is progress towards `location_size`."""
        ...

    def location_size(self, location: str) -> int:
        """Rough size of what `location` holds, in the unit of `Batch.bytes_read` (0 if unknown)."""
        ...

    def display(self, location: str) -> str:
        """`location` as shown in reports and errors (no password)."""
        ...


def reads_locations(importer: Importer) -> TypeGuard[LocationImporter]:
    """Whether the importer takes URLs besides files."""
    return hasattr(importer, "read_location") and hasattr(importer, "schemes")


def as_url(importer: Importer, path: Location) -> str | None:
    """`path` as a URL the importer reads, or None for a file path.

    A URL that went through `Path` (as CLI arguments do) lost the second slash of `scheme://`;
    it is put back, so `postgresql://host/db` survives. (`postgresql:///db` cannot be told apart
    from `postgresql://db` after that: name the host.)
    """
    if not reads_locations(importer):
        return None
    match = _URL.match(str(path))
    if match is None or match.group(1).lower() not in importer.schemes:
        return None
    scheme, slashes, rest = match.groups()
    if isinstance(path, Path) and slashes == "/":
        slashes = "//"
    return f"{scheme}:{slashes}{rest}"


def importer_names() -> list[str]:
    """Every importer shipped, by command name."""
    import tokenops.ingest as package

    names = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_") or info.name == "run":
            continue
        module = importlib.import_module(f"tokenops.ingest.{info.name}")
        if hasattr(module, "IMPORTER"):
            names.append(module.IMPORTER.name)
    return sorted(names)


def get_importer(name: str) -> Importer:
    """The importer called `name` (`openai-usage`, `focus`, ...)."""
    module_name = name.replace("-", "_")
    try:
        module = importlib.import_module(f"tokenops.ingest.{module_name}")
        importer: Importer = module.IMPORTER
    except (ModuleNotFoundError, AttributeError):
        raise UnknownSource(f"no importer {name!r}; available: {', '.join(importer_names())}") from None
    return importer


def with_pricer(importer: Importer, pricer: Pricer) -> Importer:
    """The importer pricing with `pricer` (the organisation's overrides), if it prices anything."""
    if dataclasses.is_dataclass(importer) and any(f.name == "pricer" for f in dataclasses.fields(importer)):
        return dataclasses.replace(importer, pricer=pricer)
    return importer


def expand(importer: Importer, paths: Sequence[Location]) -> list[Location]:
    """What to read: each URL and file as given, each directory's matching files (recursively, sorted)."""
    files: list[Location] = []
    for given in paths:
        url = as_url(importer, given)
        if url is not None:
            files.append(url)
            continue
        path = Path(given)
        if path.is_dir():
            found = sorted({f for pattern in importer.patterns for f in path.rglob(pattern) if f.is_file()})
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"{str(path)!r} does not exist")
    return files


def run_import(
    importer: Importer, paths: Sequence[Location], ledger: Ledger, *, progress: Progress | None = None
) -> ImportReport:
    """Import every file or URL under `paths`: bad rows reported, good ones kept, re-imports not double counted."""
    files = expand(importer, paths)
    report = ImportReport(importer.name, [_shown(importer, f) for f in files])
    sizes = [_size(importer, f) for f in files]
    total = sum(sizes)
    done = 0
    with _Writer(ledger, report) as writer:
        for file, size in zip(files, sizes, strict=True):
            batches = importer.read(file) if isinstance(file, Path) else _location_batches(importer, file)
            for batch in batches:
                writer.put(batch)
                if progress is not None and batch.bytes_read:
                    progress(done + min(batch.bytes_read, size), total)
            done += size
            if progress is not None:
                progress(done, total)
    return report


class _Writer:
    """Writes batches to the ledger on its own thread while the next one is parsed.

    Parsing (Python, Arrow) and the ledger's bulk load (DuckDB, a database server) both release
    the GIL for most of their work, so on two cores they overlap. The queue holds one batch: memory
    stays at about three batches (one written, one waiting, one being read) whatever the file size.
    Batches are written in order; the first error the ledger raises stops the import and is
    raised from `put` or on exit. Batches read before an importer error are still written.
    """

    def __init__(self, ledger: Ledger, report: ImportReport) -> None:
        self._ledger, self._report = ledger, report
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=1)
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="tokenops-import-writer", daemon=True)

    def __enter__(self) -> _Writer:
        self._thread.start()
        return self

    def put(self, batch: Batch) -> None:
        """Queue a batch (waits while the previous one is still queued)."""
        self._raise_failure()
        self._queue.put(batch)

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if kind is None:  # else the reader's own error is the one to see
            self._raise_failure()

    def _raise_failure(self) -> None:
        if self._failed is not None:
            raise self._failed

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._failed is not None:
                continue  # drain: the reader learns of the failure at its next put or on exit
            try:
                _write(batch, self._ledger, self._report)
            except BaseException as exc:  # noqa: BLE001 - handed to the reading thread, raised there
                self._failed = exc


def _location_batches(importer: Importer, url: str) -> Iterator[Batch]:
    assert reads_locations(importer)
    return importer.read_location(url)


def _size(importer: Importer, location: Location) -> int:
    if isinstance(location, Path):
        return location.stat().st_size
    return importer.location_size(location) if reads_locations(importer) else 0


def _shown(importer: Importer, location: Location) -> str:
    if isinstance(location, Path) or not reads_locations(importer):
        return str(location)
    return importer.display(location)


def import_batches(batches: Iterable[Batch], ledger: Ledger, source: str) -> ImportReport:
    """Write already-read batches (an API upload, a receiver) and report like a file import."""
    report = ImportReport(source)
    for batch in batches:
        _write(batch, ledger, report)
    return report


def _write(batch: Batch, ledger: Ledger, report: ImportReport) -> None:
    report.rows += batch.rows
    report.add_errors(batch.errors)
    good = len(batch.records) + sum(t.num_rows for t in batch.tables.values())
    new = 0
    for table, data in batch.tables.items():
        new += ledger.append(table, data)
    for kind, records in _by_kind(batch.records):
        new += _RECORDERS[kind](ledger, records)
    report.imported += new
    report.duplicates += good - new


def _by_kind(records: Sequence[Record]) -> Iterator[tuple[type, list[Record]]]:
    groups: dict[type, list[Record]] = {}
    for record in records:
        groups.setdefault(type(record), []).append(record)
    yield from groups.items()


_RECORDERS: dict[type, Callable[[Ledger, list[Record]], int]] = {
    UsageEvent: lambda ledger, rs: ledger.record_events(rs),  # type: ignore[arg-type]
    TaskRun: lambda ledger, rs: ledger.record_task_runs(rs),  # type: ignore[arg-type]
    Outcome: lambda ledger, rs: ledger.record_outcomes(rs),  # type: ignore[arg-type]
    Person: lambda ledger, rs: ledger.record_people(rs),  # type: ignore[arg-type]
    SeatLicense: lambda ledger, rs: ledger.record_seats(rs),  # type: ignore[arg-type]
    TimeEntry: lambda ledger, rs: ledger.record_time_entries(rs),  # type: ignore[arg-type]
    ProviderUsage: lambda ledger, rs: ledger.record_provider_usage(rs),  # type: ignore[arg-type]
    BilledCost: lambda ledger, rs: ledger.record_billed_costs(rs),  # type: ignore[arg-type]
}
