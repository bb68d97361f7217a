"""The ledger's record schema, defined once: a layer record, a claim record, and the provenance
both carry. The ledger stores :meth:`~LayerRecord.to_dict` (provenance flat at the top level);
:func:`parse_record` reads one back (unknown fields kept in ``extra`` and written back unchanged);
:data:`FRAME_COLUMNS` are the columns of a result frame.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

#: how embeddings may be cached (``--plm-cache-dtype``; a record's ``cache_dtype``)
CACHE_DTYPES = ("float32", "float16")
#: fields that differ between two runs that computed the same numbers (time, place, run
#: bookkeeping, cache state); ``same_measurement`` ignores them
RUN_SPECIFIC_FIELDS = (
    "run_id", "timestamp", "host", "worker", "shard", "plan_hash", "embed_seconds", "fit_seconds", "cache_hit",
    "test_id", "git_commit", "machine", "device", "cuda_visible_devices", "interval_seconds", "timing",
)  # fmt: skip


@dataclass
class Provenance:
    """Where and when a record was made, and which run / shard / worker made it."""

    run_id: str | None = None
    plugin_version: str | None = None
    git_commit: str | None = None
    host: str | None = None
    timestamp: str | None = None
    #: pytest-xdist worker id ("gw0"), "main" without xdist
    worker: str = "main"
    #: "K/N" under --plm-shard, None otherwise
    shard: str | None = None
    #: hash of the shard plan (the selected groups and their assignment); equal across shards
    plan_hash: str | None = None


#: the fields that identify one (model, task, layer, init, seed, protocol) measurement
LAYER_KEY = ("model", "task", "layer", "init", "seed", "protocol")
_PROVENANCE = tuple(f.name for f in dataclasses.fields(Provenance))


#: fields a record holds only when set (None: absent from its dict), written after the provenance
_ONLY_WHEN_SET = ("cuda_visible_devices", "limit", "base_model", "head_name")


class _Record:
    kind: ClassVar[str]
    provenance: Provenance
    extra: dict[str, Any]

    @classmethod
    def _own_fields(cls) -> list[str]:
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        return [f.name for f in fields if f.name not in ("provenance", "extra")]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        names = self._own_fields()
        out.update((name, getattr(self, name)) for name in names if name not in _ONLY_WHEN_SET)
        out.update(dataclasses.asdict(self.provenance))
        out.update(self.extra)
        out.update(
            (name, getattr(self, name)) for name in names if name in _ONLY_WHEN_SET and getattr(self, name) is not None
        )
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """A flat record dict: own fields, provenance fields and anything else (``extra``)."""
        names = set(cls._own_fields())
        own = {k: v for k, v in data.items() if k in names}
        prov = Provenance(**{k: data[k] for k in _PROVENANCE if k in data})
        extra = {k: v for k, v in data.items() if k not in names and k not in _PROVENANCE and k != "kind"}
        return cls(**own, provenance=prov, extra=extra)  # type: ignore[call-arg]


@dataclass
class LayerRecord(_Record):
    """One (model, task, layer, init, seed) measurement."""

    kind: ClassVar[str] = "layer"
    model: str
    task: str
    layer: int
    init: str
    seed: int | None
    metrics: dict[str, float]
    #: the protocol the numbers were made under (pytest_plmtransfer.measure.protocol)
    protocol: str = "plmtransfer"
    num_layers: int | None = None
    task_kind: str | None = None
    head: dict[str, Any] = field(default_factory=dict)
    selection_metric: str | None = None
    test_metric: str | None = None
    split_sizes: dict[str, int] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    weights: Any = None
    embedding_key: str | None = None
    embed_seconds: float | None = None
    fit_seconds: float | None = None
    cache_hit: bool | None = None
    #: how the embeddings were cached (float32, or float16 under --plm-cache-dtype)
    cache_dtype: str | None = None
    #: the device and dtype the model really ran on; ``requested`` keeps what was asked
    device: str | None = None
    dtype: str | None = None
    requested: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    #: bootstrap interval of the test metric ({metric: {estimate, se, low, high, ...}}; see stats.py)
    intervals: dict[str, Any] = field(default_factory=dict)
    interval_seconds: float | None = None
    #: where this layer's kept test predictions are (key, path, sha256; see predictions.py)
    predictions: dict[str, Any] = field(default_factory=dict)
    #: seconds spent on this model (collection, data, embedding, probe, ledger; see timing.py)
    timing: dict[str, float] = field(default_factory=dict)
    test_id: str | None = None
    #: the model's parameter count (None: an adapter that does not say)
    model_params: int | None = None
    #: pretraining checkpoints (CARP's): step, fraction of pretraining and masked-LM loss there;
    #: None for models that are not one of a model's checkpoints (see models/carp.py)
    checkpoint_step: int | None = None
    checkpoint_fraction: float | None = None
    mlm_loss: float | None = None
    #: the CUDA_VISIBLE_DEVICES the run saw (None: unset)
    cuda_visible_devices: str | None = None
    #: --plm-limit N: the records of a subsample (None: the whole task)
    limit: int | None = None
    #: a user's head on a layer case (``model`` is ``<base_model>+<head_name>``; None for the probe)
    base_model: str | None = None
    head_name: str | None = None
    provenance: Provenance = field(default_factory=Provenance)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in LAYER_KEY)

    @property
    def group(self) -> tuple[str, str, int | None]:
        """The embedding group: one model build and one forward pass per sequence set."""
        return (self.model, self.init, self.seed)


@dataclass
class ClaimRecord(_Record):
    """One claim's outcome on one (model, task, init)."""

    kind: ClassVar[str] = "claim"
    claim: str
    claim_kind: str
    claim_id: str
    model: str
    task: str
    init: str | None
    outcome: str
    passed: bool | None
    #: the protocol of the layer records the claim was evaluated on
    protocol: str = "plmtransfer"
    expected_failure: str | None = None
    strict: bool = False
    message: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    test_id: str | None = None
    provenance: Provenance = field(default_factory=Provenance)
    extra: dict[str, Any] = field(default_factory=dict)


#: a record's ``kind`` -> its type
RECORD_KINDS: dict[str, type[LayerRecord] | type[ClaimRecord]] = {"layer": LayerRecord, "claim": ClaimRecord}


def parse_record(data: dict[str, Any]) -> LayerRecord | ClaimRecord:
    """A ledger dict as its typed record."""
    kind = data.get("kind")
    if kind not in RECORD_KINDS:
        raise ValueError(f"unknown record kind {kind!r}")
    return RECORD_KINDS[kind].from_dict(data)


#: the columns every result frame has (missing values NaN/None): each field of a layer or claim
#: record and of their provenance; the metrics, flattened (open-ended: a head may record its
#: own), join them
_FIELDS = ["kind", *(f.name for t in (LayerRecord, ClaimRecord) for f in dataclasses.fields(t)), *_PROVENANCE]
FRAME_COLUMNS = tuple(n for n in dict.fromkeys(_FIELDS) if n not in ("provenance", "extra", "metrics"))


def measurement(record: dict[str, Any]) -> dict[str, Any]:
    """A record without its run-specific fields: what two runs of the same work must share.

    The kept predictions' file path says where this run's cache is, not what it measured: two
    runs with different caches share the predictions' key and digest, not their path."""
    out = {k: v for k, v in record.items() if k not in RUN_SPECIFIC_FIELDS}
    if isinstance(out.get("predictions"), dict):
        out["predictions"] = {k: v for k, v in out["predictions"].items() if k != "path"}
    return out
