"""Exports: the ledger's numbers in formats other tools read, for chargeback and finance.

Owns turning ledger rows into a standard file (FOCUS 1.2 cost and usage, CSV or Parquet). It does
not decide what anything costs (the ledger already holds priced events) and reads nothing back:
re-importing an export is the importers' job (`tokenops import focus`).
"""

from tokenops.export.focus import FOCUS_COLUMNS, ExportReport, UnsupportedFormat, export_focus

__all__ = ["FOCUS_COLUMNS", "ExportReport", "UnsupportedFormat", "export_focus"]
