"""One layer's probe on cached embeddings, its kept test predictions and bootstrap interval,
and the result cache that makes a rerun refit nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from pytest_plmtransfer.infra.hashing import payload_key
from pytest_plmtransfer.measure.probe import ProbeInput, probe
from pytest_plmtransfer.measure.stats import interval
from pytest_plmtransfer.results.predictions import (
    PredictionsError,
    load_predictions,
    predictions_path,
    save_predictions,
)
from pytest_plmtransfer.tasks.catalog import UNSEEN_TEST_LABELS_ALLOWED

if TYPE_CHECKING:
    from pytest_plmtransfer.measure.protocol import Protocol
    from pytest_plmtransfer.results.result_cache import ResultCache
    from pytest_plmtransfer.results.store import EmbeddingEntry
    from pytest_plmtransfer.tasks.spec import TaskData

#: bump when probing changes in a way that changes numbers, so cached layer results are redone
#: (2: per-residue softmax batches of 1024 with a fused step; per-residue results gained
#: test_f1_macro / test_mcc, Bind's headline. 3: both of those together)
PROBE_VERSION = 3


@dataclass(eq=False)
class Prober:
    protocol: Protocol
    results: ResultCache
    #: the --plm-head-* values, the requested device, --plm-bootstrap, --plm-limit
    head: dict[str, Any]
    device: str
    bootstrap: int
    limit: int | None

    def result(
        self,
        entry: EmbeddingEntry,
        data: TaskData,
        layer: int,
        seed: int,
        device: str,
        fitting: Callable[[], AbstractContextManager[Any]] = nullcontext,
    ) -> tuple[str, dict]:
        """The probe result of one layer (its result-cache key, the result): cached, or fitted on
        ``device`` (where the embeddings really were made) and cached. ``fitting`` wraps the fit
        alone (the run's "probe" seconds: zero for a cached result)."""
        key = self.result_key(entry.key, data, layer, seed)
        found = self.results.get(key)
        if found is None or not predictions_path(self.results.root, key).is_file():
            with fitting():
                found = self._probe(entry, data, layer, seed, key, device)
            self.results.put(key, found)
        elif self._refresh_intervals(key, found):
            self.results.put(key, found)
        return key, found

    def intervals(self, preds, metric: str) -> tuple[dict[str, Any], float]:
        """Bootstrap interval of the task's test metric (``{}`` with --plm-bootstrap 0), and the
        seconds it took."""
        if self.bootstrap <= 0 or preds.n_units < 2:
            return {}, 0.0
        start = time.perf_counter()
        found = interval(preds, metric, n_resamples=self.bootstrap).to_dict()
        return {metric: found}, time.perf_counter() - start

    def _refresh_intervals(self, key: str, result: dict[str, Any]) -> bool:
        """Recompute a cached result's intervals from its stored predictions when the number of
        resamples asked for changed (no refit). True when the result changed."""
        have = {v.get("n_resamples") for v in (result.get("intervals") or {}).values()}
        if (self.bootstrap <= 0 and not have) or have == {self.bootstrap}:
            return False
        try:
            preds = load_predictions(predictions_path(self.results.root, key), result["predictions"].get("sha256"))
        except PredictionsError:
            return False
        intervals, seconds = self.intervals(preds, result["test_metric"])
        result["intervals"], result["interval_seconds"] = intervals, round(seconds, 4)
        return True

    def _probe(self, entry, data: TaskData, layer: int, seed: int, key: str, device: str) -> dict[str, Any]:
        if data.spec.per_residue:
            X, offsets = entry.layer(layer), entry.offsets
        else:
            X, offsets = entry.rows(layer, data.sequences), None
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
            settings=self.settings(device),
        )
        result = {
            "metrics": out.metrics,
            "head": out.head,
            "fit_seconds": out.fit_seconds,
            "test_metric": data.spec.test_metric,
        }
        if out.predictions is not None:
            result["predictions"] = save_predictions(predictions_path(self.results.root, key), out.predictions)
            intervals, seconds = self.intervals(out.predictions, data.spec.test_metric)
            result["intervals"], result["interval_seconds"] = intervals, round(seconds, 4)
        return result

    def settings(self, device: str | None = None):
        """Head settings of this run: ``--plm-head-*`` values, probes on the embedding device
        (``device``: where the embeddings really were made; default the requested one)."""
        return self.protocol.probe_settings(self.head, device or self.device)

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
        if self.limit is not None:  # a subsample's probe is another result
            payload["limit"] = self.limit
        settings = self.settings()
        if self.head or settings.device != "cpu":  # defaults on CPU add nothing
            payload["head_settings"] = {**self.head, "device": settings.device}
        return payload_key(payload)
