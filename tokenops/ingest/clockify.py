"""`tokenops import clockify`: Clockify "Detailed report" CSV exports -> time entries.

The export's header (Reports > Detailed > Export > Save as CSV) is
`Project,Client,Description,Task,User,Group,Email,Tags,Billable,Start Date,Start Time,End Date,
End Time,Duration (h),Duration (decimal),Billable Rate (USD),Billable Amount (USD)`.

Its formats follow the exporting user's settings: dates in the profile's date format
(MM/DD/YYYY, DD/MM/YYYY, DD.MM.YYYY, YYYY-MM-DD ...), times in 12-hour (`02:00 PM`) or 24-hour
form, `Duration (h)` as hh:mm:ss, h:mm or h.hh. `Duration (decimal)` is always decimal hours and
is preferred. A numeric date whose day and month are both 12 or less can be read two ways: the
file's other dates decide (a day above 12 reveals the order), `TOKENOPS_INGEST__TIME__DATE_ORDER`
settles it, and otherwise such rows are rejected rather than guessed.

Reading is shared with Toggl's export (`tokenops.ingest.toggl.DetailedExport`); only the
duration columns differ.
"""

from __future__ import annotations

from tokenops.ingest.toggl import DetailedExport

IMPORTER = DetailedExport(
    "clockify",
    "Clockify detailed report CSV (time entries; TOKENOPS_INGEST__TIME__* for zone, date order, workflow map)",
    durations=("duration_decimal", "duration_h"),
)
