"""Protocols: every choice between embeddings and a published number, held in one place.

``plmtransfer`` (the default) is this project's own protocol. ``authors`` replicates the code path
of Li et al. (microsoft/protein-transfer at commit 8aed4087), quirks included, so that their
published numbers come out of this package; ``docs/protocols.md`` lists every difference with the
file and line of the authors' code it follows. A protocol decides how ``random`` and ``stat`` are
made (:mod:`~pytest_plmtransfer.models.inits`), the one-hot alphabet, what is done to a task's
sequences before any model sees them (:meth:`Protocol.prepare`) and the probes' defaults
(:meth:`Protocol.probe_settings`).

The protocol's name is in every record, in the result-cache key, in the embedding-cache key of
ablated inits and one-hot, and in every stored baseline's key, so results of two protocols never
mix. Pretrained embeddings of identical sequences are the same under both and are shared.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for the annotation only: this module (and options.py, which reads it) imports no numpy
    from pytest_plmtransfer.tasks.spec import TaskData

PLMTRANSFER = "plmtransfer"
AUTHORS = "authors"
#: the suites that reproduce a paper default to its authors' protocol (options.py)
AUTHORS_SUITES = ("paper", "icml")

#: the authors' one-hot alphabet: the key order of their amino-acid property table
#: (scr/params/aa.py:42-74), 23 letters, nothing folded
AUTHORS_ONEHOT_ALPHABET = "RHKDESTNQBCXUGPAVILMFYW"


@dataclass(frozen=True)
class Protocol:
    name: str
    #: ``constructor``: ``random`` is the library's freshly built model, ``stat`` permutes every
    #: parameter; ``authors``: both start from the pretrained model and follow the authors'
    #: reset_param / resample_param rules (models/inits.py)
    ablation: str
    onehot_alphabet: str
    #: letters counted as X by one-hot ("" keeps them unknown: an error)
    onehot_fold_to_x: str
    #: remove the last residue of every sequence of a task that has no residue window
    drop_last_residue: bool
    #: cut every sequence longer than this to its first and last halves, whatever the model
    max_residues: int | None
    #: ProbeSettings defaults (the user's --plm-head-* options win over them)
    probe_defaults: dict[str, Any] = field(default_factory=dict)

    def model_max_residues(self, adapter_max: int | None) -> int | None:
        """The length limit a model's sequences are cut to under this protocol."""
        limits = [m for m in (adapter_max, self.max_residues) if m is not None]
        return min(limits) if limits else None

    def prepare(self, data: TaskData) -> TaskData:
        """The task's data as this protocol feeds it to models (the input is not modified).

        Under ``authors`` a task without a residue window loses the last residue of every
        sequence: their loader slices ``[start:end]`` with ``end = -1`` when no end is given
        (scr/preprocess/data_process.py:498-500, applied at 771-779). Per-residue labels and masks
        lose their last position too, so residue *i* keeps its own label. The number of residues
        removed is recorded in ``notes["quirks"]``.
        """
        if not self.drop_last_residue or data.spec.window is not None:
            return data
        per_residue = data.spec.per_residue
        notes = {**data.notes, "quirks": {"last_residue_dropped": len(data.sequences)}}
        return dataclasses.replace(
            data,
            sequences=[s[:-1] for s in data.sequences],
            targets=[t[:-1] for t in data.targets] if per_residue else list(data.targets),
            residue_masks=None if data.residue_masks is None else [m[:-1] for m in data.residue_masks],
            notes=notes,
        )

    def probe_settings(self, head: dict[str, Any] | None, device: str):
        """The probes' settings: this protocol's defaults, the user's ``--plm-head-*`` over them."""
        from pytest_plmtransfer.measure.probe import settings_for_run

        return settings_for_run({**self.probe_defaults, **(head or {})}, device)


PROTOCOLS: dict[str, Protocol] = {
    PLMTRANSFER: Protocol(
        PLMTRANSFER,
        ablation="constructor",
        onehot_alphabet="ACDEFGHIKLMNPQRSTVWYX",
        onehot_fold_to_x="BZUO",
        drop_last_residue=False,
        max_residues=None,
    ),
    AUTHORS: Protocol(
        AUTHORS,
        ablation="authors",
        onehot_alphabet=AUTHORS_ONEHOT_ALPHABET,
        onehot_fold_to_x="",
        drop_last_residue=True,
        # scr/params/emb.py:15 and scr/preprocess/data_process.py:774-779: first 511 + last 511, for every model
        max_residues=1022,
        probe_defaults={
            # scr/params/sys.py:14-18: logspace(-3, 1, 5), which is exactly these floats
            "alphas": [0.001, 0.01, 0.1, 1.0, 10.0],
            # execute_run_sklearn_*.sh: --sklearn_params='{"normalize":true}' (scikit-learn 1.0.2)
            "ridge_features": "l2norm",
            # scr/model/run_sklearn.py:613-620: StandardScaler on the training targets
            "ridge_targets": "standardize",
            # scr/model/run_sklearn.py:584-648 (RunSK.pick_model)
            "ridge_rule": "pick_model",
            # run_protran_pytorch.py:164 (1e-4), execute_run_pytorch_*.sh (--epochs=100; their
            # --loader_batch_size=256 is already the per-sequence default), scr/model/run_pytorch.py:75
            # and scr/model/train_test.py:214-223 (tolerance 10)
            "lr": 1e-4,
            "max_epochs": 100,
            "patience": 10,
            "min_delta": 0.0,
            # the classifier reads the embeddings as they are (scr/model/train_test.py:45-58)
            "classifier_features": "raw",
        },
    ),
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown protocol {name!r} (known: {', '.join(PROTOCOLS)})") from None


def protocol_of(options: Any) -> Protocol:
    """The protocol a model factory's options name (plmtransfer for options without one)."""
    return get_protocol(getattr(options, "protocol", PLMTRANSFER))
