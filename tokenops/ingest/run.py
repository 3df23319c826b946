"""Run an importer over files and directories into a ledger, with progress and a report.

Importers are found by name: `tokenops import openai-usage FILE` loads the module
`tokenops.ingest.openai_usage` and uses its `IMPORTER`. Adding a source is adding a module.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from tokenops.errors import TokenopsError
from tokenops.events import BilledCost, Outcome, Person, ProviderUsage, SeatLicense, TaskRun, TimeEntry, UsageEvent
from tokenops.ingest._rows import Batch, Importer, ImportReport, Record
from tokenops.store import Ledger

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes total) across all files as an import proceeds."""


class UnknownSource(TokenopsError):
    """No importer has that name."""


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


def expand(importer: Importer, paths: Sequence[Path]) -> list[Path]:
    """Files to read: each file as given, each directory's matching files (recursively, sorted)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted({f for pattern in importer.patterns for f in path.rglob(pattern) if f.is_file()})
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"{str(path)!r} does not exist")
    return files


def run_import(
    importer: Importer, paths: Sequence[Path], ledger: Ledger, *, progress: Progress | None = None
) -> ImportReport:
    """Import every file under `paths`; bad rows are reported, good ones kept, re-imports not double counted."""
    files = expand(importer, paths)
    report = ImportReport(importer.name, [str(f) for f in files])
    total = sum(f.stat().st_size for f in files)
    done = 0
    for file in files:
        for batch in importer.read(file):
            _write(batch, ledger, report)
            if progress is not None and batch.bytes_read:
                progress(done + batch.bytes_read, total)
        done += file.stat().st_size
        if progress is not None:
            progress(done, total)
    return report


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
