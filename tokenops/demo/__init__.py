"""A seeded, reproducible demo organisation that knows its own ground truth.

Owns the synthetic data behind `tokenops demo`, the tests and the benchmarks: ~60 people in six
teams with seats and loaded costs, ~10 workflows of distinct shapes on real models (priced to
the pico-dollar exactly as `tokenops.pricing.Pricer` would), a private unpriced model, outcomes,
time entries before and after AI adoption, and injected incidents, all as Arrow tables ready
for `Ledger.append`. `bulk_events` streams millions of events of the same shapes for benchmarks.

It does not analyse anything: `DemoOrg.truth` holds the answers that `tokenops.analytics`
should find, so they can be checked against it. It does not write to a ledger except through
`load_demo`.

Modules: `org` (teams, models, workflows as data; the roster), `costs` (exact vectorised list
prices), `calls` (task runs to priced calls), `generate` (usage, outcomes, incidents),
`timesheets` (time entries, hours saved), `truth` (ground-truth records), `build` (assembly and
loading), `bulk` (benchmark batches).
"""

from tokenops.demo.build import DEFAULT_END, DemoOrg, Progress, generate_org, load_demo
from tokenops.demo.bulk import bulk_events
from tokenops.demo.truth import GroundTruth, IdleSeat, Incident, Savings, WorkflowTruth

__all__ = [
    "DEFAULT_END",
    "DemoOrg",
    "GroundTruth",
    "IdleSeat",
    "Incident",
    "Progress",
    "Savings",
    "WorkflowTruth",
    "bulk_events",
    "generate_org",
    "load_demo",
]
