"""The run stage: one layer case -> a :class:`LayerResult`.

The case's task data (run/data.py), the model resident for it (run/residency.py), its
embeddings (one pass computes every planned layer, into the shared on-disk store) and the probe
or its cached result (run/probing.py). No ledger, no pytest: run/recorder.py turns a result
into a record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_plmtransfer.infra.errors import ResourceUnavailable
from pytest_plmtransfer.infra.provenance import effective_runtime
from pytest_plmtransfer.plan.cases import EmbeddingRequest, LayerCase
from pytest_plmtransfer.results.predictions import TestPredictions, predictions_path
from pytest_plmtransfer.run.embeddings import CaseEmbeddings
from pytest_plmtransfer.run.progress import CountingAdapter

if TYPE_CHECKING:
    from pytest_plmtransfer.models.base import ModelAdapter
    from pytest_plmtransfer.results.store import EmbeddingEntry, EmbeddingStore
    from pytest_plmtransfer.run.data import TaskSource
    from pytest_plmtransfer.run.probing import Prober
    from pytest_plmtransfer.run.progress import ProgressLine
    from pytest_plmtransfer.run.residency import ModelResidency
    from pytest_plmtransfer.run.timing import PhaseTimer
    from pytest_plmtransfer.tasks.spec import TaskData


@dataclass(frozen=True)
class LayerResult:
    """What running one layer case produced: the run stage's hand-off to the recorder."""

    case: LayerCase
    data: TaskData
    entry: EmbeddingEntry
    #: the probe's (or a user's head's) metrics, head settings, fit seconds, intervals
    result: dict[str, Any]
    hygiene: dict[str, Any]
    protocol: str
    #: where this layer's kept test predictions are (key, path, sha256); {} for a user's head
    predictions: dict[str, Any]
    weights: Any
    #: the device and dtype the model really ran on (fp16 falls back on CPU, one-hot never
    #: leaves the CPU)
    runtime: dict[str, Any]
    model_params: int | None


@dataclass(eq=False)
class LayerRunner:
    tasks: TaskSource
    models: ModelResidency
    store: EmbeddingStore
    prober: Prober
    timer: PhaseTimer
    #: layers each embedding request needs, over the final selection (plan.cases.planned_layers)
    planned: dict[EmbeddingRequest, set[int]] = field(default_factory=dict)
    #: set by the plugin when the progress line is on (see progress.py)
    progress: ProgressLine | None = None

    def run(self, case: LayerCase) -> LayerResult:
        """Probe one layer, or reuse its cached probe result."""
        adapter, data = self._case_data(case)
        with self.timer.measure(case.model, "data"):
            hygiene = self.tasks.hygiene(data, adapter.max_residues)
        with self.timer.measure(case.model, "embedding"):
            entry = self._entry(case.embedding_request, adapter, data, [case.layer])
        seed = case.seed if case.seed is not None else 0
        device = effective_runtime(adapter)["device"]
        fitting = partial(self.timer.measure, case.model, "probe")  # the fit alone: a cached result took none
        key, result = self.prober.result(entry, data, case.layer, seed, device, fitting)
        ref = {
            "key": key,
            "path": str(predictions_path(self.prober.results.root, key)),
            **result.get("predictions", {}),
        }
        return self._result(case, data, entry, result, hygiene.as_record(), adapter, ref)

    def case_embeddings(self, case: LayerCase) -> CaseEmbeddings:
        """The task data and cached embeddings of a layer case (the entry its layer test uses)."""
        adapter, data = self._case_data(case)
        entry = self._entry(case.embedding_request, adapter, data, [case.layer])
        return CaseEmbeddings(case.model, case.init, case.seed, case.task, case.layer, data, entry)

    def embeddings(
        self, model: str, task: str, *, init: str, seed: int | None = None, layers: Iterable[int] | None = None
    ) -> CaseEmbeddings:
        """Explicit request: embeddings of (model, init, seed) on a task, all layers by default."""
        adapter = self.models.adapter(model, init, seed)
        data = self.tasks.for_model(self.tasks.task(task), adapter.max_residues)
        wanted = set(layers) if layers is not None else range(adapter.num_layers + 1)
        entry = self._entry((model, init, seed, task), adapter, data, wanted)
        return CaseEmbeddings(model, init, seed, task, None, data, entry)

    def head_result(
        self,
        case: LayerCase,
        metrics: dict[str, float],
        head: str,
        *,
        settings: dict[str, Any] | None = None,
        fit_seconds: float = 0.0,
        predictions: Any = None,
    ) -> LayerResult:
        """A user's own head on a layer case, as a result like the probe's. Its case's model is
        ``<model>+<head>`` (its own row in reports); see the plugin's ``plm_record``."""
        if not head or any(c in head for c in "+[] "):
            raise ValueError(f"head name {head!r}: a non-empty name without '+', '[', ']' or spaces")
        embedded = self.case_embeddings(case)
        spec = embedded.data.spec
        if spec.test_metric not in metrics:
            raise ValueError(f"metrics of head {head!r} lack the task's test metric {spec.test_metric!r}")
        result: dict[str, Any] = {
            "metrics": {k: float(v) for k, v in metrics.items()},
            "head": {"name": head, **(settings or {})},
            "fit_seconds": fit_seconds,
        }
        if predictions is not None:
            if not isinstance(predictions, TestPredictions):
                if spec.kind != "regression":
                    raise ValueError(f"predictions of head {head!r} on a {spec.kind} task: give a TestPredictions")
                target = np.asarray(embedded.data.targets, dtype=float)[embedded.split("test")]
                predictions = TestPredictions("regression", target, np.asarray(predictions, dtype=float))
            result["intervals"], seconds = self.prober.intervals(predictions, spec.test_metric)
            result["interval_seconds"] = round(seconds, 4)
        adapter = self.models.adapter(case.model, case.init, case.seed)
        hygiene = self.tasks.hygiene(embedded.data, adapter.max_residues).as_record()
        labelled = LayerCase(f"{case.model}+{head}", case.task, case.layer, case.init, case.seed, case.num_layers)
        return self._result(labelled, embedded.data, embedded.entry, result, hygiene, adapter, {})

    def _case_data(self, case: LayerCase) -> tuple[ModelAdapter, TaskData]:
        """The case's model and its task's data cut to the model's length limit."""
        if case.unavailable:
            raise ResourceUnavailable(case.model, case.unavailable)
        with self.timer.measure(case.model, "data"):
            task = self.tasks.task(case.task)  # first: missing data skips without building the model
        adapter = self.models.adapter(case.model, case.init, case.seed)
        with self.timer.measure(case.model, "data"):
            data = self.tasks.for_model(task, adapter.max_residues)
        return adapter, data

    def _entry(self, request: EmbeddingRequest, adapter: ModelAdapter, data: TaskData, layers: Iterable[int]):
        """The store's entry with these layers and every planned one of the request (one pass)."""
        if data.spec.per_residue:
            sequences = data.sequences
        else:
            # Embed the sorted set of distinct sequences: tasks that share sequences in any order
            # (GB1's five splits) share one cache entry.
            sequences = sorted(set(data.sequences))
        adapter.validate_sequences(sequences)
        embedder: Any = adapter
        if self.progress is not None:
            model, init, seed, task = request
            label = f"{model}/{init}" + (f"/s{seed}" if seed is not None else "") + f" {task}"
            embedder = CountingAdapter(adapter, self.progress, label)
        layers = sorted(self.planned.get(request, set()) | set(layers))
        return self.store.get_or_compute(embedder, sequences, layers, per_residue=data.spec.per_residue)

    def _result(self, case, data, entry, result, hygiene, adapter: ModelAdapter, predictions) -> LayerResult:
        return LayerResult(
            case=case,
            data=data,
            entry=entry,
            result=result,
            hygiene=hygiene,
            protocol=self.prober.protocol.name,
            predictions=predictions,
            weights=adapter.identity(),
            runtime=effective_runtime(adapter),
            model_params=getattr(adapter, "num_parameters", None),
        )
