"""Importers: everything that did not pass through the gateway, plus outcomes, people and time.

One module per source (`openai_usage.py`, `focus.py`, `otel.py`, ...), each exposing an `IMPORTER`
that streams a file as `Batch`es; `run_import` writes them to a ledger idempotently and reports
every rejected row as `file:line: reason`. `tokenops import <source> FILE|DIR` is the command.
"""

from tokenops.ingest._rows import Batch, Importer, ImportReport, Record, RowError, stable_id
from tokenops.ingest.run import UnknownSource, get_importer, import_batches, importer_names, run_import

__all__ = [
    "Batch",
    "ImportReport",
    "Importer",
    "Record",
    "RowError",
    "UnknownSource",
    "get_importer",
    "import_batches",
    "importer_names",
    "run_import",
    "stable_id",
]
