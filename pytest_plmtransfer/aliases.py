"""Model aliases: ``--plm-models my_plm=hf:./path`` selects ``hf:./path`` under the name ``my_plm``.

The name is what test ids, ledger records, reports and stored baselines use, so baselines made
on a reference machine match a CI checkout whatever the path looks like there.
"""

from __future__ import annotations

import re

from pytest_plmtransfer.errors import PlmTransferError
from pytest_plmtransfer.models.registry import ModelRegistry

_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def apply_aliases(models: list[str], registry: ModelRegistry) -> list[str]:
    """Register every ``name=target`` of ``models`` as a model ``name`` built like ``target``;
    return the list with the aliases' names in place of the pairs."""
    out: list[str] = []
    for item in models:
        if "=" not in item:
            out.append(item)
            continue
        name, target = (part.strip() for part in item.split("=", 1))
        if not _ALIAS.fullmatch(name) or not target:
            raise PlmTransferError(
                f"--plm-models: {item!r} is not NAME=MODEL (NAME: letters, digits, '_', '.', '-'; "
                "e.g. my_plm=hf:./checkpoints/my_plm)"
            )
        if name in registry.names():
            raise PlmTransferError(
                f"--plm-models: alias {name!r} would hide the registered model {name!r}; pick another name"
            )
        base = registry.entry(target)  # unknown targets fail here, with the list of known models

        def factory(_name, init, seed, options, _target=target, _base=base):
            return _base.factory(_target, init, seed, options)

        def describe(_name, options, _target=target, _base=base):
            return _base.describe(_target, options)

        # described like its target at collection, never built there (a bad checkpoint fails its tests)
        registry.register(
            name,
            factory,
            inits=base.inits,
            description=f"alias of {target}",
            needs_weights=base.needs_weights,
            describe=describe if base.describe is not None else None,
        )
        out.append(name)
    return out
