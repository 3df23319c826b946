"""Train the learned router from the ledger's own outcomes: which task runs on the cheap model failed.

The ledger keeps no prompt text, so a ledger-trained router learns from what it does keep: the
workflow and the size of the calls. Each completed or failed task run served by `weak` alone is one
example, labelled 1 when it failed. The model scores P(the run fails on the weak model); the
default threshold 0.5 sends a call to the strong model when failure is the likelier outcome.
Runs that mixed models (a cascade or a downgrade) are left out, since their outcome belongs to both.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

import numpy as np

from tokenops.route.features import batch, context_tokens
from tokenops.route.learned import LearnedRouter, TrainConfig, fit

_RUNS = """
SELECT e.task_run_id AS task_run_id, r.workflow AS workflow, r.status AS status,
       AVG(e.input_tokens) AS input_tokens
FROM usage_events e JOIN task_runs r ON r.task_run_id = e.task_run_id
WHERE r.status IN ('completed', 'failed') AND e.status IN ('ok', 'error') AND {where}
GROUP BY e.task_run_id, r.workflow, r.status
HAVING COUNT(DISTINCT e.model) = 1 AND MIN(e.model) = ?
ORDER BY e.task_run_id
"""


class _Queryable(Protocol):
    def query_rows(self, sql: str, params: list[object]) -> list[dict[str, object]]: ...


def ledger_examples(
    ledger: _Queryable, weak: str, workflow: str | None = None, since: datetime | None = None
) -> tuple[list[tuple[str, ...]], np.ndarray]:
    """(context tokens, failed 0/1) per finished task run served only by `weak`."""
    where: list[str] = ["TRUE"]
    params: list[object] = []
    if workflow is not None:
        where.append("r.workflow = ?")
        params.append(workflow)
    if since is not None:
        where.append("r.started_at >= ?")
        params.append(since.astimezone(UTC).replace(tzinfo=None))
    rows = ledger.query_rows(_RUNS.format(where=" AND ".join(where)), [*params, weak])
    contexts = [context_tokens(str(r["workflow"]), int(float(str(r["input_tokens"] or 0)))) for r in rows]
    failed = np.array([r["status"] == "failed" for r in rows], dtype=np.float64)
    return contexts, failed


def train_from_ledger(
    ledger: _Queryable,
    *,
    weak: str,
    strong: str,
    workflow: str | None = None,
    since: datetime | None = None,
    config: TrainConfig | None = None,
) -> LearnedRouter:
    """A learned router from completed vs failed task runs on `weak`; save it and name it in `[route.learned]`.

    Args:
        ledger: the ledger (`DuckDBLedger` or any store with `query_rows`).
        weak: the cheap model whose failures are learned.
        strong: the model to escalate to (recorded in the artefact's metadata).
        workflow: only runs of this workflow (default all).
        since: only runs started from then on.
        config: training hyper-parameters.
    """
    contexts, failed = ledger_examples(ledger, weak, workflow, since)
    if len(failed) == 0 or failed.min() == failed.max():
        raise ValueError(
            f"Need both completed and failed task runs served by {weak!r} to learn from, "
            f"found {int(failed.sum())} failed of {len(failed)}; record outcomes with tokenops.task(...)"
        )
    cfg = config or TrainConfig()
    data = batch([""] * len(contexts), contexts, dim_bits=cfg.dim_bits)
    meta = {
        "source": "ledger",
        "weak": weak,
        "strong": strong,
        "workflow": workflow or "*",
        "runs": str(len(failed)),
        "failure_rate": f"{failed.mean():.4f}",
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return fit(data, failed, cfg, meta)
