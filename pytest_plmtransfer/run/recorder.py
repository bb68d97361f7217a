"""The record stage: a :class:`~pytest_plmtransfer.run.runner.LayerResult` (or a claim's
outcome) -> a ledger record with its provenance -> the ledger.

A ledger that cannot be written (a full disk) loses nothing: the records are kept in memory,
retried with the next write, and at the end of the session saved where they can be merged from.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_plmtransfer import __version__
from pytest_plmtransfer.infra.errors import PlmTransferError
from pytest_plmtransfer.infra.provenance import machine_info, utc_now
from pytest_plmtransfer.plan.cases import Descriptions
from pytest_plmtransfer.results.ledger import Ledger, write_part
from pytest_plmtransfer.results.records import ClaimRecord, LayerRecord, Provenance
from pytest_plmtransfer.run.runner import LayerResult
from pytest_plmtransfer.run.timing import PhaseTimer


class LedgerWriteError(PlmTransferError):
    """The ledger could not be written; the records are kept (see Recorder.write)."""


@dataclass(eq=False)
class Recorder:
    ledger: Ledger
    describe: Descriptions
    timer: PhaseTimer
    root: Path
    #: the device and dtype asked for (records keep what really ran beside it)
    requested: dict[str, Any]
    limit: int | None = None
    #: pytest-xdist worker id ("gw0") or "main"; "K/N" under --plm-shard
    worker: str = "main"
    shard: str | None = None
    cuda_visible_devices: str | None = None
    #: hash of the shard plan of this selection (set after collection, see plan/sharding.py)
    plan_hash: str | None = None
    #: records a full or failing ledger disk refused, retried with the next write
    unsaved: list[dict[str, Any]] = field(default_factory=list)
    #: layer records made in this process, for the claims that read them
    layer_records: dict[tuple, dict[str, Any]] = field(default_factory=dict)
    _machine: dict[str, Any] | None = None

    @property
    def run_id(self) -> str:
        return self.ledger.run_id

    def set_plan(self, plan) -> None:
        """The shard plan of this selection (plan/sharding.py): its hash in every record, the whole
        plan in this process's ledger part header (for ``plmtransfer merge``)."""
        self.plan_hash = plan.hash
        self.ledger.header = {
            "shard": self.shard,
            "worker": self.worker,
            "plan_hash": plan.hash,
            "plan": plan.to_dict(),
        }

    def machine(self) -> dict[str, Any]:
        if self._machine is None:
            self._machine = machine_info(self.root)
        return self._machine

    def provenance(self) -> Provenance:
        machine = self.machine()
        return Provenance(
            run_id=self.run_id,
            plugin_version=__version__,
            git_commit=machine["git_commit"],
            host=machine["host"],
            timestamp=utc_now(),
            worker=self.worker,
            shard=self.shard,
            plan_hash=self.plan_hash,
        )

    def layer_record(
        self,
        layer: LayerResult,
        *,
        test_id: str | None = None,
        base_model: str | None = None,
        head_name: str | None = None,
    ) -> dict[str, Any]:
        """``base_model`` and ``head_name``: the registry model and the head behind a user's head's
        record (its model is ``<base_model>+<head_name>``)."""
        case, data, entry, result = layer.case, layer.data, layer.entry, layer.result
        machine = self.machine()
        spec = data.spec
        description = self.describe(base_model or case.model)  # cached since collection; nothing is built
        record = LayerRecord(
            model=case.model,
            init=case.init,
            seed=case.seed,
            protocol=layer.protocol,
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
                "hygiene": layer.hygiene,
            },
            weights=layer.weights,
            embedding_key=entry.key,
            embed_seconds=0.0 if base_model else round(entry.embed_seconds, 3),
            fit_seconds=round(float(result["fit_seconds"]), 3),
            cache_hit=not entry.computed,
            cache_dtype=entry.dtype,
            **layer.runtime,
            requested=self.requested,
            versions=machine["versions"],
            machine={k: machine[k] for k in ("platform", "python", "cpu_count", "torch_threads", "cuda")},
            intervals=result.get("intervals") or {},
            interval_seconds=result.get("interval_seconds"),
            predictions=layer.predictions,
            # seconds this process spent on the model since its previous record (timing.py): the
            # run's records sum to its per-model totals
            timing=self.timer.take(case.model),
            model_params=layer.model_params,
            checkpoint_step=description.checkpoint_step,
            checkpoint_fraction=description.checkpoint_fraction,
            mlm_loss=description.mlm_loss,
            provenance=self.provenance(),
            test_id=test_id,
            cuda_visible_devices=self.cuda_visible_devices,
            limit=self.limit,
            base_model=base_model,
            head_name=head_name,
        )
        out = record.to_dict()
        if base_model is None:
            self.layer_records[case.embedding_request + (case.layer,)] = out
        return out

    def claim_record(self, fields: dict[str, Any], protocol: str) -> dict[str, Any]:
        fields = {k: v for k, v in fields.items() if k != "kind"}
        return ClaimRecord(**fields, protocol=protocol, provenance=self.provenance()).to_dict()

    # ------------------------------------------------------------------ the ledger
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
