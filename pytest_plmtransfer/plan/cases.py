"""The plan stage: which layer and claim cases a selection makes, and which layers each
embedding pass must compute so that one forward pass serves every test that reads it.

Plain Python, no pytest. The plugin asks a :class:`Planner` for the cases while parametrizing,
then for the :func:`planned_layers` of the final selection; the run stage gets both as values.
Nothing here builds a model: layer counts come from the models' descriptions (config tables).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_plmtransfer.infra.errors import ResourceUnavailable
from pytest_plmtransfer.judge.claims.kinds import get_kind
from pytest_plmtransfer.judge.claims.spec import ClaimCase, check_selectors, expand_claims
from pytest_plmtransfer.models.base import INITS, ONEHOT
from pytest_plmtransfer.models.describe import ModelDescription
from pytest_plmtransfer.models.registry import ModelOptions, ModelRegistry
from pytest_plmtransfer.options import PlmOptions, parse_layers
from pytest_plmtransfer.results.ledger import LedgerError, read_records, record_key
from pytest_plmtransfer.tasks.catalog import get_task, task_ids

#: (model, init, seed, task): what one embedding pass computes, for every layer planned
EmbeddingRequest = tuple[str, str, int | None, str]


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
    def embedding_request(self) -> EmbeddingRequest:
        return (self.model, self.init, self.seed, self.task)


def claim_models(claim) -> tuple[str, ...]:
    """The models whose layer results on its task a claim reads: its own, then those its kind
    compares with (one-hot for beats_onehot)."""
    others = get_kind(claim.kind).comparators(claim)
    return (claim.model, *(m for m in dict.fromkeys(others) if m != claim.model))


@dataclass(eq=False)
class Descriptions:
    """Model descriptions (no build), each asked of the registry once per process; a model
    whose description needs absent files is remembered as unavailable."""

    registry: ModelRegistry
    model_options: ModelOptions
    _found: dict[str, ModelDescription | ResourceUnavailable] = field(default_factory=dict)

    def __call__(self, model: str) -> ModelDescription:
        if model not in self._found:
            try:
                self._found[model] = self.registry.describe(model, self.model_options)
            except ResourceUnavailable as exc:
                self._found[model] = exc
        found = self._found[model]
        if isinstance(found, ResourceUnavailable):
            raise found
        return found


def ledger_layer_records(path: Path, protocol: str) -> list[dict[str, Any]]:
    """The layer records of ``--plm-from-ledger``, each checked against its digest, newest per
    (model, task, layer, init, seed, protocol). A ledger that holds none of this protocol is an
    error: claims judged on nothing would let a gate pass."""
    if not Path(path).exists():
        raise LedgerError(f"--plm-from-ledger {path}: no such ledger (directory or file)")
    try:
        every = [r for r in read_records(path, verify=True) if r["kind"] == "layer"]
    except LedgerError as exc:
        raise LedgerError(f"--plm-from-ledger {exc}") from None
    if not every:
        raise LedgerError(f"--plm-from-ledger {path}: the ledger holds no layer records; no claim can be judged")
    records = [r for r in every if r.get("protocol") == protocol]
    if not records:
        found = sorted({str(r.get("protocol")) for r in every})
        raise LedgerError(
            f"--plm-from-ledger {path}: no layer records of the {protocol!r} protocol "
            f"(it holds: {', '.join(found)}); choose it with --plm-protocol"
        )
    newest: dict[tuple, dict[str, Any]] = {}
    for rec in sorted(records, key=lambda r: str(r.get("timestamp") or "")):
        newest[record_key(rec)] = rec
    return list(newest.values())


@dataclass(eq=False)
class Planner:
    """The cases of one selection (options + registry + claims file), computed once."""

    options: PlmOptions
    registry: ModelRegistry
    describe: Descriptions
    #: the claims file's claims (None without one), read when claim cases are asked for
    claims_file: Callable[[], Any]
    #: a context manager per model description (the timer's "collection" phase)
    on_describe: Callable[[str], Any] = lambda model: nullcontext()
    _layer_cases: list[LayerCase] | None = None
    _ledger_records: list[dict[str, Any]] | None = None

    def inits_for(self, model: str) -> list[tuple[str, int | None]]:
        """(init, seed) pairs selected for a model: pretrained once; random/stat once per seed."""
        pairs: list[tuple[str, int | None]] = []
        for init in self.registry.entry(model).inits:
            if init == "none":
                pairs.append(("none", None))
            elif init == "pretrained" and init in self.options.inits:
                pairs.append((init, None))
            elif init in self.options.inits:
                pairs.extend((init, seed) for seed in self.options.seeds)
        return pairs

    def tasks(self) -> list[str]:
        """The chosen tasks, or (none chosen) the whole catalog, default tasks first: the default
        selection then deselects the others unless -k/-m chose tasks (see selection.py)."""
        if self.options.tasks_chosen:
            return list(self.options.tasks)
        return list(dict.fromkeys([*self.options.tasks, *task_ids()]))

    def ledger_records(self) -> list[dict[str, Any]]:
        """``--plm-from-ledger``'s layer records (read once)."""
        if self._ledger_records is None:
            assert self.options.from_ledger is not None
            self._ledger_records = ledger_layer_records(self.options.from_ledger, self.options.protocol)
        return self._ledger_records

    def layer_cases(self) -> list[LayerCase]:
        if self._layer_cases is None:
            if self.options.from_ledger is not None:
                for task in self.tasks():
                    get_task(task)
                self.ledger_records()  # a wrong path or an empty ledger: one line, before anything runs
                self._layer_cases = []  # claims only, from the ledger's records
            else:
                self._layer_cases = self._cases_of(self.options.models)
        return self._layer_cases

    def _cases_of(self, models: Iterable[str]) -> list[LayerCase]:
        tasks = self.tasks()
        for task in tasks:
            get_task(task)  # unknown task ids fail collection with the list of known ones
        show_seed = len(self.options.seeds) > 1
        cases: list[LayerCase] = []
        for model in models:
            try:  # from config tables / config files: nothing is built, loaded or downloaded
                num_layers, unavailable = self._num_layers(model), None
            except ResourceUnavailable as exc:
                num_layers, unavailable = 0, str(exc)
            pairs = self.inits_for(model)
            if not pairs:
                continue
            layers = parse_layers(self.options.layers, num_layers, model) if unavailable is None else [0]
            for init, seed in pairs:
                cases += [
                    LayerCase(model, task, layer, init, seed, num_layers, unavailable, show_seed)
                    for task in tasks
                    for layer in layers
                ]
        return cases

    def _num_layers(self, model: str) -> int:
        with self.on_describe(model):
            return self.describe(model).num_layers

    def claim_cases(self) -> list[Any]:
        """Every claim of the claims file applied to the selected (model, task, init), or under
        ``--plm-from-ledger`` to what the ledger measured."""
        claims = self.claims_file()
        if claims is None:
            return []
        if self.options.from_ledger is not None:
            available = list(dict.fromkeys((r["model"], r["task"], r["init"]) for r in self.ledger_records()))
            inits_of: dict[str, set[str]] = {}
            for model, _task, init in available:
                inits_of.setdefault(model, set()).add(init)
        else:
            # one-hot is included: no_regression and matches_paper apply to it (init "none"); the
            # kinds that make no sense for it (beats_onehot, ...) never select it
            available = [
                (model, task, init)
                for model in self.options.models
                for init in dict.fromkeys(init for init, _ in self.inits_for(model))
                for task in self.tasks()
            ]
            inits_of = {m: set(self.registry.entry(m).inits) for m in self.options.models}
        # a pattern that matches nothing known is a typo that would silently weaken a CI gate
        check_selectors(
            claims,
            models=[*self.registry.names(), *self.options.models, ONEHOT, *(m for m, _t, _i in available)],
            tasks=task_ids(),
            inits=[*INITS, "none"],
        )
        # e.g. "pretrained beats random" cannot apply to a model that has no random init
        return [
            c
            for c in expand_claims(claims, available)
            if get_kind(c.kind).applies_to(c.model, inits_of.get(c.model, ()))
        ]

    def claim_layer_cases(self, claim) -> list[LayerCase]:
        """The layer results a claim reads: its model on its task (every init and seed) and the
        models its kind compares with on the task, added even when not selected."""
        own = [c for c in self.layer_cases() if c.model == claim.model and c.task == claim.task]
        for model in claim_models(claim)[1:]:
            theirs = [c for c in self.layer_cases() if c.model == model and c.task == claim.task]
            own += theirs or [c for c in self._cases_of([model]) if c.task == claim.task]
        return own

    def planned_layers(
        self, cases: Iterable[LayerCase], claims: Iterable[Any] = ()
    ) -> dict[EmbeddingRequest, set[int]]:
        """The layers each embedding request needs over the final selection: the layer tests'
        and those of every case a selected claim reads."""
        planned: dict[EmbeddingRequest, set[int]] = {}
        needed = list(cases)
        for claim in claims:
            needed += self.claim_layer_cases(claim)
        for case in needed:
            planned.setdefault(case.embedding_request, set()).add(case.layer)
        return planned


@dataclass(frozen=True)
class BadSelection:
    """Stands in for the cases when the selection itself is bad (an unknown model, a layer out
    of range, a claims file naming unknown ids): one test that fails with the one line."""

    message: str


def case_of(item: Any, name: str) -> Any:
    """A pytest item's layer case (``name`` "plm_layer_case") or claim case ("plm_claim_case");
    None for other tests, a :class:`BadSelection`, or pytest's NOTSET placeholder of an empty
    parametrization."""
    value = getattr(getattr(item, "callspec", None), "params", {}).get(name)
    return value if isinstance(value, LayerCase | ClaimCase) else None
