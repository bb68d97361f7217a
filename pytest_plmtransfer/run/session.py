"""The benchmark session: what is selected, and how one (model, task, layer, init, seed) is run.

Plain Python, no pytest: the plugin's hooks only translate between pytest and this object, so it
is testable on its own. One ``PlmSession`` lives per pytest process (controller and each xdist
worker); they share work through the on-disk embedding and result caches, which are locked.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pytest_plmtransfer import __version__
from pytest_plmtransfer.infra.errors import PlmTransferError, ResourceUnavailable
from pytest_plmtransfer.infra.hashing import payload_key
from pytest_plmtransfer.infra.locks import LockPolicy
from pytest_plmtransfer.infra.provenance import effective_runtime, machine_info, utc_now
from pytest_plmtransfer.measure.protocol import get_protocol
from pytest_plmtransfer.models.base import INITS, ONEHOT, ModelAdapter
from pytest_plmtransfer.models.describe import ModelDescription
from pytest_plmtransfer.models.registry import ModelOptions, ModelRegistry
from pytest_plmtransfer.options import PlmOptions, parse_layers
from pytest_plmtransfer.results.ledger import Ledger
from pytest_plmtransfer.results.records import ClaimRecord, LayerRecord, Provenance
from pytest_plmtransfer.tasks.catalog import UNSEEN_TEST_LABELS_ALLOWED, get_task
from pytest_plmtransfer.tasks.prepare import prepare_for_model
from pytest_plmtransfer.tasks.readers import load_task
from pytest_plmtransfer.tasks.resolve import DataResolver, default_cache_dir
from pytest_plmtransfer.tasks.spec import TaskData

#: bump when probing changes in a way that changes numbers, so cached layer results are redone
#: (2: per-residue softmax batches of 1024 with a fused step; per-residue results gained
#: test_f1_macro / test_mcc, Bind's headline. 3: both of those together)
PROBE_VERSION = 3


@dataclass(frozen=True)
class LayerCase:
    """One parametrized test: a (model, task, layer, init, seed)."""

    model: str
    task: str
    layer: int
    init: str
    seed: int | None
    num_layers: int
    #: set when the model could not even be described (e.g. its config needs absent files)
    unavailable: str | None = None
    show_seed: bool = False

    @property
    def id(self) -> str:
        layer = "Lall" if self.unavailable else f"L{self.layer:02d}"  # layers unknown without weights
        base = f"{self.model}-{self.task}-{layer}-{self.init}"
        return f"{base}-s{self.seed}" if self.show_seed and self.seed is not None else base

    @property
    def embedding_request(self) -> tuple[str, str, int | None, str]:
        return (self.model, self.init, self.seed, self.task)


def claim_models(claim) -> tuple[str, ...]:
    """The models whose layer results on its task a claim case reads: its own, then those its
    kind compares with."""
    from pytest_plmtransfer.judge.claims.kinds import get_kind

    others = get_kind(claim.kind).comparators(claim)
    return (claim.model, *(m for m in dict.fromkeys(others) if m != claim.model))


class PlmSession:
    def __init__(
        self,
        options: PlmOptions,
        registry: ModelRegistry,
        *,
        root: Path,
        run_id: str | None = None,
        worker: str = "main",
        cuda_visible_devices: str | None = None,
    ) -> None:
        from pytest_plmtransfer.plan.sharding import Shard

        self.options = options
        self.registry = registry
        self.root = root
        self.run_id = run_id or options.run_id or uuid.uuid4().hex[:12]
        #: pytest-xdist worker id ("gw0") or "main"; and the GPU it was pinned to, if any
        self.worker = worker
        self.cuda_visible_devices = cuda_visible_devices
        self.shard = Shard.parse(options.shard) if options.shard else None
        #: hash of the shard plan of this selection (set by the plugin after collection)
        self.plan_hash: str | None = None
        #: every per-protocol choice (how inits are made, data quirks, probe defaults)
        self.protocol = get_protocol(options.protocol)
        self.cache_dir = options.cache_dir or default_cache_dir()
        self.resolver = DataResolver(
            options.data_dir,
            self.cache_dir,
            allow_download=options.allow_download,
            require_data_dir=options.strict,
            **({"base_url": options.flip_url} if options.flip_url else {}),
            expected_sha256=options.flip_sha256,
        )
        from pytest_plmtransfer.results.result_cache import ResultCache
        from pytest_plmtransfer.results.store import EmbeddingStore

        #: where "still waiting for a lock" lines go; the plugin points it past output capture
        self.notify: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)
        self.lock_policy = LockPolicy(
            report_after=options.lock_timeout, fail=options.lock_fail, notify=lambda line: self.notify(line)
        )
        self.store = EmbeddingStore(
            self.cache_dir / "embeddings", dtype=options.cache_dtype, lock_policy=self.lock_policy
        )
        self.results_dir = self.cache_dir / "results"
        self.results = ResultCache(self.results_dir, self.lock_policy)
        self.ledger = Ledger(
            options.ledger,
            run_id=self.run_id,
            shard=self.shard.tag if self.shard else "all",
            worker=worker,
        )
        #: records a full or failing ledger disk refused, retried with the next write
        self.unsaved: list[dict[str, Any]] = []
        self._hygiene: dict[tuple[str, int | None], Any] = {}
        self.model_options = ModelOptions(
            weights_dir=options.weights_dir,
            device=_resolve_device(options.device),
            dtype=options.dtype,
            token_budget=options.token_budget,
            allow_download=options.allow_download,
            progress=False,  # the session's progress line (below) shows embedding, under capture too
            protocol=options.protocol,
            extra={"attention": options.attention},
        )
        #: the one adapter resident in this process, and the (model, init, seed) it is for
        self._resident: tuple[tuple[str, str, int | None], ModelAdapter] | None = None
        #: builds that failed for want of resources (weights): remembered, not retried per test
        self._adapter_errors: dict[tuple[str, str, int | None], ResourceUnavailable] = {}
        #: adapters built in this process (tests assert that collection builds none)
        self.builds = 0
        self._descriptions: dict[str, ModelDescription | ResourceUnavailable] = {}
        #: layer records made in this process, for the claims that read them
        self._layer_records: dict[tuple, dict[str, Any]] = {}
        self._ledger_records: list[dict[str, Any]] | None = None
        #: set by the plugin when the progress line is on (see progress.py)
        self.progress = None
        if options.threads:
            from pytest_plmtransfer.infra.threads import limit_threads

            limit_threads(options.threads)
        self._tasks: dict[str, TaskData] = {}
        self._task_errors: dict[str, Exception] = {}
        #: layers needed per (model, init, seed, task), from the final selection of tests
        self._planned_layers: dict[tuple, set[int]] = {}
        self._machine: dict[str, Any] | None = None
        self._layer_cases: list[LayerCase] | None = None
        #: lines for the terminal summary (e.g. baselines written)
        self.notes: list[str] = []
        from pytest_plmtransfer.run.timing import PhaseTimer

        #: per-model seconds in collection / data / embedding / probe / ledger (timing.py)
        self.timer = PhaseTimer()

    # ---------------------------------------------------------------- selection
    def inits_for(self, model: str) -> list[tuple[str, int | None]]:
        """(init, seed) pairs selected for a model: pretrained once; random/stat once per seed."""
        entry = self.registry.entry(model)
        pairs: list[tuple[str, int | None]] = []
        for init in entry.inits:
            if init == "none":
                pairs.append(("none", None))
            elif init in self.options.inits:
                if init == "pretrained":
                    pairs.append((init, None))
                else:
                    pairs.extend((init, seed) for seed in self.options.seeds)
        return pairs

    def describe(self, model: str) -> ModelDescription:
        """The model's description (no build); ResourceUnavailable when even that needs files."""
        if model not in self._descriptions:
            try:
                self._descriptions[model] = self.registry.describe(model, self.model_options)
            except ResourceUnavailable as exc:
                self._descriptions[model] = exc
        found = self._descriptions[model]
        if isinstance(found, ResourceUnavailable):
            raise found
        return found

    def adapter(self, model: str, init: str, seed: int | None) -> ModelAdapter:
        """The adapter for (model, init, seed), built on first use. At most one adapter is
        resident: building another releases the previous one first (tests run group by group,
        see plugin.pytest_collection_modifyitems, so each is built once per process)."""
        key = (model, init, seed)
        if key in self._adapter_errors:
            raise self._adapter_errors[key]
        if self._resident is not None and self._resident[0] == key:
            return self._resident[1]
        self.release_adapter()
        try:
            adapter = self.registry.create(model, init, seed, self.model_options)
        except ResourceUnavailable as exc:
            self._adapter_errors[key] = exc
            raise
        from pytest_plmtransfer.infra.identity import ensure_content_identity

        ensure_content_identity(adapter)  # user adapters: weights hashed into the cache key
        self.builds += 1
        self._resident = (key, adapter)
        return adapter

    def release_adapter(self) -> None:
        """Drop the resident adapter and give its memory back (GPU cache included)."""
        if self._resident is None:
            return
        self._resident = None
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():
            torch.cuda.empty_cache()

    def collected_tasks(self) -> list[str]:
        """The chosen tasks, or (none chosen) the whole catalog, default tasks first: the default
        selection then deselects the others unless -k/-m chose tasks (see selection.py)."""
        if self.options.tasks_chosen:
            return list(self.options.tasks)
        from pytest_plmtransfer.tasks.catalog import task_ids

        return list(dict.fromkeys([*self.options.tasks, *task_ids()]))

    def layer_cases(self) -> list[LayerCase]:
        if self._layer_cases is None:
            self._layer_cases = self._build_layer_cases(self.options.models)
        return self._layer_cases

    def _build_layer_cases(self, models: Iterable[str]) -> list[LayerCase]:
        tasks = self.collected_tasks()
        for task in tasks:
            get_task(task)  # unknown task ids fail collection with the list of known ones
        cases: list[LayerCase] = []
        if self.options.from_ledger is not None:
            self.ledger_layer_records()  # a wrong path or an empty ledger: one line, before anything runs
            return cases  # claims only, from the ledger's records
        show_seed = len(self.options.seeds) > 1
        for model in models:
            try:  # from config tables / config files: nothing is built, loaded or downloaded
                with self.timer.measure(model, "collection"):
                    num_layers, unavailable = self.describe(model).num_layers, None
            except ResourceUnavailable as exc:
                num_layers, unavailable = 0, str(exc)
            for init, seed in self.inits_for(model):
                layers = parse_layers(self.options.layers, num_layers, model) if unavailable is None else [0]
                for task in tasks:
                    for layer in layers:
                        cases.append(LayerCase(model, task, layer, init, seed, num_layers, unavailable, show_seed))
        return cases

    def plan(self, cases: Iterable[LayerCase], claims: Iterable[Any] = ()) -> None:
        """Record which layers each embedding request needs, so one pass computes them all.

        Claim tests need the layers of their (model, task) and of the models their kind compares
        with (one-hot for beats_onehot), selected or not.
        """
        self._planned_layers.clear()
        needed = list(cases)
        for claim in claims:
            needed.extend(self.claim_layer_cases(claim))
        for case in needed:
            self._planned_layers.setdefault(case.embedding_request, set()).add(case.layer)

    def set_plan(self, plan) -> None:
        """The shard plan of this selection (see sharding.py): hash in every record, whole
        plan in this process's ledger part header (for ``plmtransfer merge``)."""
        self.plan_hash = plan.hash
        self.ledger.header = {
            "shard": self.shard.label if self.shard else None,
            "worker": self.worker,
            "plan_hash": plan.hash,
            "plan": plan.to_dict(),
        }

    # ---------------------------------------------------------------- claims
    def baseline_store(self):
        """The user's baselines directory over the shipped defaults (see defaults.py)."""
        from pytest_plmtransfer.judge.defaults import LayeredBaselineStore

        return LayeredBaselineStore(self.options.baselines_dir)

    def claim_cases(self) -> list[Any]:
        """Every claim in ``<baselines>/claims.json`` applied to the selected (model, task, init)."""
        from pytest_plmtransfer.judge.claims.kinds import get_kind
        from pytest_plmtransfer.judge.claims.spec import check_selectors, expand_claims
        from pytest_plmtransfer.tasks.catalog import task_ids

        claims = self.baseline_store().claims()
        if claims is None:
            return []
        if self.options.from_ledger is not None:
            # what the ledger measured, whatever this command line selects
            layers = self.ledger_layer_records()
            available = list(dict.fromkeys((r["model"], r["task"], r["init"]) for r in layers))
            inits_of: dict[str, set[str]] = {}
            for model, _task, init in available:
                inits_of.setdefault(model, set()).add(init)
        else:
            # one-hot is included: no_regression and matches_paper apply to it (init "none"); the
            # claims file's kinds that make no sense for it (beats_onehot, ...) never select it
            available = [
                (model, task, init)
                for model in self.options.models
                for init in dict.fromkeys(init for init, _ in self.inits_for(model))
                for task in self.collected_tasks()
            ]
            inits_of = {m: set(self.registry.entry(m).inits) for m in self.options.models}
        # a pattern that matches nothing known is a typo that would silently weaken a CI gate
        check_selectors(
            claims,
            models=[*self.registry.names(), *self.options.models, ONEHOT, *(m for m, _t, _i in available)],
            tasks=task_ids(),
            inits=[*INITS, "none"],
        )
        cases = expand_claims(claims, available)
        # e.g. "pretrained beats random" cannot apply to a model that has no random init
        return [c for c in cases if get_kind(c.kind).applies_to(c.model, inits_of.get(c.model, ()))]

    def ledger_layer_records(self) -> list[dict[str, Any]]:
        """Layer records of ``--plm-from-ledger``, each checked against its digest, newest per
        (model, task, layer, init, seed, protocol). A path that holds none is an error: claims
        judged on nothing would let a gate pass."""
        if self._ledger_records is None:
            from pytest_plmtransfer.results.ledger import LedgerError, read_records, record_key

            path = self.options.from_ledger
            if not Path(path).exists():
                raise LedgerError(f"--plm-from-ledger {path}: no such ledger (directory or file)")
            try:
                records = [r for r in read_records(path, verify=True) if r.get("kind", "layer") == "layer"]
            except LedgerError as exc:
                raise LedgerError(f"--plm-from-ledger {exc}") from None
            if not records:
                raise LedgerError(
                    f"--plm-from-ledger {path}: the ledger holds no layer records; no claim can be judged"
                )
            newest: dict[tuple, dict[str, Any]] = {}
            every = records
            records = [r for r in every if r.get("protocol") == self.protocol.name]
            if not records:
                found = sorted({str(r.get("protocol")) for r in every})
                raise LedgerError(
                    f"--plm-from-ledger {path}: no layer records of the {self.protocol.name!r} protocol "
                    f"(it holds: {', '.join(found)}); choose it with --plm-protocol"
                )
            for rec in sorted(records, key=lambda r: str(r.get("timestamp") or "")):
                newest[record_key(rec)] = rec
            self._ledger_records = list(newest.values())
        return self._ledger_records

    def claim_layer_cases(self, claim) -> list[LayerCase]:
        """The per-layer results a claim reads: its model on its task (every init and seed) and
        the models its kind compares with (e.g. one-hot), on the task (added even when not
        selected: the claim cannot be judged without them)."""
        own = [c for c in self.layer_cases() if c.model == claim.model and c.task == claim.task]
        for model in claim_models(claim)[1:]:
            theirs = [c for c in self.layer_cases() if c.model == model and c.task == claim.task]
            own += theirs or [c for c in self._build_layer_cases([model]) if c.task == claim.task]
        return own

    def evaluate_claim(self, claim, *, strict: bool) -> tuple[Any, dict[str, Any]]:
        """Evaluate one claim on the per-layer results (cached: no refitting); returns the outcome
        and its ledger record."""
        from pytest_plmtransfer.judge.claims.evaluate import claim_record, evaluate
        from pytest_plmtransfer.results.ledger import records_to_frame

        if self.options.from_ledger is not None:
            records = [
                r for r in self.ledger_layer_records() if r["task"] == claim.task and r["model"] in claim_models(claim)
            ]
        else:
            records = []
            causes: list[str] = []
            for case in self.claim_layer_cases(claim):
                done = self._layer_records.get(case.embedding_request + (case.layer,))
                if done is not None:  # measured by a layer test of this process: no rebuild
                    records.append(done)
                    continue
                try:
                    records.append(self.run_layer(case))
                except ResourceUnavailable as exc:
                    causes += [str(exc)] if str(exc) not in causes else []
        outcome = evaluate(claim, records_to_frame(records), self.baseline_store())
        if self.options.from_ledger is None and outcome.missing and causes:
            # the command the kind suggests would skip the same way: say why instead
            more = f" (and {len(causes) - 1} more missing input(s))" if len(causes) > 1 else ""
            outcome = replace(outcome, message=f"{claim.id} cannot be judged here: {causes[0]}{more}")
        fields = claim_record(claim, outcome, strict_missing=strict)
        fields.pop("kind", None)
        record = ClaimRecord(**fields, protocol=self.protocol.name, provenance=self.provenance())
        return outcome, record.to_dict()

    def provenance(self) -> Provenance:
        machine = self.machine()
        return Provenance(
            run_id=self.run_id,
            plugin_version=__version__,
            git_commit=machine["git_commit"],
            host=machine["host"],
            timestamp=utc_now(),
            worker=self.worker,
            shard=self.shard.label if self.shard else None,
            plan_hash=self.plan_hash,
        )

    # ---------------------------------------------------------------- data
    def task_data(self, task_id: str) -> TaskData:
        if task_id in self._task_errors:
            raise self._task_errors[task_id]
        if task_id not in self._tasks:
            spec = get_task(task_id)
            try:
                archive = self.resolver.resolve(spec)
                data = self.protocol.prepare(load_task(spec, archive))
                if self.options.limit is not None:
                    from pytest_plmtransfer.tasks.prepare import limit_per_split

                    data = limit_per_split(data, self.options.limit)
                self._tasks[task_id] = data
            except ResourceUnavailable as exc:
                self._task_errors[task_id] = exc
                raise
        return self._tasks[task_id]

    def prepared(self, task: TaskData, adapter: ModelAdapter) -> TaskData:
        """The task's data cut to the model's length limit under this protocol."""
        return prepare_for_model(task, self.protocol.model_max_residues(adapter.max_residues))

    # ---------------------------------------------------------------- running
    def _embedding(self, case: LayerCase, adapter: ModelAdapter, data: TaskData):
        layers = self._planned_layers.get(case.embedding_request, set()) | {case.layer}
        if data.spec.per_residue:
            sequences = data.sequences
        else:
            # Embed the sorted set of distinct sequences: tasks that share sequences in any order
            # (GB1's five splits) share one cache entry.
            sequences = sorted(set(data.sequences))
        adapter.validate_sequences(sequences)
        if self.progress is not None:
            from pytest_plmtransfer.run.progress import CountingAdapter

            label = f"{case.model}/{case.init}" + (f"/s{case.seed}" if case.seed is not None else "") + f" {case.task}"
            adapter = CountingAdapter(adapter, self.progress, label)
        entry = self.store.get_or_compute(adapter, sequences, sorted(layers), per_residue=data.spec.per_residue)
        return entry

    def run_layer(self, case: LayerCase) -> dict[str, Any]:
        """Probe one layer (or reuse the cached probe result) and return its ledger record."""
        if case.unavailable:
            raise ResourceUnavailable(case.model, case.unavailable)
        with self.timer.measure(case.model, "data"):
            task = self.task_data(case.task)  # first: missing data skips without building the model
        adapter = self.adapter(case.model, case.init, case.seed)
        with self.timer.measure(case.model, "data"):
            data = self.prepared(task, adapter)
            hygiene = self.data_hygiene(data, self.protocol.model_max_residues(adapter.max_residues))
        with self.timer.measure(case.model, "embedding"):
            entry = self._embedding(case, adapter, data)
        probe_seed = case.seed if case.seed is not None else 0
        result_key = self._result_key(entry.key, data, case.layer, probe_seed)
        result = self.results.get(result_key)
        if result is None or not self._has_predictions(result_key):
            with self.timer.measure(case.model, "probe"):
                result = self._probe(entry, data, case.layer, probe_seed, result_key, adapter)
            self.results.put(result_key, result)
        elif self._refresh_intervals(result_key, result):
            self.results.put(result_key, result)
        record = self._record(case, adapter, data, entry, result, result_key, hygiene.as_record())
        self._layer_records[case.embedding_request + (case.layer,)] = record
        return record

    def data_hygiene(self, data: TaskData, max_residues: int | None):
        """Duplicates and train/test overlap of the sequences the model sees, counted once per
        (task, length limit); leakage above ``--plm-leakage-max`` warns (fails under --plm-strict)."""
        from pytest_plmtransfer.tasks.hygiene import (
            DataLeakageError,
            DataLeakageWarning,
            conflict_message,
            leakage_message,
            measure,
        )

        key = (data.spec.task_id, max_residues)
        if key not in self._hygiene:
            hygiene = measure(data)
            problem = leakage_message(data.spec.task_id, data.source, hygiene, self.options.leakage_max)
            self._hygiene[key] = (hygiene, problem)
            for line in (conflict_message(data, hygiene), None if self.options.strict else problem):
                if line:
                    warnings.warn(DataLeakageWarning(line), stacklevel=2)
        hygiene, problem = self._hygiene[key]
        if problem and self.options.strict:
            raise DataLeakageError(f"{problem} (--plm-strict)")
        return hygiene

    # ---------------------------------------------------------------- users' own tests
    def case_embeddings(self, case: LayerCase):
        """The task data and cached embeddings of a layer case (the entry its layer test uses)."""
        from pytest_plmtransfer.run.embeddings import CaseEmbeddings

        if case.unavailable:
            raise ResourceUnavailable(case.model, case.unavailable)
        task = self.task_data(case.task)  # first: missing data skips without building the model
        adapter = self.adapter(case.model, case.init, case.seed)
        data = self.prepared(task, adapter)
        entry = self._embedding(case, adapter, data)
        return CaseEmbeddings(case.model, case.init, case.seed, case.task, case.layer, data, entry)

    def embeddings(
        self,
        model: str,
        task: str,
        *,
        init: str | None = None,
        seed: int | None = None,
        layers: Iterable[int] | None = None,
    ):
        """Explicit request: embeddings of (model, init, seed) on a task, all layers by default.

        ``init`` defaults to the model's first selected init (``none`` for one-hot); ``seed`` to
        the first ``--plm-seeds`` for random/stat.
        """
        from pytest_plmtransfer.run.embeddings import CaseEmbeddings

        pairs = self.inits_for(model)
        if init is None:
            init = pairs[0][0] if pairs else "pretrained"
        if seed is None and init in ("random", "stat"):
            seed = self.options.seeds[0]
        adapter = self.adapter(model, init, seed)
        data = self.prepared(self.task_data(task), adapter)
        wanted = sorted(set(layers) if layers is not None else range(adapter.num_layers + 1))
        planned = self._planned_layers.get((model, init, seed, task), set())
        sequences = data.sequences if data.spec.per_residue else sorted(set(data.sequences))
        adapter.validate_sequences(sequences)
        entry = self.store.get_or_compute(
            adapter, sequences, sorted(planned | set(wanted)), per_residue=data.spec.per_residue
        )
        return CaseEmbeddings(model, init, seed, task, None, data, entry)

    def head_record(
        self,
        case: LayerCase,
        metrics: dict[str, float],
        head: str,
        *,
        settings: dict[str, Any] | None = None,
        fit_seconds: float = 0.0,
        predictions: Any = None,
    ) -> dict[str, Any]:
        """A ledger record of a user's own head on a layer case, like the linear probe's.

        The record's ``model`` is ``<model>+<head>`` (so reports show it as its own row beside
        the linear probe, and baselines can store it); ``base_model`` and ``head_name`` keep the
        parts. ``metrics`` must hold the task's test metric (the reports' headline).
        ``predictions`` (the test split's, in its order: a 1-D array for a regression task, or a
        :class:`~pytest_plmtransfer.results.predictions.TestPredictions`) give the record the same
        bootstrap interval as the probe's, so tables and plots show the head's band too.
        """
        if not head or any(c in head for c in "+[] "):
            raise ValueError(f"head name {head!r}: a non-empty name without '+', '[', ']' or spaces")
        embedded = self.case_embeddings(case)
        spec = embedded.data.spec
        if spec.test_metric not in metrics:
            raise ValueError(f"metrics of head {head!r} lack the task's test metric {spec.test_metric!r}")
        adapter = self.adapter(case.model, case.init, case.seed)
        labelled = LayerCase(f"{case.model}+{head}", case.task, case.layer, case.init, case.seed, case.num_layers)
        result: dict[str, Any] = {
            "metrics": {k: float(v) for k, v in metrics.items()},
            "head": {"name": head, **(settings or {})},
            "fit_seconds": fit_seconds,
        }
        if predictions is not None:
            from pytest_plmtransfer.results.predictions import TestPredictions

            if not isinstance(predictions, TestPredictions):
                if spec.kind != "regression":
                    raise ValueError(f"predictions of head {head!r} on a {spec.kind} task: give a TestPredictions")
                target = np.asarray(embedded.data.targets, dtype=float)[embedded.split("test")]
                predictions = TestPredictions("regression", target, np.asarray(predictions, dtype=float))
            result["intervals"], seconds = self._intervals(predictions, spec.test_metric)
            result["interval_seconds"] = round(seconds, 4)
        hygiene = self.data_hygiene(embedded.data, self.protocol.model_max_residues(adapter.max_residues)).as_record()
        record = self._record(labelled, adapter, embedded.data, embedded.entry, result, None, hygiene, case.model)
        record.update(base_model=case.model, head_name=head, embed_seconds=0.0)
        return record

    # ---------------------------------------------------------------- predictions, intervals
    def _has_predictions(self, key: str) -> bool:
        from pytest_plmtransfer.results.predictions import predictions_path

        return predictions_path(self.results_dir, key).is_file()

    def _predictions_ref(self, key: str | None, result: dict[str, Any]) -> dict[str, Any]:
        from pytest_plmtransfer.results.predictions import predictions_path

        if key is None:  # a user's own head (plm_record): no kept predictions
            return {}

        ref = dict(result.get("predictions") or {})
        return {"key": key, "path": str(predictions_path(self.results_dir, key)), **ref}

    def _intervals(self, preds, metric: str) -> tuple[dict[str, Any], float]:
        """Bootstrap interval of the task's test metric (``{}`` with --plm-bootstrap 0)."""
        from pytest_plmtransfer.measure.stats import interval

        n = self.options.bootstrap
        if n <= 0 or preds.n_units < 2:
            return {}, 0.0
        start = time.perf_counter()
        found = interval(preds, metric, n_resamples=n).to_dict()
        return {metric: found}, time.perf_counter() - start

    def _refresh_intervals(self, key: str, result: dict[str, Any]) -> bool:
        """Recompute a cached result's intervals from its stored predictions when the number of
        resamples asked for changed (no refit). True when the result changed."""
        from pytest_plmtransfer.results.predictions import PredictionsError, load_predictions, predictions_path

        have = {v.get("n_resamples") for v in (result.get("intervals") or {}).values()}
        want = self.options.bootstrap
        if (want <= 0 and not have) or have == {want}:
            return False
        try:
            preds = load_predictions(predictions_path(self.results_dir, key), result["predictions"].get("sha256"))
        except PredictionsError:
            return False
        intervals, seconds = self._intervals(preds, result["test_metric"])
        result["intervals"], result["interval_seconds"] = intervals, round(seconds, 4)
        return True

    def _probe(self, entry, data: TaskData, layer: int, seed: int, key: str, adapter) -> dict[str, Any]:
        from pytest_plmtransfer.measure.probe import ProbeInput, probe
        from pytest_plmtransfer.results.predictions import predictions_path, save_predictions

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
            result["predictions"] = save_predictions(predictions_path(self.results_dir, key), out.predictions)
            intervals, seconds = self._intervals(out.predictions, data.spec.test_metric)
            result["intervals"], result["interval_seconds"] = intervals, round(seconds, 4)
        return result

    def probe_settings(self, device: str | None = None):
        """Head settings of this run: ``--plm-head-*`` values, probes on the embedding device
        (``device``: where the embeddings really were made; default the requested one)."""
        return self.protocol.probe_settings(self.options.head, device or self.model_options.device)

    def _result_key(self, embedding_key: str, data: TaskData, layer: int, seed: int) -> str:
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

    def machine(self) -> dict[str, Any]:
        if self._machine is None:
            self._machine = machine_info(self.root)
        return self._machine

    def _record(
        self,
        case: LayerCase,
        adapter,
        data: TaskData,
        entry,
        result,
        result_key: str | None,
        hygiene: dict[str, Any],
        base_model: str | None = None,
    ) -> dict[str, Any]:
        """``base_model``: the registry model behind ``case.model`` when that is a derived name
        (a user's head, ``<model>+<head>``)."""
        machine = self.machine()
        spec = data.spec
        description = self.describe(base_model or case.model)  # cached since collection; nothing is built
        record = LayerRecord(
            model=case.model,
            init=case.init,
            seed=case.seed,
            protocol=self.protocol.name,
            task=case.task,
            task_kind=spec.kind,
            layer=case.layer,
            num_layers=case.num_layers,
            metrics=result["metrics"],
            head=result["head"],
            selection_metric=spec.selection_metric,
            test_metric=spec.test_metric,
            split_sizes=data.sizes(),
            data={
                "source": data.source,
                "sha256": data.sha256,
                "archive": spec.archive,
                "member": spec.member,
                "window": list(spec.window) if spec.window else None,
                "truncation": data.notes.get("truncation"),
                # the authors' data quirks applied under --plm-protocol authors (protocol.py)
                "quirks": data.notes.get("quirks"),
                "hygiene": hygiene,
            },
            weights=adapter.identity(),
            embedding_key=entry.key,
            embed_seconds=round(entry.embed_seconds, 3),
            fit_seconds=round(float(result["fit_seconds"]), 3),
            cache_hit=not entry.computed,
            cache_dtype=entry.dtype,
            # what the model really ran on, not what was asked (fp16 falls back on CPU, one-hot
            # never leaves the CPU); the request is kept beside it
            **effective_runtime(adapter),
            requested={"device": self.options.device, "dtype": self.options.dtype},
            versions=machine["versions"],
            machine={k: machine[k] for k in ("platform", "python", "cpu_count", "torch_threads", "cuda")},
            intervals=result.get("intervals") or {},
            interval_seconds=result.get("interval_seconds"),
            predictions=self._predictions_ref(result_key, result),
            # seconds this process spent on the model since its previous record (timing.py): the
            # run's records sum to its per-model totals
            timing=self.timer.take(case.model),
            model_params=getattr(adapter, "num_parameters", None),
            checkpoint_step=description.checkpoint_step,
            checkpoint_fraction=description.checkpoint_fraction,
            mlm_loss=description.mlm_loss,
            provenance=self.provenance(),
        )
        out = record.to_dict()
        if self.cuda_visible_devices is not None:
            out["cuda_visible_devices"] = self.cuda_visible_devices
        if self.options.limit is not None:  # absent: the whole task
            out["limit"] = self.options.limit
        return out

    def write(self, records: list[dict[str, Any]]) -> None:
        """Append to the ledger. If that fails (a full disk), the records are kept and retried
        with the next write and at the end (:meth:`save_unsaved`), and the error names the ledger."""
        pending = [*self.unsaved, *records]
        start = time.perf_counter()
        try:
            self.ledger.append(pending)
        except (OSError, PlmTransferError) as exc:  # a full disk, a link at the part, a lock given up on
            self.unsaved = pending
            reason = str(exc)
            if isinstance(exc, OSError) and exc.strerror:
                reason = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
            raise LedgerWriteError(
                f"could not write to the ledger {self.ledger.path} ({reason}); "
                f"{len(pending)} record(s) kept in memory, retried with the next test and saved to "
                f"{self.unsaved_path()} at the end if the ledger stays unwritable"
            ) from None
        self.unsaved = []
        seconds = time.perf_counter() - start
        models = [str(r.get("model", "")) for r in records if r.get("kind") == "layer"]
        for model in models:  # shared equally by the layer records of one append
            self.timer.add(model, "ledger", seconds / len(models))

    def unsaved_path(self) -> Path:
        import tempfile

        return Path(tempfile.gettempdir()) / f"plmtransfer-unsaved-{self.run_id}-{os.getpid()}.json"

    def save_unsaved(self) -> str | None:
        """At the end of the session: records the ledger refused go to the ledger if it takes
        them now, else to :meth:`unsaved_path` (a ledger file ``merge`` reads), else, as a last
        resort, into the returned line itself: nothing measured is lost silently."""
        if not self.unsaved:
            return None
        try:
            self.ledger.append(self.unsaved)
            self.unsaved = []
            return None
        except (OSError, PlmTransferError):
            pass
        from pytest_plmtransfer.results.ledger import write_part

        first = f"plmtransfer: the ledger {self.ledger.path} could not be written"
        path = self.unsaved_path()
        try:
            write_part(path, self.unsaved, self.ledger.part_header())
        except OSError as exc:
            lines = "\n".join(json.dumps(r, default=str) for r in self.unsaved)
            return f"{first}, nor {path} ({exc.strerror}); this run's {len(self.unsaved)} unsaved record(s):\n{lines}"
        return (
            f"{first}; this run's {len(self.unsaved)} unsaved record(s) are in {path} "
            f"(add it to the ledger with: plmtransfer merge {self.ledger.path} {path} --out DIR)"
        )


class LedgerWriteError(PlmTransferError):
    """The ledger could not be written; the records are kept (see PlmSession.write)."""


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


__all__ = ["LayerCase", "PlmSession", "PlmTransferError"]
