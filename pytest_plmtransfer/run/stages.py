"""The stages of one pytest process, wired from its options: the planner (plan), the model
residency and layer runner (run), the recorder (record -> ledger). The plugin builds them once
per process (controller and each xdist worker), after conftests registered their models; they
share work with other processes through the locked on-disk embedding and result caches.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pytest_plmtransfer.infra.locks import LockPolicy
from pytest_plmtransfer.infra.threads import limit_threads
from pytest_plmtransfer.judge.defaults import LayeredBaselineStore
from pytest_plmtransfer.measure.protocol import Protocol, get_protocol
from pytest_plmtransfer.models.aliases import apply_aliases
from pytest_plmtransfer.models.registry import ModelOptions, ModelRegistry, builtin_registry
from pytest_plmtransfer.options import PlmOptions
from pytest_plmtransfer.plan.cases import Descriptions, Planner
from pytest_plmtransfer.plan.sharding import Shard
from pytest_plmtransfer.results.ledger import Ledger, records_to_frame
from pytest_plmtransfer.results.result_cache import ResultCache
from pytest_plmtransfer.results.store import EmbeddingStore
from pytest_plmtransfer.run.data import TaskSource
from pytest_plmtransfer.run.probing import Prober
from pytest_plmtransfer.run.recorder import Recorder
from pytest_plmtransfer.run.residency import ModelResidency, resolve_device
from pytest_plmtransfer.run.runner import LayerRunner
from pytest_plmtransfer.run.timing import PhaseTimer
from pytest_plmtransfer.tasks.resolve import DataResolver, default_cache_dir


@dataclass
class Stages:
    options: PlmOptions
    registry: ModelRegistry
    protocol: Protocol
    shard: Shard | None
    planner: Planner
    models: ModelResidency
    runner: LayerRunner
    recorder: Recorder
    #: lines for the terminal summary (e.g. baselines written, claims deselected by a shard)
    notes: list[str] = field(default_factory=list)

    def baselines(self) -> LayeredBaselineStore:
        """The user's baselines directory over the shipped defaults (see judge/defaults.py)."""
        return LayeredBaselineStore(self.options.baselines_dir)


def model_registry(register: Callable[[ModelRegistry], object] = lambda registry: None) -> ModelRegistry:
    """The built-in models, those of installed packages' ``plmtransfer.models`` entry points,
    then those ``register`` adds (the plugin's hook: conftests and plugins)."""
    registry = builtin_registry()
    registry.load_entry_points()
    register(registry)
    return registry


def build_stages(
    options: PlmOptions,
    registry: ModelRegistry,
    *,
    ini_models: list[str] | None = None,
    root: Path,
    run_id: str,
    worker: str = "main",
    cuda_visible_devices: str | None = None,
    notify: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> Stages:
    """``ini_models``: the ini's ``plm_models`` (aliases there are known to bare names);
    ``notify``: where "still waiting for a lock" lines go (the plugin points it past capture)."""
    # my_plm=hf:./path, on the command line or in the ini
    options.models = apply_aliases(options.models, registry, ini_models or [])
    if options.threads:
        limit_threads(options.threads)
    shard = Shard.parse(options.shard) if options.shard else None
    protocol = get_protocol(options.protocol)
    cache_dir = options.cache_dir or default_cache_dir()
    lock_policy = LockPolicy(report_after=options.lock_timeout, fail=options.lock_fail, notify=notify)
    model_options = ModelOptions(
        weights_dir=options.weights_dir,
        device=resolve_device(options.device),
        dtype=options.dtype,
        token_budget=options.token_budget,
        allow_download=options.allow_download,
        progress=False,  # the run's progress line (run/progress.py) shows embedding, under capture too
        protocol=options.protocol,
        extra={"attention": options.attention},
    )
    timer = PhaseTimer()  # per-model seconds in collection / data / embedding / probe / ledger
    describe = Descriptions(registry, model_options)
    models = ModelResidency(registry, model_options)
    resolver = DataResolver(
        options.data_dir,
        cache_dir,
        allow_download=options.allow_download,
        require_data_dir=options.strict,
        base_url=options.flip_url,
        expected_sha256=options.flip_sha256,
    )
    store = EmbeddingStore(cache_dir / "embeddings", dtype=options.cache_dtype, lock_policy=lock_policy)
    tasks = TaskSource(resolver, protocol, limit=options.limit, leakage_max=options.leakage_max, strict=options.strict)
    prober = Prober(
        protocol,
        ResultCache(cache_dir / "results", lock_policy),
        head=options.head,
        device=model_options.device,
        bootstrap=options.bootstrap,
        limit=options.limit,
    )
    runner = LayerRunner(tasks, models, store, prober, timer)
    ledger = Ledger(options.ledger, run_id=run_id, shard=shard.tag if shard else "all", worker=worker)
    recorder = Recorder(
        ledger,
        describe,
        timer,
        root=root,
        requested={"device": options.device, "dtype": options.dtype},
        limit=options.limit,
        worker=worker,
        shard=shard.label if shard else None,
        cuda_visible_devices=cuda_visible_devices,
    )
    planner = Planner(
        options,
        registry,
        describe,
        claims_file=lambda: LayeredBaselineStore(options.baselines_dir).claims(),
        on_describe=lambda model: timer.measure(model, "collection"),
    )
    return Stages(options, registry, protocol, shard, planner, models, runner, recorder)


def update_baselines(stages: Stages) -> list[str]:
    """``--plm-update-baselines``: this run's layer records (or ``--plm-from-ledger``'s) written
    as baselines; the summary's line saying what was written."""
    ledger = stages.recorder.ledger
    if stages.options.from_ledger is not None:
        records = stages.planner.ledger_records()
    else:
        records = ledger.records(run_id=ledger.run_id, kind="layer")
    if not records:
        return []
    store = stages.baselines()
    written = store.update_from(records_to_frame(records))
    unchanged = f"; {len(store.unchanged)} unchanged (same values), left as they were" if store.unchanged else ""
    return [
        f"--plm-update-baselines: wrote {len(written)} baseline file(s) under {stages.options.baselines_dir}{unchanged}"
    ]
