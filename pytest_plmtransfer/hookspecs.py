"""Hooks other packages and conftests can implement (registered with ``pytest_addhooks``)."""

from __future__ import annotations

import pytest


@pytest.hookspec
def pytest_plmtransfer_register_models(registry) -> None:
    """Register models: call ``registry.register(name, factory, inits=..., needs_weights=...)``.

    ``factory(name, init, seed, options)`` returns a
    :class:`pytest_plmtransfer.models.base.ModelAdapter`. Implement this in a ``conftest.py`` or
    a plugin; installed packages can instead use the ``plmtransfer.models`` entry-point group.
    """


@pytest.hookspec
def pytest_plmtransfer_layer_record(record: dict, case) -> None:
    """Called with each layer record before it is written to the ledger; may add fields."""


@pytest.hookspec
def pytest_plmtransfer_claim_kinds() -> list:  # type: ignore[empty-body]  # a hookspec has no body
    """Return claim kinds (subclasses of :class:`pytest_plmtransfer.judge.claims.kinds.ClaimKind`) that
    claims files may name; see the README section "Writing a claim kind".

    Called once per session, before the claims file is read. Implement this in a ``conftest.py``
    or a plugin; installed packages can instead use the ``plmtransfer.claim_kinds`` entry-point
    group (each entry point names one class).
    """
