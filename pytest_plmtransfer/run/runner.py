"""The run stage: one layer case -> a :class:`LayerResult`.

Task data (read once per process and task), the model resident for the case, its embeddings
(one pass computes every planned layer, into the shared on-disk store), the probe (or its cached
result) and the bootstrap interval. No ledger, no pytest: run/recorder.py turns a result into
a record.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pytest_plmtransfer.infra.errors import ResourceUnavailable
from pytest_plmtransfer.infra.hashing import payload_key
from pytest_plmtransfer.infra.provenance import effective_runtime
from pytest_plmtransfer.measure.probe import ProbeInput, probe
from pytest_plmtransfer.measure.protocol import Protocol
from pytest_plmtransfer.measure.stats import interval
from pytest_plmtransfer.models.base import ModelAdapter
from pytest_plmtransfer.options import PlmOptions
from pytest_plmtransfer.plan.cases import EmbeddingRequest, LayerCase
from pytest_plmtransfer.results.predictions import (
    PredictionsError,
    TestPredictions,
    load_predictions,
    predictions_path,
    save_predictions,
)
from pytest_plmtransfer.results.result_cache import ResultCache
from pytest_plmtransfer.results.store import EmbeddingEntry, EmbeddingStore
from pytest_plmtransfer.run.embeddings import CaseEmbeddings
from pytest_plmtransfer.run.progress import CountingAdapter, ProgressLine
from pytest_plmtransfer.run.residency import ModelResidency
from pytest_plmtransfer.run.timing import PhaseTimer
from pytest_plmtransfer.tasks.catalog import UNSEEN_TEST_LABELS_ALLOWED, get_task
from pytest_plmtransfer.tasks.hygiene import DataLeakageError, DataLeakageWarning, conflict_message, leakage_message
from pytest_plmtransfer.tasks.hygiene import measure as measure_hygiene
from pytest_plmtransfer.tasks.prepare import limit_per_split, prepare_for_model
from pytest_plmtransfer.tasks.readers import load_task
from pytest_plmtransfer.tasks.resolve import DataResolver
from pytest_plmtransfer.tasks.spec import TaskData

#: bump when probing changes in a way that changes numbers, so cached layer results are redone
#: (2: per-residue softmax batches of 1024 with a fused step; per-residue results gained
#: test_f1_macro / test_mcc, Bind's headline. 3: both of those together)
PROBE_VERSION = 3


@dataclass(frozen=True)
class LayerResult:
    """What running one layer case produced: the run stage's hand-off to the recorder."""

    case: LayerCase
    data: TaskData
    entry: EmbeddingEntry
    #: the probe's (or a user's head's) metrics, head settings, fit seconds, intervals, predictions
    result: dict[str, Any]
    #: key of the cached probe result (None for a user's own head: nothing cached)
    result_key: str | None
    hygiene: dict[str, Any]
    protocol: str
    #: where this layer's kept test predictions are (key, path, sha256); {} for a user's head
    predictions: dict[str, Any]
    weights: dict[str, Any]
    runtime: dict[str, Any]
    model_params: int | None


class LayerRunner:
    def __init__(
        self,
        options: PlmOptions,
        protocol: Protocol,
        models: ModelResidency,
        resolver: DataResolver,
        store: EmbeddingStore,
        results: ResultCache,
        timer: PhaseTimer,
    ) -> None:
        self.options = options
        self.protocol = protocol
        self.models = models
        self.resolver = resolver
        self.store = store
        self.results = results
        self.timer = timer
        #: layers each embedding request needs, over the final selection (plan.cases.planned_layers)
        self.planned: dict[EmbeddingRequest, set[int]] = {}
        #: set by the plugin when the progress line is on (see progress.py)
        self.progress: ProgressLine | None = None
        self._tasks: dict[str, TaskData] = {}
        self._task_errors: dict[str, Exception] = {}
        self._hygiene: dict[tuple[str, int | None], Any] = {}

    # ------------------------------------------------------------------ data
    def task_data(self, task_id: str) -> TaskData:
        if task_id in self._task_errors:
            raise self._task_errors[task_id]
        if task_id not in self._tasks:
            spec = get_task(task_id)
            try:
                data = self.protocol.prepare(load_task(spec, self.resolver.resolve(spec)))
            except ResourceUnavailable as exc:
                self._task_errors[task_id] = exc
                raise
            if self.options.limit is not None:
                data = limit_per_split(data, self.options.limit)
            self._tasks[task_id] = data
        return self._tasks[task_id]

    def _case_data(self, case: LayerCase) -> tuple[ModelAdapter, TaskData]:
        """The case's model and its task's data cut to the model's length limit."""
        if case.unavailable:
            raise ResourceUnavailable(case.model, case.unavailable)
        with self.timer.measure(case.model, "data"):
            task = self.task_data(case.task)  # first: missing data skips without building the model
        adapter = self.models.adapter(case.model, case.init, case.seed)
        with self.timer.measure(case.model, "data"):
            data = prepare_for_model(task, self.protocol.model_max_residues(adapter.max_residues))
        return adapter, data

    def hygiene(self, data: TaskData, adapter: ModelAdapter):
        """Duplicates and train/test overlap of the sequences the model sees, counted once per
        (task, length limit); leakage above ``--plm-leakage-max`` warns (fails under --plm-strict)."""
        key = (data.spec.task_id, self.protocol.model_max_residues(adapter.max_residues))
        if key not in self._hygiene:
            hygiene = measure_hygiene(data)
            problem = leakage_message(data.spec.task_id, data.source, hygiene, self.options.leakage_max)
            self._hygiene[key] = (hygiene, problem)
            for line in (conflict_message(data, hygiene), None if self.options.strict else problem):
                if line:
                    warnings.warn(DataLeakageWarning(line), stacklevel=2)
        hygiene, problem = self._hygiene[key]
        if problem and self.options.strict:
            raise DataLeakageError(f"{problem} (--plm-strict)")
        return hygiene

    # ------------------------------------------------------------------ embeddings
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
        data = prepare_for_model(self.task_data(task), self.protocol.model_max_residues(adapter.max_residues))
        wanted = set(layers) if layers is not None else range(adapter.num_layers + 1)
        entry = self._entry((model, init, seed, task), adapter, data, wanted)
        return CaseEmbeddings(model, init, seed, task, None, data, entry)

    # ------------------------------------------------------------------ probing
    def run(self, case: LayerCase) -> LayerResult:
        """Probe one layer, or reuse its cached probe result."""
        adapter, data = self._case_data(case)
        with self.timer.measure(case.model, "data"):
            hygiene = self.hygiene(data, adapter)
        with self.timer.measure(case.model, "embedding"):
            entry = self._entry(case.embedding_request, adapter, data, [case.layer])
        probe_seed = case.seed if case.seed is not None else 0
        key = self.result_key(entry.key, data, case.layer, probe_seed)
        result = self.results.get(key)
        if result is None or not predictions_path(self.results.root, key).is_file():
            with self.timer.measure(case.model, "probe"):
                result = self._probe(entry, data, case.layer, probe_seed, key, adapter)
            self.results.put(key, result)
        elif self._refresh_intervals(key, result):
            self.results.put(key, result)
        return self._result(case, data, entry, result, key, hygiene.as_record(), adapter)

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
        ``<model>+<head>`` (its own row in reports); see plugin's ``plm_record``."""
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
            result["intervals"], seconds = self._intervals(predictions, spec.test_metric)
            result["interval_seconds"] = round(seconds, 4)
        adapter = self.models.adapter(case.model, case.init, case.seed)
        hygiene = self.hygiene(embedded.data, adapter).as_record()
        labelled = LayerCase(f"{case.model}+{head}", case.task, case.layer, case.init, case.seed, case.num_layers)
        return self._result(labelled, embedded.data, embedded.entry, result, None, hygiene, adapter)

    def _result(self, case, data, entry, result, key, hygiene, adapter: ModelAdapter) -> LayerResult:
        return LayerResult(
            case=case,
            data=data,
            entry=entry,
            result=result,
            result_key=key,
            hygiene=hygiene,
            protocol=self.protocol.name,
            predictions={}
            if key is None
            else {
                "key": key,
                "path": str(predictions_path(self.results.root, key)),
                **(result.get("predictions") or {}),
            },
            weights=adapter.identity(),
            # what the model really ran on, not what was asked (fp16 falls back on CPU, one-hot
            # never leaves the CPU)
            runtime=effective_runtime(adapter),
            model_params=getattr(adapter, "num_parameters", None),
        )

    def _intervals(self, preds, metric: str) -> tuple[dict[str, Any], float]:
        """Bootstrap interval of the task's test metric (``{}`` with --plm-bootstrap 0)."""
        n = self.options.bootstrap
        if n <= 0 or preds.n_units < 2:
            return {}, 0.0
        start = time.perf_counter()
        found = interval(preds, metric, n_resamples=n).to_dict()
        return {metric: found}, time.perf_counter() - start

    def _refresh_intervals(self, key: str, result: dict[str, Any]) -> bool:
        """Recompute a cached result's intervals from its stored predictions when the number of
        resamples asked for changed (no refit). True when the result changed."""
        have = {v.get("n_resamples") for v in (result.get("intervals") or {}).values()}
        want = self.options.bootstrap
        if (want <= 0 and not have) or have == {want}:
            return False
        try:
            preds = load_predictions(predictions_path(self.results.root, key), result["predictions"].get("sha256"))
        except PredictionsError:
            return False
        intervals, seconds = self._intervals(preds, result["test_metric"])
        result["intervals"], result["interval_seconds"] = intervals, round(seconds, 4)
        return True

    def _probe(self, entry, data: TaskData, layer: int, seed: int, key: str, adapter) -> dict[str, Any]:
        array = entry.layer(layer)
        if data.spec.per_residue:
            X, offsets = array, entry.offsets
        else:
            row_of = {seq: i for i, seq in enumerate(entry.sequences)}
            X = np.asarray(array[np.fromiter((row_of[s] for s in data.sequences), dtype=np.int64)])
            offsets = None
        out = probe(
            ProbeInput(
                kind=data.spec.kind,
                X=X,
                offsets=offsets,
                targets=list(data.targets),
                splits=data.splits,
                residue_masks=data.residue_masks,
                selection_metric=data.spec.selection_metric,
                unseen_test_labels=data.spec.dataset in UNSEEN_TEST_LABELS_ALLOWED,
            ),
            seed=seed,
            # on the device the embeddings were really made on (a CPU fallback stays on the CPU)
            settings=self.probe_settings(effective_runtime(adapter)["device"]),
        )
        result = {
            "metrics": out.metrics,
            "head": out.head,
            "fit_seconds": out.fit_seconds,
            "test_metric": data.spec.test_metric,
        }
        if out.predictions is not None:
            result["predictions"] = save_predictions(predictions_path(self.results.root, key), out.predictions)
            intervals, seconds = self._intervals(out.predictions, data.spec.test_metric)
            result["intervals"], result["interval_seconds"] = intervals, round(seconds, 4)
        return result

    def probe_settings(self, device: str | None = None):
        """Head settings of this run: ``--plm-head-*`` values, probes on the embedding device
        (``device``: where the embeddings really were made; default the requested one)."""
        return self.protocol.probe_settings(self.options.head, device or self.models.model_options.device)

    def result_key(self, embedding_key: str, data: TaskData, layer: int, seed: int) -> str:
        payload = {
            "probe_version": PROBE_VERSION,
            "embedding": embedding_key,
            "task": asdict(data.spec),
            "data_sha256": data.sha256,
            "layer": layer,
            "seed": seed,
            "protocol": self.protocol.name,
        }
        if self.options.limit is not None:  # a subsample's probe is another result
            payload["limit"] = self.options.limit
        settings = self.probe_settings()
        if self.options.head or settings.device != "cpu":  # defaults on CPU add nothing
            payload["head_settings"] = {**self.options.head, "device": settings.device}
        return payload_key(payload)
