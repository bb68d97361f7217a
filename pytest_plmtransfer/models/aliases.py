"""Model aliases: ``--plm-models my_plm=hf:./path`` selects ``hf:./path`` under the name ``my_plm``.

The name is what test ids, ledger records, reports and stored baselines use, so baselines made
on a reference machine match a CI checkout whatever the path looks like there.

An alias declared in the ini's ``plm_models`` is known even when the command line selects the
models: ``pytest benchmarks --plm-models my_plm,onehot`` (what ``plmtransfer init`` prints and
its workflow runs) finds ``my_plm`` there. An alias given only on the command line is spelled
out in full in the commands messages tell the user to run (:func:`command_spelling`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pytest_plmtransfer.infra.errors import PlmTransferError
from pytest_plmtransfer.models.registry import ModelRegistry

_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
#: name -> "name=target", for the aliases of this process given only on the command line
_SPELLED: dict[str, str] = {}


def _is_alias(item: str) -> bool:
    return "=" in item and "@" not in item.split("=", 1)[0]


def _pair(item: str) -> tuple[str, str]:
    name, target = (part.strip() for part in item.split("=", 1))
    if not _ALIAS.fullmatch(name) or not target:
        raise PlmTransferError(
            f"--plm-models: {item!r} is not NAME=MODEL (NAME: letters, digits, '_', '.', '-'; "
            "e.g. my_plm=hf:./checkpoints/my_plm)"
        )
    return name, target


def apply_aliases(models: list[str], registry: ModelRegistry, declared: Iterable[str] = ()) -> list[str]:
    """Register every ``name=target`` of ``models`` and of ``declared`` (the ini's ``plm_models``)
    as a model ``name`` built like ``target``; return ``models`` with the names in place of pairs."""
    ini = dict(_pair(item) for item in declared if _is_alias(item))
    given: dict[str, str] = {}
    out: list[str] = []
    for item in models:
        # an '@' before the first '=' is a checkpoint name (carp_640M@step=78810), never an alias
        if _is_alias(item):
            name, target = _pair(item)
            given[name] = target
            item = name
        out.append(item)
    for name, target in {**ini, **given}.items():
        _register(registry, name, target)
    _SPELLED.clear()
    _SPELLED.update({name: f"{name}={target}" for name, target in given.items() if ini.get(name) != target})
    return out


def _register(registry: ModelRegistry, name: str, target: str) -> None:
    if name in registry.names():
        raise PlmTransferError(
            f"--plm-models: alias {name!r} would hide the model {name!r} that a plugin or conftest.py "
            f"registers (plmtransfer init's conftest.py registers its TinyPLM stand-in under the model's "
            f"name: delete its pytest_plmtransfer_register_models, or scaffold with plmtransfer init --hf "
            f"{target.removeprefix('hf:')}); or pick another name"
        )
    base = registry.entry(target)  # unknown targets fail here, with the list of known models

    def describe(_name, options):
        return base.describe(target, options)

    # described like its target at collection, never built there (a bad checkpoint fails its tests)
    registry.register(
        name,
        lambda _name, init, seed, options: base.factory(target, init, seed, options),
        inits=base.inits,
        description=f"alias of {target}",
        needs_weights=base.needs_weights,
        describe=describe if base.describe is not None else None,
    )


def command_spelling(model: str) -> str:
    """How to name ``model`` on a command line printed for the user to run."""
    return _SPELLED.get(model, model)
