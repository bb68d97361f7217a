"""Task data as a run sees it: each task read once per process (under the protocol's data
quirks and ``--plm-limit``), cut to a model's length limit, and checked once for duplicates and
train/test leakage."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_plmtransfer.infra.errors import ResourceUnavailable
from pytest_plmtransfer.tasks.catalog import get_task
from pytest_plmtransfer.tasks.hygiene import DataLeakageError, DataLeakageWarning, conflict_message, leakage_message
from pytest_plmtransfer.tasks.hygiene import measure as measure_hygiene
from pytest_plmtransfer.tasks.prepare import limit_per_split, prepare_for_model
from pytest_plmtransfer.tasks.readers import load_task

if TYPE_CHECKING:
    from pytest_plmtransfer.measure.protocol import Protocol
    from pytest_plmtransfer.tasks.resolve import DataResolver
    from pytest_plmtransfer.tasks.spec import TaskData


@dataclass(eq=False)
class TaskSource:
    resolver: DataResolver
    protocol: Protocol
    limit: int | None
    leakage_max: float
    strict: bool
    _tasks: dict[str, TaskData] = field(default_factory=dict)
    _errors: dict[str, Exception] = field(default_factory=dict)
    _hygiene: dict[tuple[str, int | None], Any] = field(default_factory=dict)

    def task(self, task_id: str) -> TaskData:
        if task_id in self._errors:
            raise self._errors[task_id]
        if task_id not in self._tasks:
            spec = get_task(task_id)
            try:
                data = self.protocol.prepare(load_task(spec, self.resolver.resolve(spec)))
            except ResourceUnavailable as exc:
                self._errors[task_id] = exc
                raise
            self._tasks[task_id] = data if self.limit is None else limit_per_split(data, self.limit)
        return self._tasks[task_id]

    def for_model(self, task: TaskData, max_residues: int | None) -> TaskData:
        """The task's data cut to a model's length limit (under the protocol's rule)."""
        return prepare_for_model(task, self.protocol.model_max_residues(max_residues))

    def hygiene(self, data: TaskData, max_residues: int | None):
        """Duplicates and train/test overlap of the sequences the model sees, counted once per
        (task, length limit); leakage above ``--plm-leakage-max`` warns (fails under --plm-strict)."""
        key = (data.spec.task_id, self.protocol.model_max_residues(max_residues))
        if key not in self._hygiene:
            hygiene = measure_hygiene(data)
            problem = leakage_message(data.spec.task_id, data.source, hygiene, self.leakage_max)
            self._hygiene[key] = (hygiene, problem)
            for line in (conflict_message(data, hygiene), None if self.strict else problem):
                if line:
                    warnings.warn(DataLeakageWarning(line), stacklevel=2)
        hygiene, problem = self._hygiene[key]
        if problem and self.strict:
            raise DataLeakageError(f"{problem} (--plm-strict)")
        return hygiene
