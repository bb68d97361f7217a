"""pytest entry point: options, hooks and fixtures. Thin: the logic lives in ``session``.

Each selected (model, task, layer, init[, seed]) becomes one parametrized test of any test
function that asks for the ``plm_layer_case`` fixture (see ``benchmarks/test_layers.py``).
"""

from __future__ import annotations

import uuid

import pytest

from typing import TYPE_CHECKING

from pytest_plmtransfer.errors import ResourceUnavailable
from pytest_plmtransfer.options import OPTIONS, options_from_config

if TYPE_CHECKING:  # the session pulls numpy/pandas; keep plain `pytest` runs elsewhere light
    from pytest_plmtransfer.session import LayerCase, PlmSession

SESSION_KEY = pytest.StashKey["_LazySession"]()


def pytest_addhooks(pluginmanager) -> None:
    from pytest_plmtransfer import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser) -> None:
    group = parser.getgroup("plmtransfer", "protein language model transfer benchmarks")
    for name, help_text, kind in OPTIONS:
        dest = "plm_" + name.replace("-", "_")
        if kind == "flag":
            group.addoption(f"--plm-{name}", action="store_true", default=False, dest=dest, help=help_text)
            parser.addini(dest, help_text, type="bool", default=False)
        else:
            group.addoption(f"--plm-{name}", action="store", default=None, dest=dest, help=help_text)
            parser.addini(dest, help_text, default="")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "plm_layer: a per-layer transfer measurement")
    run_id = getattr(config, "workerinput", {}).get("plm_run_id") or uuid.uuid4().hex[:12]
    config.stash[SESSION_KEY] = _LazySession(config, run_id)


def pytest_configure_node(node) -> None:
    """xdist controller -> workers: one run id for the whole run."""
    node.workerinput["plm_run_id"] = node.config.stash[SESSION_KEY].run_id


class _LazySession:
    """Builds the PlmSession on first use, after conftests had the chance to register models."""

    def __init__(self, config, run_id: str) -> None:
        self.config = config
        self.run_id = run_id
        self._session: "PlmSession | None" = None

    def get(self) -> "PlmSession":
        if self._session is None:
            from pytest_plmtransfer.models.registry import builtin_registry
            from pytest_plmtransfer.session import PlmSession

            registry = builtin_registry()
            registry.load_entry_points()
            self.config.hook.pytest_plmtransfer_register_models(registry=registry)
            self._session = PlmSession(
                options_from_config(self.config),
                registry,
                root=self.config.rootpath,
                run_id=self.run_id,
            )
        return self._session


def _session(config) -> "PlmSession":
    return config.stash[SESSION_KEY].get()


def pytest_generate_tests(metafunc) -> None:
    if "plm_layer_case" in metafunc.fixturenames:
        cases = _session(metafunc.config).layer_cases()
        metafunc.parametrize("plm_layer_case", cases, ids=[c.id for c in cases])


def pytest_collection_finish(session) -> None:
    cases = [
        item.callspec.params["plm_layer_case"]
        for item in session.items
        if hasattr(item, "callspec") and "plm_layer_case" in item.callspec.params
    ]
    if cases:
        _session(session.config).plan(cases)


@pytest.fixture(scope="session")
def plm_session(request) -> "PlmSession":
    return _session(request.config)


@pytest.fixture
def plm_layer_result(request, plm_session: "PlmSession", plm_layer_case: "LayerCase") -> dict:
    """Run one layer case and write its record to the ledger; missing resources skip (or fail)."""
    try:
        record = plm_session.run_layer(plm_layer_case)
    except ResourceUnavailable as exc:
        missing = str(exc)
    else:
        missing = None
    if missing is not None:  # outside the except block: the message alone, no chained traceback
        if plm_session.options.strict:
            pytest.fail(f"{missing} (--plm-strict)", pytrace=False)
        pytest.skip(missing)
    record["test_id"] = request.node.nodeid
    request.config.hook.pytest_plmtransfer_layer_record(record=record, case=plm_layer_case)
    plm_session.write([record])
    return record
