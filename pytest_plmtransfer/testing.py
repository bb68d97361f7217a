"""Helpers for testing this plugin, your own model adapters and your own claims.

Public and documented (README, "Testing adapters and claims"), as pytest-regressions' ``testing``
module is: this project's tests use them, and so can yours.

* :class:`ToyAdapter` — a deterministic numpy "PLM" (a per-letter table, layer ``l`` is
  ``tanh(x * (l + 1))``) with the ``pretrained`` / ``random`` / ``stat`` inits, registered with
  :func:`register_toy` from a ``conftest.py``; fast enough for pytester runs of the whole plugin.
* :func:`collect_embeddings` — an adapter's output as ``{layer: [array per sequence]}``.
* :class:`PlmPytester` — the one pytester harness: the shipped suite and the toy in a pytester
  directory, a private cache and ledger, runs in-process (after :func:`preload`) or in a
  subprocess; e.g. ``PlmPytester(pytester, data_dir).run("--plm-models=toy")``.
* :func:`layer_record` — one ledger record built on the real :class:`~pytest_plmtransfer.results.records.LayerRecord`,
  with the fields a run writes (machine, data archive and member, the adapter's identity as
  weights, requested device/dtype); :func:`synthetic_records` and :func:`curve_records` build
  whole ledgers of them (the papers' curve shapes, or exactly given values), :func:`write_ledger`
  writes one. Nothing here is a measurement.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pytest_plmtransfer.models.base import ONEHOT, EmbeddingBatch, ModelAdapter, collect_embeddings
from pytest_plmtransfer.results.ledger import part_header, write_part
from pytest_plmtransfer.results.records import LayerRecord, Provenance

# --------------------------------------------------------------------------------------------
# a toy adapter


class ToyAdapter(ModelAdapter):
    """A deterministic numpy "PLM" over a per-letter table (``embed_dim`` wide, uppercase letters).

    ``pretrained``: a fixed table; ``random``: a fresh table per seed; ``stat``: the pretrained
    table's elements permuted per seed (the same multiset of values, as models/inits.py does).
    Layer ``l`` of a residue is ``tanh(x * (l + 1))``; pooled vectors are means over residues.
    """

    def __init__(
        self,
        init: str = "pretrained",
        seed: int | None = None,
        *,
        name: str = "toy",
        num_layers: int = 2,
        embed_dim: int = 8,
    ) -> None:
        self.name, self.num_layers, self.embed_dim = name, num_layers, embed_dim
        self.init, self.seed = init, seed
        table = np.random.default_rng(0).normal(size=(26, embed_dim)).astype(np.float32)
        if init == "random":
            table = np.random.default_rng(1000 + (seed or 0)).normal(size=(26, embed_dim)).astype(np.float32)
        elif init == "stat":
            table = np.random.default_rng(2000 + (seed or 0)).permutation(table.ravel()).reshape(26, embed_dim)
        self.table = table

    def identity(self) -> dict[str, Any]:
        # a content hash of the weights: changed weights never reuse cached embeddings
        return {
            "model": self.name,
            "init": self.init,
            "seed": self.seed,
            "weights_sha256": hashlib.sha256(self.table.tobytes()).hexdigest(),
        }

    def embed(self, sequences: Sequence[str], layers: Sequence[int], *, per_residue: bool) -> Iterator[EmbeddingBatch]:
        for i, seq in enumerate(sequences):
            x = self.table[[ord(c) - 65 for c in seq]]
            out = {}
            for layer in layers:
                h = np.tanh(x * (layer + 1))
                out[layer] = h if per_residue else h.mean(0, keepdims=True)
            yield EmbeddingBatch(indices=np.array([i]), per_layer=out)


def register_toy(
    registry: Any,
    name: str = "toy",
    *,
    inits: Iterable[str] = ("pretrained", "random", "stat"),
    num_layers: int = 2,
    embed_dim: int = 8,
    cls: type[ToyAdapter] = ToyAdapter,
) -> None:
    """Register a :class:`ToyAdapter` (or a subclass ``cls``) as model ``name``; call it from
    ``pytest_plmtransfer_register_models(registry)`` in a ``conftest.py``."""
    registry.register(
        name,
        lambda _name, init, seed, options: cls(init, seed, name=name, num_layers=num_layers, embed_dim=embed_dim),
        inits=tuple(inits),
        needs_weights=(),
    )


# --------------------------------------------------------------------------------------------
# one pytester harness

#: registers the toy as model ``toy`` (2 layers; pretrained, random and stat), writing one line per
#: forward pass to ``TOY_LOG`` ("pid sequences layers"), so a test can count embedding work across
#: processes; a harness's ``conftest`` text is appended (chain the hook to add models)
TOY_CONFTEST = """
from pytest_plmtransfer.testing import ToyAdapter, register_toy

TOY_LOG = {log!r}


class LoggedToy(ToyAdapter):
    def embed(self, sequences, layers, *, per_residue):
        import os

        with open(TOY_LOG, "a") as fh:
            fh.write(f"{{os.getpid()}} {{len(sequences)}} {{sorted(layers)}}\\n")
        yield from super().embed(sequences, layers, per_residue=per_residue)


def pytest_plmtransfer_register_models(registry):
    register_toy(registry, "toy", cls=LoggedToy)
"""


def preload() -> None:
    """Import the package and the libraries a run loads before pytester snapshots ``sys.modules``
    (call it from a session-scoped fixture): an in-process run drops what it imported, and a
    second import of torch in one process crashes the interpreter."""
    import importlib
    import pkgutil

    import pytest_plmtransfer

    for mod in pkgutil.walk_packages(pytest_plmtransfer.__path__, "pytest_plmtransfer."):
        if ".benchmarks" not in mod.name:
            importlib.import_module(mod.name)
    for name in ("torch", "sklearn.linear_model", "scipy.stats", "matplotlib.pyplot", "xdist.plugin"):
        importlib.import_module(name)


class PlmPytester:
    """The shipped suite in a pytester directory, the toy registered in its ``conftest.py``, a
    private cache and ledger: ``run(*args)`` is pytest over it, in this process unless
    ``subprocess=True`` (for what needs a process of its own: signals, xdist workers, exit codes of
    a console script). Call :func:`preload` first (a session fixture) for in-process runs.

    ``suite_dir``: where ``test_plm_layers.py``, ``test_plm_claims.py`` (``claims=True``) and the
    conftest go (``None``: nowhere, the directory brings its own); ``conftest``: more conftest text
    after :data:`TOY_CONFTEST`."""

    def __init__(
        self,
        pytester: Any,
        data_dir: Path | str,
        *,
        suite_dir: str | None = ".",
        claims: bool = False,
        conftest: str = "",
    ) -> None:
        self.pytester, self.data_dir = pytester, Path(data_dir)
        self.root = Path(pytester.path)
        work = self.root.parent / f"{self.root.name}-plm"
        self.ledger, self.cache, self.log = work / "ledger", work / "cache", work / "embed.log"
        work.mkdir(exist_ok=True)
        if suite_dir is None:
            return
        suite = self.root / suite_dir
        suite.mkdir(parents=True, exist_ok=True)
        # test_plm_*: an in-process run imports test modules by basename, and a calling session's
        # own tests/test_claims.py would shadow a test_claims.py here
        layers = "from pytest_plmtransfer.benchmarks.test_layers import test_layer  # noqa: F401\n"
        (suite / "test_plm_layers.py").write_text(layers)
        if claims:
            (suite / "test_plm_claims.py").write_text(layers.replace("layer", "claim"))
        (suite / "conftest.py").write_text(TOY_CONFTEST.format(log=str(self.log)) + conftest)

    def options(
        self, ledger: Path | str | None = None, cache: Path | str | None = None, data: Path | str | None = None
    ) -> list[str]:
        """The data directory, the private cache and ledger, as pytest options."""
        ledger, cache, data = ledger or self.ledger, cache or self.cache, data or self.data_dir
        return [
            f"--plm-data-dir={data}",
            f"--plm-cache-dir={cache}",
            f"--plm-ledger={ledger}",
            "-p",
            "no:cacheprovider",
        ]

    def run(self, *args: str, subprocess: bool = False, **where: Path | str | None) -> Any:
        """pytest with :meth:`options` (``ledger``, ``cache``, ``data`` override them) and ``args``."""
        runner = self.pytester.runpytest_subprocess if subprocess else self.pytester.runpytest
        return runner(*self.options(**where), *args)

    def records(self, ledger: Path | str | None = None) -> list[dict[str, Any]]:
        """The ledger's records (none when it was never written)."""
        from pytest_plmtransfer.results.ledger import read_records

        path = Path(ledger or self.ledger)
        return read_records(path) if path.exists() else []

    def forward_passes(self) -> list[str]:
        """One line per forward pass of the toy, over every run so far."""
        return self.log.read_text().splitlines() if self.log.exists() else []

    def claims(self, *entries: dict[str, Any]) -> Path:
        """Write ``baselines/claims.json`` holding these claims."""
        path = self.root / "baselines" / "claims.json"
        path.parent.mkdir(exist_ok=True)
        from pytest_plmtransfer.judge.claims.spec import FORMAT

        path.write_text(json.dumps({"format": FORMAT, "claims": list(entries)}, indent=1))
        return path


# --------------------------------------------------------------------------------------------
# records and ledgers

#: what a run records about the machine (provenance.machine_info, less the run-specific host/commit)
MACHINE = {"platform": "Linux-synthetic", "python": "3.11.0", "cpu_count": 2, "torch_threads": 2, "cuda": None}


def _archive_member(task: str) -> tuple[str | None, str | None]:
    from pytest_plmtransfer.tasks.catalog import CATALOG

    spec = CATALOG.get(task)
    return (spec.archive, spec.member) if spec is not None else (None, None)


def layer_record(
    model: str,
    task: str,
    layer: int,
    init: str,
    seed: int | None,
    metrics: dict[str, float],
    *,
    num_layers: int,
    run_id: str = "run-1",
    timestamp: str = "2024-01-01T00:00:00+00:00",
    task_kind: str = "regression",
    selection_metric: str = "val_spearman",
    test_metric: str = "test_spearman",
) -> dict[str, Any]:
    """One layer record as a run writes it (built through :class:`LayerRecord`), with these values."""
    archive, member = _archive_member(task)
    return LayerRecord(
        model,
        task,
        layer,
        init,
        seed,
        dict(metrics),  # the record's key fields, in its order
        test_id=f"test_layer[{model}-{task}-L{layer:02d}-{init}]",
        task_kind=task_kind,
        num_layers=num_layers,
        head={"alpha": 1.0} if task_kind == "regression" else {"epochs": 10},
        selection_metric=selection_metric,
        test_metric=test_metric,
        split_sizes={"train": 100, "val": 20, "test": 50},
        data={
            "source": f"synthetic/{task}.csv",
            "sha256": "0" * 64,
            "archive": archive,
            "member": member,
            "window": [0, 56],
            "truncation": None,
        },
        # what adapter.identity() gives: the model and a content hash of its weights
        weights={
            "model": model,
            "init": init,
            "seed": seed,
            "weights_sha256": hashlib.sha256(f"synthetic:{model}:{init}:{seed}".encode()).hexdigest(),
        },
        embedding_key=f"{model}-{init}-{seed}-{task}",
        embed_seconds=0.01,
        fit_seconds=0.01,
        cache_hit=False,
        cache_dtype="float32",
        device="cpu",
        dtype="float32",
        requested={"device": "auto", "dtype": "float32"},
        versions={"pytest-plmtransfer": "0.1.0"},
        machine=dict(MACHINE),
        provenance=Provenance(
            run_id=run_id, plugin_version="0.1.0", git_commit="abc123", host="synthetic-host", timestamp=timestamp
        ),
    ).to_dict()


DEFAULT_MODELS: dict[str, int] = {ONEHOT: 0, "tiny_esm": 6, "tiny_carp": 4}
REGRESSION_TASKS = ("gb1_sampled", "gb1_two_vs_rest")

#: level of each init relative to pretrained, and its seed-to-seed spread
_INIT_SHAPE = {"pretrained": (0.0, 0.0), "random": (-0.12, 0.02), "stat": (-0.2, 0.03)}


def _curve(frac: float, peak: float, onehot: float) -> float:
    # rises quickly, saturates by ~40 % depth, then drifts down a little (the papers' shape)
    return onehot - 0.05 + (peak - onehot + 0.05) * (1 - math.exp(-frac / 0.15)) - 0.03 * max(0.0, frac - 0.6)


#: the metrics a synthetic record carries, in the order their values are given
_CLASSIFICATION_METRICS = (
    "train_loss",
    "val_loss",
    "test_loss",
    "train_accuracy",
    "val_accuracy",
    "test_accuracy",
    "val_auc",
    "test_auc",
)
_REGRESSION_METRICS = (
    "train_mse",
    "val_mse",
    "test_mse",
    "val_spearman",
    "test_spearman",
    "val_ndcg",
    "test_ndcg",
    "test_pearson",
)


def synthetic_records(
    *,
    models: dict[str, int] | None = None,
    tasks: Iterable[str] = REGRESSION_TASKS,
    inits: Iterable[str] = ("pretrained", "random", "stat"),
    seeds: Iterable[int] = (42, 0, 12345),
    run_id: str = "run-1",
    timestamp: str = "2024-01-01T00:00:00+00:00",
    classification_task: str | None = None,
    rng_seed: int = 0,
) -> list[dict[str, Any]]:
    """Layer records for every (model, task, layer, init, seed); pretrained and one-hot have no seed."""
    models = dict(DEFAULT_MODELS if models is None else models)
    rng = np.random.default_rng(rng_seed)
    out: list[dict[str, Any]] = []
    all_tasks = list(tasks) + ([classification_task] if classification_task else [])
    for t_i, task in enumerate(all_tasks):
        classification = task == classification_task
        onehot_level = 0.55 + 0.05 * t_i
        for m_i, (model, nl) in enumerate(models.items()):
            if model == ONEHOT:
                combos: list[tuple[str, int | None, float, float]] = [("none", None, 0.0, 0.0)]
            else:
                combos = []  # typed above
                for init in inits:
                    shift, spread = _INIT_SHAPE.get(init, (-0.1, 0.02))
                    for seed in [None] if init == "pretrained" else list(seeds):
                        combos.append((init, seed, shift, spread))
            peak = onehot_level + 0.15 - 0.03 * m_i
            for init, seed, shift, spread in combos:
                seed_off = float(rng.normal(0, spread)) if spread else 0.0
                for layer in range(nl + 1):
                    frac = layer / max(nl, 1)
                    base = onehot_level if model == ONEHOT else _curve(frac, peak, onehot_level) + shift + seed_off
                    test = float(np.clip(base + rng.normal(0, 0.004), -1, 1))
                    val = float(np.clip(base + 0.01 + rng.normal(0, 0.004), -1, 1))
                    if classification:
                        values = (1.0 - val + 0.1, 1.2 - val, 1.2 - test, val + 0.05, val, test, val + 0.2, test + 0.2)
                        metrics = dict(zip(_CLASSIFICATION_METRICS, values))
                        sel_m, test_m, kind = "val_loss", "test_accuracy", "classification"
                    else:
                        values = (
                            1.0 - val,
                            1.1 - val,
                            1.1 - test,
                            val,
                            test,
                            0.8 + val / 10,
                            0.8 + test / 10,
                            test - 0.01,
                        )
                        metrics = dict(zip(_REGRESSION_METRICS, values))
                        sel_m, test_m, kind = "val_spearman", "test_spearman", "regression"
                    heads: dict[str, Any] = {"task_kind": kind, "selection_metric": sel_m, "test_metric": test_m}
                    where: dict[str, Any] = {"num_layers": nl, "run_id": run_id, "timestamp": timestamp}
                    out.append(layer_record(model, task, layer, init, seed, metrics, **where, **heads))
    return out


def write_ledger(path: Path | str, records: list[dict[str, Any]]) -> Path:
    """Write records as one ledger part (a file every ledger reader takes)."""
    path = Path(path)
    write_part(path, records, part_header())
    return path


def curve_records(
    model: str,
    task: str,
    init: str,
    values: dict[int | None, list[tuple[float, float]]],
    *,
    classification: bool = False,
    run_id: str = "run-1",
    timestamp: str = "2024-01-01T00:00:00+00:00",
    num_layers: int | None = None,
) -> list[dict[str, Any]]:
    """Records with exactly the given (validation, test) value per layer, per seed.

    Regression: (val_spearman, test_spearman), other metrics derived. Classification:
    (val_loss, test_accuracy) — the selection metric is then lower-is-better.
    """
    out = []
    for seed, pairs in values.items():
        nl = len(pairs) - 1 if num_layers is None else num_layers
        for layer, (val, test) in enumerate(pairs):
            if classification:
                metrics = dict(
                    zip(_CLASSIFICATION_METRICS, (val * 0.8, val, val + 0.05, test + 0.05, test, test, 0.9, 0.9))
                )
                kw = {"task_kind": "classification", "selection_metric": "val_loss", "test_metric": "test_accuracy"}
            else:
                metrics = dict(zip(_REGRESSION_METRICS, (1 - val, 1.1 - val, 1.1 - test, val, test, 0.9, 0.9, test)))
                kw = {}
            out.append(
                layer_record(
                    model, task, layer, init, seed, metrics, num_layers=nl, run_id=run_id, timestamp=timestamp, **kw
                )
            )
    return out


#: the authors' encoders (microsoft/protein-transfer scr/params/emb.py) and their layer counts
PAPER_MODELS: dict[str, int] = {
    ONEHOT: 0,
    "carp_600k": 16,
    "carp_38M": 16,
    "carp_76M": 32,
    "carp_640M": 56,
    "esm1_t6_43M_UR50S": 6,
    "esm1_t12_85M_UR50S": 12,
    "esm1_t34_670M_UR50S": 34,
    "esm1b_t33_650M_UR50S": 33,
}
PAPER_REGRESSION_TASKS = (
    "gb1_sampled",
    "gb1_low_vs_high",
    "gb1_two_vs_rest",
    "aav_two_vs_many",
    "aav_one_vs_many",
    "meltome_mixed",
)


def paper_grid_records(
    *,
    models: dict[str, int] | None = None,
    tasks: Sequence[str] = PAPER_REGRESSION_TASKS,
    classification_tasks: Sequence[str] = ("scl_balanced", "ss3"),
    seeds: Iterable[int] = (42, 0, 12345),
    checkpoints: Sequence[float] = (0.125, 0.25, 0.5, 1.0),
    protocol: str = "authors",
) -> list[dict[str, Any]]:
    """:func:`synthetic_records` over the authors' full grid (every model, task and init), each test
    metric with a bootstrap-style interval, plus pretrained CARP checkpoints ``<carp>@<fraction>``
    carrying ``checkpoint_fraction``, ``checkpoint_step`` and ``mlm_loss`` (made-up values that
    improve with the fraction). Every record carries ``protocol``."""
    models = dict(PAPER_MODELS if models is None else models)
    # one call per family (one-hot with the first): synthetic_records lowers each next model's
    # peak, which over nine models would sink the last ones below one-hot everywhere
    families = [{m: n for m, n in models.items() if not m.startswith("esm")}]
    families.append({m: n for m, n in models.items() if m.startswith("esm")})
    parts: list[tuple[dict[str, int], tuple[str, ...], int]] = [
        (family, ("pretrained", "random", "stat"), i) for i, family in enumerate(families) if family
    ]
    for fraction in checkpoints:
        ckpts = {f"{m}@{fraction}": n for m, n in models.items() if m.startswith("carp")}
        parts.append((ckpts, ("pretrained",), 2 + int(fraction * 8)))
    out: list[dict[str, Any]] = []
    for part, inits, rng_seed in parts:
        for k, cls in enumerate([None, *classification_tasks]):
            out += synthetic_records(
                models=part,
                tasks=tasks if cls is None else (),
                inits=inits,
                seeds=seeds,
                classification_task=cls,
                rng_seed=100 * rng_seed + k,
            )
    for rec in out:
        rec["protocol"] = protocol
        if "@" in rec["model"]:
            fraction = float(rec["model"].split("@")[1])
            size = PAPER_MODELS.get(rec["model"].split("@")[0], 16)
            rec.update(checkpoint_fraction=fraction, checkpoint_step=int(fraction * 600_000))
            rec["mlm_loss"] = 2.2 + 0.1 * (56 - size) / 56 - 0.04 * math.log2(fraction)
            for name in rec["metrics"]:  # earlier checkpoints transfer a little worse
                if name.endswith(("spearman", "ndcg", "auc", "accuracy")):
                    rec["metrics"][name] -= 0.06 * (1 - fraction)
        half = 0.02 if rec["seed"] is None else 0.03
        rec["intervals"] = {  # NDCG's synthetic values vary a tenth as much as the others
            m: {"estimate": v, "se": h / 1.96, "low": v - h, "high": v + h}
            for m, v in rec["metrics"].items()
            if m.startswith("test_")
            for h in [half / 10 if m.endswith("ndcg") else half]
        }
    return out


__all__ = [
    "CHECK_SEQUENCES",
    "DEFAULT_MODELS",
    "MACHINE",
    "PAPER_MODELS",
    "REGRESSION_TASKS",
    "TOY_CONFTEST",
    "PlmPytester",
    "ToyAdapter",
    "check_adapter",
    "check_claim_kind",
    "collect_embeddings",
    "curve_records",
    "layer_record",
    "paper_grid_records",
    "preload",
    "register_toy",
    "synthetic_records",
    "write_ledger",
]


# --------------------------------------------------------------------------------------------
# contract test for model adapters

#: short sequences of the 20 standard residues, lengths 2..22 (every adapter must read them)
CHECK_SEQUENCES = ("MKTAYIAKQRQISFVKSHFSRQ", "GW", "ACDEFGHIKLMNPQRSTVWY", "MKV", "PEPTIDE")


def check_adapter(
    factory_or_adapter: Any,
    *,
    name: str = "model",
    init: str = "pretrained",
    seed: int | None = None,
    options: Any = None,
    description: Any = None,
    sequences: Sequence[str] = CHECK_SEQUENCES,
    invalid: str = "MK1V",
) -> ModelAdapter:
    """Check that a model adapter keeps the contract a run relies on; raise AssertionError saying
    what is broken. Returns the adapter checked.

    ``factory_or_adapter`` is a registry factory ``(name, init, seed, options) -> adapter`` (called
    with ``name``, ``init``, ``seed`` and ``options``, default :class:`ModelOptions()`; built twice, to
    check that a build is reproducible) or an adapter. ``description`` is what the registry
    describes the model as without building it (``registry.describe(name, options)``), checked
    against the built adapter. The checks:

    * ``num_layers``, ``embed_dim``, ``layers``, ``max_residues``, ``num_parameters``, ``pooling``
      are sane, and agree with ``description``;
    * ``identity()`` is JSON, the same on every call, before and after embedding and for every
      build of (name, init, seed); another seed changes it; a model defined outside this package
      carries a content hash of its weights (or holds its torch module, which a run hashes);
    * ``embed`` yields every sequence exactly once with exactly the requested layers, as finite
      float32 rows of ``feature_dim`` (pooled) or one row per residue (per-residue); it is
      deterministic, a layer's values do not depend on which other layers were requested nor on
      the order of the sequences, and (mean pooling) a pooled vector is its residue rows' mean;
    * ``validate_sequences`` accepts ``sequences`` and rejects ``invalid`` with an
      :class:`~pytest_plmtransfer.infra.errors.InputError` that names the offending letter.
    """
    from pytest_plmtransfer.infra.errors import InputError
    from pytest_plmtransfer.infra.identity import has_content_hash, torch_modules
    from pytest_plmtransfer.models.registry import ModelOptions

    options = options if options is not None else ModelOptions()
    build = factory_or_adapter if not isinstance(factory_or_adapter, ModelAdapter) else None
    adapter = build(name, init, seed, options) if build is not None else factory_or_adapter
    label = f"adapter {getattr(adapter, 'name', type(adapter).__name__)!r}"

    def require(ok: Any, problem: str) -> None:
        if not ok:
            raise AssertionError(f"{label}: {problem}")

    require(isinstance(adapter, ModelAdapter), f"{type(adapter).__name__} is not a ModelAdapter")
    require(isinstance(adapter.name, str) and adapter.name, "name must be a non-empty string")
    layers_count, width, limit = adapter.num_layers, adapter.embed_dim, adapter.max_residues
    require(isinstance(layers_count, int) and layers_count >= 0, f"num_layers {layers_count!r} is not an int >= 0")
    require(isinstance(width, int) and width > 0, f"embed_dim {width!r} is not a positive int")
    require(adapter.layers == list(range(layers_count + 1)), f"layers {adapter.layers} are not 0..num_layers")
    require(limit is None or (isinstance(limit, int) and limit > 0), f"max_residues {limit!r} is not None or > 0")
    require(adapter.pooling in ("mean", "flatten"), f"pooling {adapter.pooling!r} is not 'mean' or 'flatten'")
    params = adapter.num_parameters
    require(params is None or (isinstance(params, int) and params >= 0), f"num_parameters {params!r} is not an int")
    if description is not None:
        described = (description.num_layers, description.embed_dim)
        require(
            described == (layers_count, width),
            f"described as (layers, width) {described}, built as {(layers_count, width)}",
        )
    sequences = [s for s in sequences if limit is None or len(s) <= limit]
    require(len(sequences) >= 2, f"max_residues {limit} leaves fewer than two check sequences")

    identity = adapter.identity()
    try:
        json.dumps(identity, sort_keys=True)
    except (TypeError, ValueError) as error:
        raise AssertionError(f"{label}: identity() is not JSON-serializable ({error})") from None
    require(adapter.identity() == identity, "identity() differs between two calls")
    own = not type(adapter).__module__.startswith("pytest_plmtransfer.models.")
    require(
        not own or has_content_hash(identity) or torch_modules(adapter),
        "identity() carries no content "
        "hash of the weights (e.g. 'weights_sha256'), so cached embeddings would outlive changed weights",
    )

    adapter.validate_sequences(sequences)
    try:
        adapter.validate_sequences([*sequences, invalid])
    except InputError as error:
        bad = sorted(set(invalid) - set("".join(sequences)))
        require(any(letter in str(error) for letter in bad), f"the error for {invalid!r} names none of {bad}: {error}")
    else:
        raise AssertionError(f"{label}: validate_sequences accepted {invalid!r}")

    def embedded(model: ModelAdapter, seqs: list[str], wanted: list[int], per_residue: bool) -> dict[int, list[Any]]:
        """``{layer: [array per sequence]}``, every batch checked on the way."""
        dim, kind = model.feature_dim(seqs, per_residue=per_residue), "per-residue" if per_residue else "pooled"
        out: dict[int, list[Any]] = {layer: [None] * len(seqs) for layer in wanted}
        seen: list[int] = []
        for batch in model.embed(seqs, wanted, per_residue=per_residue):
            indices = [int(i) for i in batch.indices]
            seen += indices
            require(
                sorted(batch.per_layer) == wanted, f"asked for layers {wanted}, a batch has {sorted(batch.per_layer)}"
            )
            sizes = [len(seqs[i]) if per_residue else 1 for i in indices]
            for layer, arr in batch.per_layer.items():
                shape = (sum(sizes), dim)
                require(
                    arr.dtype == np.float32 and arr.shape == shape,
                    f"layer {layer} ({kind}) is {arr.dtype} {arr.shape}, not float32 {shape}",
                )
                require(np.isfinite(arr).all(), f"layer {layer} has non-finite values")
                for i, part in zip(indices, np.split(arr, np.cumsum(sizes)[:-1])):
                    out[layer][i] = part if per_residue else part[0]
        require(sorted(seen) == list(range(len(seqs))), f"batches cover sequences {sorted(seen)}, not each once")
        return out

    def agree(got: dict[int, list[Any]], want: dict[int, list[Any]], *, exact: bool = False) -> bool:
        equal = np.array_equal if exact else lambda a, b: np.allclose(a, b, rtol=1e-4, atol=1e-5)
        return all(equal(a, b) for layer in got for a, b in zip(got[layer], want[layer]))

    every, last = adapter.layers, adapter.num_layers
    reference = {}
    for per_residue in (False, True):
        ref = reference[per_residue] = embedded(adapter, sequences, every, per_residue)
        again = embedded(adapter, sequences, every, per_residue)
        require(agree(again, ref, exact=True), "two identical embed calls gave different numbers")
        backwards = embedded(adapter, sequences[::-1], every, per_residue)
        require(
            agree({k: v[::-1] for k, v in backwards.items()}, ref), "the numbers depend on the order of the sequences"
        )
        for wanted in ([0], [last], [0, last]):
            got = embedded(adapter, sequences, sorted(set(wanted)), per_residue)
            require(agree(got, ref), f"layers {wanted} alone differ from the same layers asked for with all")
    if adapter.pooling == "mean":
        pooled = {layer: [rows.mean(0) for rows in reference[True][layer]] for layer in every}
        require(agree(reference[False], pooled), "a pooled vector is not the mean of its residue rows")
    require(adapter.identity() == identity, "identity() changed by embedding")

    if build is not None:
        twin = build(name, init, seed, options)
        require(twin.identity() == identity, "two builds of the same (name, init, seed) have different identities")
        twin_out = embedded(twin, sequences, every, False)
        require(
            agree(twin_out, reference[False], exact=True), "two builds of the same (name, init, seed) embed differently"
        )
        if seed is not None:
            other = build(name, init, seed + 1, options).identity()
            require(other != identity, f"seeds {seed} and {seed + 1} have the same identity")
    return adapter


# the contract of a claim kind


def check_claim_kind(
    cls: Any,
    params: dict[str, Any] | None = None,
    *,
    model: str = "tiny_esm",
    task: str = REGRESSION_TASKS[0],
    records: list[dict[str, Any]] | None = None,
    baselines: Any = None,
) -> Any:
    """Check that the claim kind ``cls`` keeps the contract the plugin relies on (an
    ``AssertionError`` or ``ClaimKindError`` says what breaks) and return the ClaimOutcome of
    ``model`` on ``task`` with the kind's first default init, on ``records`` (default:
    :func:`synthetic_records` of the model, its comparators and one-hot).

    ``params``: a valid ``"params"`` object of a claims-file entry of this kind. Checked: it
    registers; each Param's default passes its own check and a wrongly typed value is refused
    naming the parameter; a claims file with the entry parses (its default inits pass the kind's
    check), one with an unknown parameter is refused; comparators, applies_to and skip_reason
    answer in the types the plugin expects; no records give a missing outcome (the case skips).
    A kind the check registered is unregistered again.
    """
    # imported here: the claims (pandas, scipy) are not needed by the toy models and records above
    from pytest_plmtransfer.judge.claims import (
        ClaimCase,
        ClaimOutcome,
        ClaimsError,
        evaluate,
        get_kind,
        kind_names,
        parse_claims,
        register_kind,
        unregister_kind,
    )
    from pytest_plmtransfer.models.base import INITS
    from pytest_plmtransfer.options import PlmOptions
    from pytest_plmtransfer.results.ledger import records_to_frame

    registered_here = getattr(cls, "name", None) not in kind_names()
    register_kind(cls)
    try:
        kind, name, given = get_kind(cls.name), cls.name, dict(params or {})
        assert type(kind) is cls, f"{name!r} is registered as {type(kind).__qualname__}, not {cls.__qualname__}"
        for key, param in cls.params.items():
            problem = param.check(key, param.default) if param.default is not None and param.check else None
            assert problem is None, f"{name}: the default of {key!r} fails its own check: {problem}"
            # a bool is never a number here: True is refused whatever the types
            candidates: tuple[object, ...] = ("text", 1.5, [], {}, True)
            wrong = next(v for v in candidates if isinstance(v, bool) or not isinstance(v, param.types))
            refused = kind.validate_params({**given, key: wrong})[1]
            assert any(f"'{key}'" in p for p in refused), f"{name}: {key}={wrong!r} is accepted"
        values, problems = kind.validate_params(given)
        assert not problems, f"{name}: the params given are refused: {problems}"
        assert kind.validate_params([])[1], f"{name}: a 'params' that is not an object is accepted"
        entry = {"name": "contract", "kind": name, "params": given}
        spec = parse_claims({"claims": [entry]}).claims[0]
        assert (spec.kind, dict(spec.params)) == (name, values), f"{name}: the claims file reads {spec}"
        assert kind.check_inits(spec.inits) is None, f"{name}: its default inits fail its own check"
        try:
            parse_claims({"claims": [{**entry, "params": {**given, "no_such_param": 1}}]})
            raise AssertionError(f"{name}: a claims file with an unknown parameter is accepted")
        except ClaimsError as exc:
            assert "no_such_param" in str(exc), str(exc)

        case = ClaimCase(
            "contract", name, model, task, next((i for i in spec.inits if i in INITS), "pretrained"), values
        )
        others = kind.comparators(case)
        assert isinstance(others, tuple) and all(isinstance(m, str) and m for m in others), others
        assert isinstance(kind.applies_to(model, INITS), bool), f"{name}: applies_to must return a bool"
        for options in (PlmOptions(), PlmOptions(update_baselines=True), PlmOptions(limit=10)):
            reason = kind.skip_reason(options)
            assert reason is None or (isinstance(reason, str) and reason), f"{name}: skip_reason gave {reason!r}"
        nothing = evaluate(case, records_to_frame([]), baselines)
        assert isinstance(nothing, ClaimOutcome) and nothing.missing and nothing.message, (
            f"{name}: with no records the outcome must be missing (the case skips) and say what to run: {nothing}"
        )
        models = {ONEHOT: 0, model: 4, **{m: 4 for m in others if m != ONEHOT}}
        outcome = evaluate(
            case, records_to_frame(records or synthetic_records(models=models, tasks=(task,))), baselines
        )
        assert isinstance(outcome, ClaimOutcome) and isinstance(outcome.passed, bool) and outcome.message, outcome
        assert isinstance(outcome.detail, dict) and outcome.detail.get("kind") == name, outcome.detail
        return outcome
    finally:
        if registered_here:
            unregister_kind(cls.name)
