"""Running spend per task run, for the `X-Tokenops-Task-Cost-USD` header.

In-process and bounded; shared budgets across replicas belong to `tokenops.guard`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from decimal import Decimal


class TaskSpend:
    """Spend so far of recently active task runs (least recently used forgotten first)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._spent: OrderedDict[str, Decimal] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def add(self, task_run_id: str, cost: Decimal) -> Decimal:
        """Add a call's cost; returns the task's total."""
        with self._lock:
            total = self._spent.pop(task_run_id, Decimal(0)) + cost
            self._spent[task_run_id] = total
            if len(self._spent) > self._capacity:
                self._spent.popitem(last=False)
            return total

    def get(self, task_run_id: str) -> Decimal:
        """Spend so far (0 for an unknown task)."""
        with self._lock:
            return self._spent.get(task_run_id, Decimal(0))
