"""Reports for people who do not open the dashboard: the monthly CFO report, as HTML and PDF.

Owns the month's figures (`monthly`: spend, its trend, top workflows with their cost per
completed task, guardrail savings), their rendering as one standalone HTML page (`cfo`) and
printing it to PDF in headless Chromium (`pdf`). It does not serve anything or write the ledger;
`tokenops report cfo` (tokenops/cli/report_cfo.py) ties them together.
"""

from tokenops.report.cfo import render_cfo
from tokenops.report.monthly import MonthFigures, month_bounds, month_figures
from tokenops.report.pdf import PdfError, print_pdf

__all__ = ["MonthFigures", "PdfError", "month_bounds", "month_figures", "print_pdf", "render_cfo"]
