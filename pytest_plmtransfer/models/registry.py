"""Model registry: a model name on the command line -> a factory that builds its adapter.

Every module of this package that defines ``register(registry)`` is a model family and is found
by :func:`builtin_registry` (adding a family is adding one module); users add theirs the same way,
through the ``plmtransfer.models`` entry-point group or the ``pytest_plmtransfer_register_models``
hook (in a conftest or a plugin): both receive the registry and call :meth:`ModelRegistry.register`.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pytest_plmtransfer.infra.errors import PlmTransferError
from pytest_plmtransfer.models.base import INITS, ModelAdapter
from pytest_plmtransfer.models.describe import Describer, ModelDescription

ENTRY_POINT_GROUP = "plmtransfer.models"


@dataclass(frozen=True)
class ModelOptions:
    """Run-wide settings every factory receives (from the command line / ini)."""

    weights_dir: Path | None = None
    device: str = "cpu"
    dtype: str = "float32"
    #: most residues (incl. special tokens and padding) in one forward batch
    token_budget: int = 4096
    allow_download: bool = True
    progress: bool = False
    #: the protocol's name (pytest_plmtransfer.measure.protocol): how random and stat are made
    protocol: str = "plmtransfer"
    extra: dict[str, Any] = field(default_factory=dict)


#: (name, init, seed, options) -> adapter. ``init`` is one of the entry's ``inits``.
ModelFactory = Callable[[str, str, "int | None", ModelOptions], ModelAdapter]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: ModelFactory
    inits: tuple[str, ...] = INITS
    description: str = ""
    #: a prefix entry (``hf:``) matches every name that starts with it
    prefix: bool = False
    #: inits that need pretrained weights (and are skipped when they cannot be had)
    needs_weights: tuple[str, ...] = ("pretrained", "stat")
    #: describes the model without building it (see :mod:`.describe`); None: built once to
    #: read its attributes (entries registered without one, e.g. older user plugins)
    describe: Describer | None = None


class UnknownModelError(PlmTransferError, KeyError):
    def __str__(self) -> str:  # KeyError's str() adds quotes; keep the message readable
        return str(self.args[0])


class ModelRegistry:
    def __init__(self) -> None:
        self._entries: dict[str, ModelEntry] = {}
        #: (recognizes, entry) for an existing file/directory path given as a model name
        self._path_resolvers: list[tuple[Callable[[Path], bool], ModelEntry]] = []

    def register(
        self,
        name: str,
        factory: ModelFactory,
        *,
        inits: Iterable[str] = INITS,
        description: str = "",
        prefix: bool = False,
        needs_weights: Iterable[str] = ("pretrained", "stat"),
        describe: Describer | None = None,
        num_layers: int | None = None,
        embed_dim: int | None = None,
        max_residues: int | None = None,
    ) -> None:
        """Register ``name``. Give either ``describe`` or the fixed ``num_layers`` (and
        ``embed_dim``, ``max_residues``) so that collection never has to build the model."""
        if describe is None and num_layers is not None:
            fixed = ModelDescription(int(num_layers), int(embed_dim or 0), max_residues, None, "registered sizes")
            describe = lambda _name, _options: fixed  # noqa: E731 - a constant describer
        self._entries[name] = ModelEntry(
            name, factory, tuple(inits), description, prefix, tuple(needs_weights), describe
        )

    def register_path_resolver(
        self, recognizes: Callable[[Path], bool], factory: ModelFactory, *, description: str, describe: Describer
    ) -> None:
        """Build a checkpoint file/dir given as a model name with ``factory`` when ``recognizes(path)``."""
        self._path_resolvers.append((recognizes, ModelEntry("", factory, description=description, describe=describe)))

    def names(self) -> list[str]:
        return sorted(n for n, e in self._entries.items() if not e.prefix)

    def entry(self, name: str) -> ModelEntry:
        if name in self._entries:
            return self._entries[name]
        base = name.split("@", 1)[0]  # checkpoint steps: carp_640M@step=78810
        if "@" in name and base in self._entries:
            # A checkpoint's random init is its architecture's, i.e. the base model's own random
            # tests: offering it again would compute the same numbers under another name.
            entry = self._entries[base]
            return dataclasses.replace(entry, inits=tuple(i for i in entry.inits if i != "random"))
        for entry in self._entries.values():
            if entry.prefix and name.startswith(entry.name):
                return entry
        path = Path(name).expanduser()
        if path.exists():
            for recognizes, entry in self._path_resolvers:
                if recognizes(path):
                    return dataclasses.replace(entry, name=str(path), description=f"{entry.description} {path}")
            raise UnknownModelError(f"{name}: no model family recognizes this file or directory")
        known = ", ".join(self.names())
        prefixes = ", ".join(f"{e.name}<...>" for e in self._entries.values() if e.prefix)
        raise UnknownModelError(
            f"unknown model {name!r}. Known models: {known}"
            + (f"; prefixes: {prefixes}" if prefixes else "")
            + "; or a path to a checkpoint file/directory, or register your own through the "
            f"'{ENTRY_POINT_GROUP}' entry-point group or the pytest_plmtransfer_register_models hook."
        )

    def create(self, name: str, init: str, seed: int | None, options: ModelOptions) -> ModelAdapter:
        entry = self.entry(name)
        if init not in entry.inits:
            raise PlmTransferError(f"model {name!r} does not support init {init!r} (it has {entry.inits})")
        return entry.factory(name, init, seed, options)

    def describe(self, name: str, options: ModelOptions) -> ModelDescription:
        """Layers, width and length limit of ``name`` without building it (when the entry can
        describe itself). Raises ResourceUnavailable when even that needs absent files."""
        entry = self.entry(name)
        if entry.describe is not None:
            return entry.describe(name, options)
        # No describer: build the model once (its first init) to read it, then let it go.
        adapter = entry.factory(name, entry.inits[0], 0 if entry.inits[0] in ("random", "stat") else None, options)
        try:
            return ModelDescription(adapter.num_layers, adapter.embed_dim, adapter.max_residues, None, "built")
        finally:
            del adapter

    def load_entry_points(self) -> None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            ep.load()(self)


def builtin_registry() -> ModelRegistry:
    """Every family module of this package registered, in name order. Modules are imported, not
    their model libraries: those load when a model is built."""
    registry = ModelRegistry()
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        register = getattr(importlib.import_module(f"{__package__}.{module.name}"), "register", None)
        if callable(register):
            register(registry)
    return registry
