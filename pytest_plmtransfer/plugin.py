"""pytest entry point: options, hooks and fixtures. Thin: the logic lives in ``session``.

Each selected (model, task, layer, init[, seed]) becomes one parametrized test of any test
function that asks for the ``plm_layer_case`` fixture (see ``benchmarks/test_layers.py``).
"""

from __future__ import annotations

import os
import uuid

import pytest

from typing import TYPE_CHECKING

from pytest_plmtransfer.errors import PlmTransferError, ResourceUnavailable
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


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "plm_layer: a per-layer transfer measurement")
    try:
        options_from_config(config)  # every option value checked now: one line, exit code 4
    except PlmTransferError as exc:
        raise pytest.UsageError(str(exc)) from None
    workerinput = getattr(config, "workerinput", {})
    device = workerinput.get("plm_cuda_device")
    if device is not None:  # normally already in the environment (XSpec env); keep them equal
        os.environ["CUDA_VISIBLE_DEVICES"] = device
    run_id = (
        workerinput.get("plm_run_id")
        or config.getoption("plm_run_id", default=None)
        or config.getini("plm_run_id")
        or uuid.uuid4().hex[:12]
    )
    config.stash[SESSION_KEY] = _LazySession(config, run_id)


def _dist_group(config) -> bool:
    return (config.getoption("plm_dist", default=None) or config.getini("plm_dist")) == "group"


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session) -> None:
    """Under xdist the controller never collects: check the ledger and cache here, before any
    worker starts (serial runs check them once the selection is known, in collection_finish)."""
    config = session.config
    if _is_controller(config) and getattr(config.option, "numprocesses", None):
        _preflight(config)


def _preflight(config) -> None:
    from pytest_plmtransfer.preflight import PreflightError, check_cache, check_ledger

    lazy = config.stash[SESSION_KEY]
    if lazy.preflight_done:
        return
    lazy.preflight_done = True
    options = options_from_config(config)
    try:
        check_ledger(options.ledger)
    except PreflightError as exc:
        raise pytest.UsageError(str(exc)) from None
    from pytest_plmtransfer.tasks.resolve import default_cache_dir

    notice = check_cache(options.cache_dir or default_cache_dir())
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if notice and reporter is not None:
        reporter.write_line(notice)


def pytest_configure_node(node) -> None:
    """xdist controller -> workers: one run id for the whole run, and each worker's GPU."""
    node.workerinput["plm_run_id"] = node.config.stash[SESSION_KEY].run_id
    device = node.gateway.spec.env.get("CUDA_VISIBLE_DEVICES") if _dist_group(node.config) else None
    if device is not None:
        node.workerinput["plm_cuda_device"] = device


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config, specs) -> None:
    """--plm-dist group: pin worker gwI to the I-th of the controller's GPUs, in the worker's
    environment from its first instruction (before anything can initialize CUDA)."""
    if not _dist_group(config):
        return
    from pytest_plmtransfer.xdist_scheduling import device_for_worker, visible_devices

    devices = visible_devices()
    for spec in specs:
        device = device_for_worker(spec.id, devices)
        if device is not None:
            spec.env["CUDA_VISIBLE_DEVICES"] = device


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if not _dist_group(config):
        return None
    from pytest_plmtransfer.xdist_scheduling import make_group_scheduler

    return make_group_scheduler(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """``-n auto --plm-dist group``: one worker per GPU; without GPUs, xdist's CPU count."""
    if not _dist_group(config):
        return None
    from pytest_plmtransfer.xdist_scheduling import visible_devices

    return len(visible_devices()) or None


class _LazySession:
    """Builds the PlmSession on first use, after conftests had the chance to register models."""

    def __init__(self, config, run_id: str) -> None:
        self.config = config
        self.run_id = run_id
        self._session: "PlmSession | None" = None
        self.preflight_done = False
        #: a bad selection found while parametrizing (unknown model, layer out of range, claims)
        self.config_error: str | None = None

    def get(self) -> "PlmSession":
        if self._session is None:
            from pytest_plmtransfer.models.registry import builtin_registry
            from pytest_plmtransfer.session import PlmSession

            registry = builtin_registry()
            registry.load_entry_points()
            self.config.hook.pytest_plmtransfer_register_models(registry=registry)
            workerinput = getattr(self.config, "workerinput", {})
            self._session = PlmSession(
                options_from_config(self.config),
                registry,
                root=self.config.rootpath,
                run_id=self.run_id,
                worker=workerinput.get("workerid", "main"),
                cuda_visible_devices=workerinput.get("plm_cuda_device"),
            )
            self._session.notify = self._notify
        return self._session

    def _notify(self, line: str) -> None:
        """A line the user must see now (e.g. waiting for a lock), past pytest's output capture."""
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if capture is None or reporter is None:
            print(line, flush=True)
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)


def _session(config) -> "PlmSession":
    return config.stash[SESSION_KEY].get()


class _ConfigProblem(str):
    """Stands in for the cases when the selection itself is bad (see pytest_generate_tests)."""


def pytest_generate_tests(metafunc) -> None:
    # A bad selection (unknown model, --plm-layers out of a model's range, a claims file naming
    # unknown ids, a refused checkpoint) becomes one placeholder test; collection_finish turns it
    # into a usage error (one line, exit 4). xdist workers cannot stop the run that way: there the
    # placeholder fails with the one line.
    lazy = metafunc.config.stash[SESSION_KEY]
    for name, build in (("plm_layer_case", _layer_params), ("plm_claim_case", _claim_params)):
        if name not in metafunc.fixturenames:
            continue
        try:
            params = build(metafunc.config)
        except PlmTransferError as exc:
            if isinstance(exc, ResourceUnavailable):
                raise
            lazy.config_error = lazy.config_error or str(exc)
            params = [pytest.param(_ConfigProblem(str(exc)), id="plm-config-error")]
        metafunc.parametrize(name, params)


def _layer_params(config) -> list:
    return [pytest.param(c, id=c.id) for c in _session(config).layer_cases()]


def _claim_params(config) -> list:
    claims = _session(config).claim_cases()
    return [pytest.param(c, id=f"{c.name}-{c.param_id}", marks=c.pytest_marks()) for c in claims]


def _params(items, name: str) -> list:
    params = [i.callspec.params[name] for i in items if hasattr(i, "callspec") and name in i.callspec.params]
    # an empty parametrization leaves pytest's NOTSET placeholder; a bad selection, _ConfigProblem
    return [p for p in params if hasattr(p, "embedding_request") or hasattr(p, "kind")]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items) -> None:
    """Order: each (model, init, seed) group's tests together (one model resident at a time),
    claims last (they read the layer results). Under --plm-shard, keep this shard's groups."""
    from pytest_plmtransfer.sharding import order_and_shard

    layers = _params(items, "plm_layer_case")
    if not layers and not _params(items, "plm_claim_case"):
        return
    plm = _session(config)
    kept, deselected = order_and_shard(items, plm)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    items[:] = kept


def pytest_collection_finish(session) -> None:
    lazy = session.config.stash[SESSION_KEY]
    if lazy.config_error and _is_controller(session.config):
        raise pytest.UsageError(lazy.config_error)
    layers = _params(session.items, "plm_layer_case")
    claims = _params(session.items, "plm_claim_case")
    if layers or claims:
        if _is_controller(session.config):
            _preflight(session.config)  # before anything is computed
        _session(session.config).plan(layers, claims)


@pytest.fixture(scope="session")
def plm_session(request) -> "PlmSession":
    return _session(request.config)


@pytest.fixture
def plm_layer_result(request, plm_session: "PlmSession", plm_layer_case: "LayerCase") -> dict:
    """Run one layer case and write its record to the ledger; missing resources skip (or fail).

    Errors this package raises on purpose (bad data, a full disk, a lock given up on) fail the
    test with their one-line message, no traceback."""
    if isinstance(plm_layer_case, _ConfigProblem):
        pytest.fail(str(plm_layer_case), pytrace=False)
    missing = failure = None
    try:
        record = plm_session.run_layer(plm_layer_case)
    except ResourceUnavailable as exc:
        missing = str(exc)
    except PlmTransferError as exc:
        failure = str(exc)
    if failure is not None:  # outside the except block: the message alone, no chained traceback
        pytest.fail(failure, pytrace=False)
    if missing is not None:
        if plm_session.options.strict:
            pytest.fail(f"{missing} (--plm-strict)", pytrace=False)
        pytest.skip(missing)
    record["test_id"] = request.node.nodeid
    request.config.hook.pytest_plmtransfer_layer_record(record=record, case=plm_layer_case)
    _write(plm_session, record)
    return record


def _write(plm_session: "PlmSession", record: dict) -> None:
    failure = None
    try:
        plm_session.write([record])
    except PlmTransferError as exc:  # the ledger's disk is full: the record is kept, see write()
        failure = str(exc)
    if failure is not None:
        pytest.fail(failure, pytrace=False)


@pytest.fixture
def plm_claim_outcome(request, plm_session: "PlmSession", plm_claim_case):
    """Evaluate one claim on the session's per-layer results and write its outcome to the ledger.

    Missing inputs skip (fail under --plm-strict or --plm-gate). Returns the ClaimOutcome; the
    test asserts ``outcome.passed``; expected failures are xfail marks (strict per the claim).
    """
    if isinstance(plm_claim_case, _ConfigProblem):
        pytest.fail(str(plm_claim_case), pytrace=False)
    options = plm_session.options
    if plm_claim_case.kind == "no_regression" and options.update_baselines:
        pytest.skip("--plm-update-baselines: this run rewrites the baselines it would compare with")
    strict = options.strict or options.gate
    outcome, record = plm_session.evaluate_claim(plm_claim_case, strict=strict)
    record["test_id"] = request.node.nodeid
    _write(plm_session, record)
    if outcome.missing:
        if strict:
            pytest.fail(f"{outcome.message} (--plm-strict/--plm-gate)", pytrace=False)
        pytest.skip(outcome.message)
    return outcome


def _is_controller(config) -> bool:
    return not hasattr(config, "workerinput")


def pytest_sessionfinish(session, exitstatus) -> None:
    """On the controller only (xdist workers write records; the controller sees them all)."""
    config = session.config
    lazy = config.stash.get(SESSION_KEY, None)
    if lazy is not None and lazy._session is not None:  # every process, xdist workers included
        saved = lazy._session.save_unsaved()
        if saved is not None:
            lazy._notify(f"plmtransfer: the ledger {lazy._session.ledger.path} could not be written; "
                         f"this run's unsaved records are in {saved}")
    if lazy is None or lazy._session is None or not _is_controller(config):
        return
    plm = lazy._session
    if plm.options.update_baselines:
        from pytest_plmtransfer.ledger import records_to_frame

        layer_records = (
            plm.ledger_layer_records()
            if plm.options.from_ledger is not None
            else plm.ledger.records(run_id=plm.run_id, kind="layer")
        )
        if layer_records:
            written = plm.baseline_store().update_from(records_to_frame(layer_records))
            plm.notes.append(f"--plm-update-baselines: wrote {len(written)} baseline file(s) under {plm.options.baselines_dir}")


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    lazy = config.stash.get(SESSION_KEY, None)
    if lazy is None or not _is_controller(config):
        return
    plm = lazy.get() if (lazy._session is not None or _wants_report(config)) else None
    if plm is None:
        return
    for note in plm.notes:
        terminalreporter.write_line(note)
    if not (plm.options.report or plm.options.report_dir):
        return
    from pytest_plmtransfer.ledger import records_to_frame
    from pytest_plmtransfer.report import render_text, write_report

    layer_frame = records_to_frame(plm.ledger.records(run_id=plm.run_id, kind="layer"))
    claim_records = plm.ledger.records(run_id=plm.run_id, kind="claim")
    if layer_frame.empty:
        terminalreporter.write_line("plmtransfer: no layer results in this run; nothing to report")
        return
    terminalreporter.write_sep("=", "plmtransfer report")
    if plm.options.report:
        terminalreporter.write_line(render_text(layer_frame, claim_records))
    if plm.options.report_dir:
        written = write_report(layer_frame, claim_records, plm.options.report_dir)
        terminalreporter.write_line(f"report written to {plm.options.report_dir}: {written}")
    if plm.options.report:
        # a section of its own: timings change from run to run, the results above do not
        from pytest_plmtransfer.timing import render_timing_text

        timing = render_timing_text(plm.ledger.records(run_id=plm.run_id, kind="layer"))
        if timing:
            terminalreporter.write_sep("=", "plmtransfer time per model")
            terminalreporter.write_line(timing)


def _wants_report(config) -> bool:
    return bool(config.getoption("plm_report") or config.getoption("plm_report_dir") or config.getoption("plm_update_baselines"))
