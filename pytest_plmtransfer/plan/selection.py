"""What a plain ``pytest benchmarks`` runs, and how ``-k`` / ``-m`` widen it.

The mechanism: unless ``--plm-tasks`` or ``--plm-suite`` chose the tasks, the plugin collects the
whole FLIP catalog for the selected models (collection is cheap: models are built once per
(model, init, seed), not per task), and the *default selection* keeps only the smoke suite's
tasks. A ``-k`` / ``-m`` expression that chooses tasks (``-k scl``, ``-k gb1``, ``-m per_residue``)
lifts that default, so it selects from the whole catalog; one that only narrows other axes
(``-k "esm2 and L05"``, ``-m "plm_layer and not stat"``) keeps the default tasks.

"Chooses tasks" is decided from what the expression did, not from its text: it chose tasks when,
for some test with everything but the task fixed (same test function, model, init, seed, layer or
claim), it kept some tasks and dropped others.

Plain functions over small records, so the rule is tested without pytest.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_plmtransfer.tasks.catalog import get_task

#: marker name -> description, registered in pytest_configure (``pytest --markers`` lists them)
FAMILY_MARKERS: dict[str, str] = {
    "gb1": "FLIP GB1 fitness tasks",
    "aav": "FLIP AAV capsid tasks",
    "meltome": "FLIP Meltome thermostability tasks",
    "scl": "FLIP subcellular localization tasks",
    "ss3": "FLIP secondary structure (3-state, per residue)",
    "bind": "FLIP binding-residue tasks (per residue)",
    "conservation": "FLIP conservation task (per residue)",
    "tape_secondary_structure": "TAPE secondary structure, the ICML paper's SS3 (3-state, per residue)",
}
KIND_MARKERS: dict[str, str] = {
    "regression": "per-sequence regression tasks (ridge probe)",
    "classification": "per-sequence classification tasks (softmax probe)",
    "per_residue": "per-residue classification tasks",
}
INIT_MARKERS: dict[str, str] = {
    "pretrained": "pretrained weights",
    "random": "the architecture freshly initialized (seeded)",
    "stat": "pretrained tensors with their elements permuted (seeded)",
}
KIND_OF_TEST_MARKERS: dict[str, str] = {
    "plm_layer": "a per-layer transfer measurement",
    "plm_claim": "a claim (beats one-hot, saturates, pretrained beats random/stat, no regression, paper)",
}
#: FLIP dataset name -> family marker
_FAMILY = {"secondary_structure": "ss3"}


def marker_lines() -> list[str]:
    """``name: description`` lines for ``config.addinivalue_line("markers", ...)``."""
    tables = (KIND_OF_TEST_MARKERS, FAMILY_MARKERS, KIND_MARKERS, INIT_MARKERS)
    return [f"{name}: {text}" for table in tables for name, text in table.items()]


def marker_names(test_kind: str, task: str, init: str) -> list[str]:
    """Markers of one benchmark test: its kind (plm_layer / plm_claim), task family, task kind, init."""
    spec = get_task(task)
    names = [test_kind, _FAMILY.get(spec.dataset, spec.dataset), spec.kind]
    if init in INIT_MARKERS:
        names.append(init)
    return names


@dataclass(frozen=True)
class Selectable:
    """A collected benchmark test, reduced to what the default selection looks at."""

    #: everything that identifies the test except its task (function, model, init, seed, layer...)
    group: Hashable
    task: str


def chooses_tasks(full: Iterable[Selectable], selected: Iterable[Selectable]) -> bool:
    """Whether a -k/-m selection kept some tasks of a group and dropped others."""
    all_tasks: dict[Hashable, set[str]] = defaultdict(set)
    for t in full:
        all_tasks[t.group].add(t.task)
    kept: dict[Hashable, set[str]] = defaultdict(set)
    for t in selected:
        kept[t.group].add(t.task)
    return any(tasks != all_tasks.get(group, tasks) for group, tasks in kept.items())


def default_keep(
    full: Sequence[Selectable],
    selected: Sequence[Selectable],
    default_tasks: Iterable[str],
    *,
    tasks_chosen: bool,
    expression_given: bool,
) -> list[bool]:
    """For each of ``selected``: keep it (True) or deselect it by the default selection."""
    if tasks_chosen or (expression_given and chooses_tasks(full, selected)):
        return [True] * len(selected)
    default = set(default_tasks)
    return [t.task in default for t in selected]


def default_selection_line(default_tasks: Sequence[str], deselected: int) -> str:
    return (
        f"plmtransfer: default selection is the smoke suite's tasks ({', '.join(default_tasks)}); "
        f"{deselected} test(s) of other FLIP tasks deselected. Widen it with -k/-m naming tasks "
        "(e.g. -k scl, -m per_residue), --plm-tasks or --plm-suite; --plm-list lists them."
    )


def selectable(item: Any) -> Selectable | None:
    """A pytest item as a :class:`Selectable`; None for tests that are not benchmark cases, a bad
    selection's placeholder (it fails with its one line, whatever -k says) and pytest's NOTSET
    placeholder of an empty parametrization."""
    # here, not at the top: marker_lines() runs in every pytest's configure, and the cases module
    # brings pandas and the claims with it
    from pytest_plmtransfer.plan.cases import case_of

    func = (item.nodeid.split("[", 1)[0],)
    c = case_of(item, "plm_layer_case")
    if c is not None:
        return Selectable(func + (c.model, c.init, c.seed, c.layer), c.task)
    c = case_of(item, "plm_claim_case")
    if c is not None:
        return Selectable(func + (c.name, c.model, c.init), c.task)
    return None


def default_deselection(
    collected: Sequence[Selectable], items: Sequence[Any], options: Any, *, expression_given: bool
) -> tuple[list[Any], str | None]:
    """The items the default selection drops (``collected``: every case before -k/-m), and the
    line that says so."""
    cases = [(item, sel) for item, sel in ((i, selectable(i)) for i in items) if sel is not None]
    keep = default_keep(
        collected,
        [sel for _, sel in cases],
        options.tasks,
        tasks_chosen=options.tasks_chosen,
        expression_given=expression_given,
    )
    dropped = [item for (item, _), k in zip(cases, keep) if not k]
    return dropped, default_selection_line(options.tasks, len(dropped)) if dropped else None
