"""`tokenops.task(...)`: one task run around any number of model calls, and its outcomes."""

from __future__ import annotations

import functools
import inspect
import uuid
from collections.abc import Callable
from contextvars import Token
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from tokenops.events import Outcome, TaskRun
from tokenops.events.business import TaskStatus
from tokenops.sdk.context import TaskState, current_task
from tokenops.sdk.runtime import Runtime, current_runtime

P = ParamSpec("P")
R = TypeVar("R")


class Task:
    """A task run: a context manager (sync or async) and a decorator."""

    def __init__(
        self,
        workflow: str,
        *,
        user: str | None = None,
        team: str | None = None,
        customer: str | None = None,
        feature: str | None = None,
        tags: dict[str, str] | None = None,
        task_run_id: str | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        self.workflow = workflow
        self._args = {"user": user, "team": team, "customer": customer, "feature": feature, "tags": dict(tags or {})}
        self._task_run_id = task_run_id
        self._runtime = runtime
        self.state: TaskState | None = None
        self._token: Token[TaskState | None] | None = None
        self._started: datetime | None = None

    @property
    def task_run_id(self) -> str:
        """Id of the running task run."""
        if self.state is None:
            raise RuntimeError("the task has not started")
        return self.state.task_run_id

    @property
    def spent(self) -> Decimal:
        """Priced spend of the run so far."""
        return self.state.spent if self.state else Decimal(0)

    def _rt(self) -> Runtime:
        return self._runtime or current_runtime()

    def _open(self) -> Task:
        runtime = self._rt()
        self.state = TaskState(
            task_run_id=self._task_run_id or "task-" + uuid.uuid4().hex,
            workflow=self.workflow,
            user=self._args["user"] or runtime.user,  # type: ignore[arg-type]
            team=self._args["team"] or runtime.team,  # type: ignore[arg-type]
            customer=self._args["customer"],  # type: ignore[arg-type]
            feature=self._args["feature"],  # type: ignore[arg-type]
            tags=self._args["tags"],  # type: ignore[arg-type]
        )
        self._started = datetime.now(UTC)
        runtime.record_task_run(self._run("running"))
        self._token = current_task.set(self.state)
        return self

    def _close(self, failed: bool) -> None:
        if self._token is not None:
            current_task.reset(self._token)
            self._token = None
        self._rt().record_task_run(self._run("failed" if failed else "completed", ended=datetime.now(UTC)))

    def _run(self, status: TaskStatus, ended: datetime | None = None) -> TaskRun:
        assert self.state is not None and self._started is not None
        return TaskRun(
            task_run_id=self.state.task_run_id,
            workflow=self.workflow,
            started_at=self._started,
            status=status,
            ended_at=ended,
            user=self.state.user,
            team=self.state.team,
            customer=self.state.customer,
            tags=self.state.tags,
        )

    def outcome(self, outcome_type: str, value: Decimal | None = None, *, outcome_id: str | None = None) -> Outcome:
        """Link a business result to this task run."""
        result = Outcome(
            outcome_id=outcome_id or "out-" + uuid.uuid4().hex,
            ts=datetime.now(UTC),
            outcome_type=outcome_type,
            value=value,
            task_run_ids=(self.task_run_id,),
            workflow=self.workflow,
            team=self.state.team if self.state else None,
        )
        self._rt().record_outcome(result)
        return result

    def __enter__(self) -> Task:
        return self._open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close(failed=exc_type is not None)

    async def __aenter__(self) -> Task:
        return self._open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close(failed=exc_type is not None)

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Use as a decorator: each call of `fn` is one task run."""
        settings = (self.workflow, self._args, self._runtime)

        def fresh() -> Task:
            workflow, args, runtime = settings
            return Task(workflow, runtime=runtime, **args)  # type: ignore[arg-type]

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with fresh():
                    return await fn(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with fresh():
                return fn(*args, **kwargs)

        return run


def task(workflow: str, **kwargs: Any) -> Task:
    """Open a task run: `with tokenops.task("support_ticket", user="ana") as t: ...`."""
    return Task(workflow, **kwargs)


def outcome(
    outcome_type: str,
    value: Decimal | None = None,
    *,
    task_run_ids: tuple[str, ...] | None = None,
    person: str | None = None,
    runtime: Runtime | None = None,
) -> Outcome:
    """Record an outcome for the current task run (or for given runs, or a person)."""
    state = current_task.get()
    runs = task_run_ids if task_run_ids is not None else ((state.task_run_id,) if state else ())
    result = Outcome(
        outcome_id="out-" + uuid.uuid4().hex,
        ts=datetime.now(UTC),
        outcome_type=outcome_type,
        value=value,
        task_run_ids=runs,
        workflow=state.workflow if state else None,
        person=person,
        team=state.team if state else None,
    )
    (runtime or current_runtime()).record_outcome(result)
    return result
