"""pytest entry point: options, hooks and fixtures. Thin: each hook hands over to a stage
(plan/cases.py, run/runner.py, run/recorder.py, run/claims.py, report/).

Each selected (model, task, layer, init[, seed]) becomes one parametrized test of any test
function that asks for the ``plm_layer_case`` fixture (see ``benchmarks/test_layers.py``).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_plmtransfer.infra.errors import PlmTransferError, ResourceUnavailable
from pytest_plmtransfer.options import PlmOptions, add_options, options_from_config
from pytest_plmtransfer.report.summary import BenchmarkOutcomes  # light: no numpy, no pandas

if TYPE_CHECKING:  # the stages pull numpy/pandas; keep plain `pytest` runs elsewhere light
    from pytest_plmtransfer.plan.cases import LayerCase
    from pytest_plmtransfer.run.stages import Stages

STAGES_KEY = pytest.StashKey["_LazyStages"]()
#: every option, parsed and checked once (pytest_configure)
OPTIONS_KEY = pytest.StashKey[PlmOptions]()
#: the items before -k/-m deselected any (for the default selection, see selection.py)
_COLLECTED_KEY = pytest.StashKey[list]()
#: the line that explains the default selection, when it deselected anything
_DEFAULT_LINE_KEY = pytest.StashKey[str]()


def pytest_addhooks(pluginmanager) -> None:
    from pytest_plmtransfer import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser) -> None:
    add_options(parser)


#: whether ./.benchmarks existed before this run (pytest-benchmark creates it on every run)
_BENCHMARKS_DIR_KEY = pytest.StashKey[bool]()


def _benchmark_asked(config) -> bool:
    """pytest-benchmark was asked for something: a --benchmark-* option, or -v."""
    args = [str(a) for a in config.invocation_params.args]
    return config.option.verbose > 0 or any(a.startswith("--benchmark") for a in args)


@pytest.hookimpl(wrapper=True)
def pytest_report_header(config):
    """pytest-benchmark (a dependency, for perf/) prints a long line of its defaults on every run;
    keep it for runs that use it (a --benchmark-* option, or -v)."""
    lines = yield
    if _benchmark_asked(config):
        return lines
    return [line for line in lines if not (isinstance(line, str) and line.startswith("benchmark: "))]


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config) -> None:
    from pytest_plmtransfer.plan.selection import marker_lines

    config.stash[_BENCHMARKS_DIR_KEY] = (Path.cwd() / ".benchmarks").exists()
    for line in marker_lines():
        config.addinivalue_line("markers", line)
    config.stash[_OUTCOMES_KEY] = BenchmarkOutcomes()
    config.pluginmanager.register(config.stash[_OUTCOMES_KEY], "plmtransfer-outcomes")
    try:
        config.stash[OPTIONS_KEY] = options_from_config(config)  # every value checked now: one line, exit 4
        if _dist_group(config) and _is_controller(config):
            from pytest_plmtransfer.plan.xdist import visible_devices

            visible_devices()  # the GPUs the workers will be pinned to
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
    config.stash[STAGES_KEY] = _LazyStages(config, run_id)
    if _is_controller(config):
        _stop_on_sigterm(config)


#: set when SIGTERM (what CI cancellation sends) stopped the run
_SIGTERM_KEY = pytest.StashKey[bool]()


def _stop_on_sigterm(config) -> None:
    """SIGTERM ends the run as Ctrl-C does (pytest's teardown, the ledger's unsaved records kept,
    the summary printed) instead of killing it silently; the summary says what was saved. Only
    where nobody else handles SIGTERM, and only from the main thread (signal's rule)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def stop(signum, frame):
        config.stash[_SIGTERM_KEY] = True
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, stop)
    config.add_cleanup(lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))


def _stdout_is_terminal() -> bool:
    """Whether pytest's output goes to a terminal. Asked in pytest_configure, where pytest's fd
    capture is suspended: the session is built during collection, when fd 1 is a temp file."""
    import sys

    out = sys.__stdout__
    return bool(out is not None and out.isatty())


def _dist_group(config) -> bool:
    return config.stash[OPTIONS_KEY].dist == "group"


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session) -> None:
    """Under xdist the controller never collects: check the ledger and cache here, before any
    worker starts (serial runs check them once the selection is known, in collection_finish)."""
    config = session.config
    if _is_controller(config) and getattr(config.option, "numprocesses", None):
        _preflight(config)


def _preflight(config) -> None:
    from pytest_plmtransfer.run.preflight import PreflightError, check_cache, check_ledger

    lazy = config.stash[STAGES_KEY]
    if lazy.preflight_done:
        return
    lazy.preflight_done = True
    options = config.stash[OPTIONS_KEY]
    try:
        check_ledger(options.ledger)
    except PreflightError as exc:
        raise pytest.UsageError(str(exc)) from None
    notice = check_cache(options.cache_dir)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if notice and reporter is not None:
        reporter.write_line(notice)


def pytest_cmdline_main(config):
    """``--plm-list``: print models, tasks and suites (with local availability) and exit."""
    if not config.getoption("plm_list", default=False):
        return None
    from pytest_plmtransfer.report.listing import render

    config._do_configure()  # conftests' registration hooks are loaded by now; fixtures not needed
    try:
        stages = _stages(config)
        config.get_terminal_writer().line(render(stages.registry, stages.options))
    except PlmTransferError as exc:  # e.g. a bad --plm-shard or model alias: one line, exit 4
        raise pytest.UsageError(str(exc)) from None
    finally:
        config._ensure_unconfigure()
    return 0


def pytest_configure_node(node) -> None:
    """xdist controller -> workers: one run id for the whole run, and each worker's GPU."""
    node.workerinput["plm_run_id"] = node.config.stash[STAGES_KEY].run_id
    device = node.gateway.spec.env.get("CUDA_VISIBLE_DEVICES") if _dist_group(node.config) else None
    if device is not None:
        node.workerinput["plm_cuda_device"] = device


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config, specs) -> None:
    """--plm-dist group: pin worker gwI to the I-th of the controller's GPUs, in the worker's
    environment from its first instruction (before anything can initialize CUDA)."""
    if not _dist_group(config):
        return
    from pytest_plmtransfer.plan.xdist import device_for_worker, visible_devices

    devices = visible_devices()
    for spec in specs:
        device = device_for_worker(spec.id, devices)
        if device is not None:
            spec.env["CUDA_VISIBLE_DEVICES"] = device


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if not _dist_group(config):
        return None
    from pytest_plmtransfer.plan.xdist import make_group_scheduler

    return make_group_scheduler(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """``-n auto --plm-dist group``: one worker per GPU; without GPUs, xdist's CPU count."""
    if not _dist_group(config):
        return None
    from pytest_plmtransfer.plan.xdist import visible_devices

    return len(visible_devices()) or None


class _LazyStages:
    """Builds the stages on first use, after conftests had the chance to register models."""

    def __init__(self, config, run_id: str) -> None:
        self.config = config
        self.run_id = run_id
        self.built: Stages | None = None
        self.preflight_done = False
        #: a bad selection found while parametrizing (unknown model, layer out of range, claims)
        self.config_error: str | None = None
        #: claim kinds this process registered (see _register_claim_kinds)
        self.claim_kinds_added: list[str] = []
        self.interactive = _stdout_is_terminal()

    def get(self) -> Stages:
        if self.built is None:
            from pytest_plmtransfer.options import split_list
            from pytest_plmtransfer.run.stages import build_stages, model_registry

            hook = self.config.hook
            registry = model_registry(lambda registry: hook.pytest_plmtransfer_register_models(registry=registry))
            self._register_claim_kinds()
            workerinput = getattr(self.config, "workerinput", {})
            options = replace(self.config.stash[OPTIONS_KEY])  # build_stages resolves its aliases
            self.built = build_stages(
                options,
                registry,
                ini_models=split_list(self.config.getini("plm_models")),
                root=self.config.rootpath,
                run_id=self.run_id,
                worker=workerinput.get("workerid", "main"),
                cuda_visible_devices=workerinput.get("plm_cuda_device"),
                notify=self._notify,
            )
            self.built.runner.progress = _progress_line(
                self.config, options.progress_mode, interactive=self.interactive
            )
        return self.built

    def _register_claim_kinds(self) -> None:
        """Plugins' and conftests' claim kinds, before the claims file is read; forgotten again
        at unconfigure (the registry is process-wide, and pytester runs share the process)."""
        from pytest_plmtransfer.run.claims import register_plugin_kinds

        self.claim_kinds_added += register_plugin_kinds(self.config.hook)

    def _notify(self, line: str) -> None:
        """A line the user must see now (e.g. waiting for a lock), past pytest's output capture."""
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if capture is None or reporter is None:
            print(line, flush=True)
            return
        with capture.global_and_fixture_disabled():
            if self.config.get_terminal_writer().width_of_current_line:  # e.g. after "[100%]"
                reporter.write_line("")
            reporter.write_line(line)


def _progress_line(config, mode: str, *, interactive: bool):
    """The progress line writing past capture to the terminal, or None when it is off."""
    import sys

    from pytest_plmtransfer.run.progress import ProgressLine, UncapturedStream, progress_enabled

    out = sys.__stdout__
    if out is None or not progress_enabled(
        mode, interactive=interactive, verbosity=config.option.verbose, worker=not _is_controller(config)
    ):
        return None
    capman = config.pluginmanager.getplugin("capturemanager")
    suspend = capman.global_and_fixture_disabled if capman is not None else contextlib.nullcontext

    # Where pytest's writer is in the middle of its `file.py ...` line, the bar goes on the line
    # below. On a terminal that line is left behind the writer's back (so it still knows its
    # column) and, once the bar is erased, the cursor goes back up to where pytest's line ended:
    # its dots continue there. Elsewhere (--plm-progress into a file), a plain new line.
    column: list[int] = []

    def below_pytest_line() -> None:
        writer = config.get_terminal_writer()
        column[:] = [writer.width_of_current_line]
        if column[0] and interactive:
            out.write("\n")
        elif column[0]:
            writer.line("")

    def back_to_pytest_line() -> None:
        if column and column[0] and interactive:
            out.write(f"\r\x1b[1A\x1b[{column[0]}C")

    return ProgressLine(lambda: UncapturedStream(out, suspend, below_pytest_line, back_to_pytest_line))


def _stages(config) -> Stages:
    return config.stash[STAGES_KEY].get()


def _marks(test_kind: str, task: str, init: str) -> list:
    from pytest_plmtransfer.plan.selection import marker_names

    return [getattr(pytest.mark, name) for name in marker_names(test_kind, task, init)]


def pytest_generate_tests(metafunc) -> None:
    # A bad selection (unknown model, --plm-layers out of a model's range, a claims file naming
    # unknown ids, a refused checkpoint) becomes one placeholder test; collection_finish turns it
    # into a usage error (one line, exit 4). xdist workers cannot stop the run that way: there the
    # placeholder fails with the one line.
    lazy = metafunc.config.stash[STAGES_KEY]
    for name, build in (("plm_layer_case", _layer_params), ("plm_claim_case", _claim_params)):
        if name not in metafunc.fixturenames:
            continue
        try:
            params = build(metafunc.config)
        except PlmTransferError as exc:
            if isinstance(exc, ResourceUnavailable):
                raise
            lazy.config_error = lazy.config_error or str(exc)
            from pytest_plmtransfer.plan.cases import BadSelection

            params = [pytest.param(BadSelection(str(exc)), id="plm-config-error")]
        metafunc.parametrize(name, params)


def _layer_params(config) -> list:
    cases = _stages(config).planner.layer_cases()
    return [pytest.param(c, id=c.id, marks=_marks("plm_layer", c.task, c.init)) for c in cases]


def _claim_params(config) -> list:
    claims = _stages(config).planner.claim_cases()
    return [
        pytest.param(c, id=f"{c.name}-{c.param_id}", marks=c.pytest_marks() + _marks("plm_claim", c.task, c.init))
        for c in claims
    ]


def _params(items, name: str) -> list:
    from pytest_plmtransfer.plan.cases import case_of

    return [c for c in (case_of(item, name) for item in items) if c is not None]


@pytest.hookimpl(hookwrapper=True)
def pytest_collection_modifyitems(config, items):
    """Around -k/-m (pytest's own hooks): remember every benchmark case before, then apply the
    default selection, then order (and shard) what is left."""
    params = [getattr(getattr(i, "callspec", None), "params", {}) for i in items]
    if any("plm_layer_case" in p or "plm_claim_case" in p for p in params):  # a benchmark suite
        from pytest_plmtransfer.plan.selection import selectable

        config.stash[_COLLECTED_KEY] = [s for s in map(selectable, items) if s is not None]
    yield
    _default_selection_and_order(config, items)


def _default_selection_and_order(config, items) -> None:
    lazy = config.stash.get(STAGES_KEY, None)
    if lazy is None or lazy.built is None:  # no benchmark suite was collected
        return
    from pytest_plmtransfer.plan.selection import default_deselection
    from pytest_plmtransfer.plan.sharding import order_and_shard

    expression_given = bool(config.option.keyword or config.option.markexpr)
    collected = config.stash.get(_COLLECTED_KEY, [])
    dropped, line = default_deselection(collected, items, lazy.built.options, expression_given=expression_given)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = {id(i) for i in dropped}
        items[:] = [i for i in items if id(i) not in gone]
        config.stash[_DEFAULT_LINE_KEY] = line
    if not _params(items, "plm_layer_case") and not _params(items, "plm_claim_case"):
        return
    # Each (model, init, seed) group's tests together (one model resident at a time), claims
    # last (they read the layer results); under --plm-shard, only this shard's groups.
    stages = lazy.built
    kept, deselected, plan, note = order_and_shard(items, stages.planner.describe, stages.shard)
    stages.recorder.set_plan(plan)
    stages.notes += [note] if note else []
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    items[:] = kept


def pytest_report_collectionfinish(config, start_path, items):
    lines = [config.stash.get(_DEFAULT_LINE_KEY, None)]
    lazy = config.stash.get(STAGES_KEY, None)
    if lazy is not None and lazy.built is not None:  # a benchmark suite was collected
        lines.append(f"plmtransfer protocol: {lazy.built.protocol.name} (docs/protocols.md)")
    return [line for line in lines if line]


def pytest_collection_finish(session) -> None:
    lazy = session.config.stash[STAGES_KEY]
    if lazy.config_error and _is_controller(session.config):
        raise pytest.UsageError(lazy.config_error)
    layers = _params(session.items, "plm_layer_case")
    claims = _params(session.items, "plm_claim_case")
    if layers or claims:
        if _is_controller(session.config):
            _preflight(session.config)  # before anything is computed
        stages = _stages(session.config)
        stages.runner.planned = stages.planner.planned_layers(layers, claims)


@pytest.fixture(scope="session")
def plm_stages(request) -> Stages:
    """This process's stages (planner, runner, recorder): for tests that need more than a case."""
    return _stages(request.config)


@pytest.fixture
def plm_layer_result(request, plm_stages: Stages, plm_layer_case: LayerCase) -> dict:
    """Run one layer case and write its record to the ledger; missing resources skip (or fail)."""
    runner, recorder = plm_stages.runner, plm_stages.recorder
    record = _run_case(
        plm_stages,
        plm_layer_case,
        lambda: recorder.layer_record(runner.run(plm_layer_case), test_id=request.node.nodeid),
    )
    request.config.hook.pytest_plmtransfer_layer_record(record=record, case=plm_layer_case)
    _write(plm_stages, record)
    return record


def _write(stages: Stages, record: dict) -> None:
    failure = None
    try:
        stages.recorder.write([record])
    except PlmTransferError as exc:  # the ledger's disk is full: the record is kept, see Recorder.write
        failure = str(exc)
    if failure is not None:
        pytest.fail(failure, pytrace=False)


def _run_case(stages: Stages, case, call):
    """``call()`` for a layer or claim case: missing data/weights skip (fail under --plm-strict);
    errors this package raises on purpose (bad data, a full disk, a lock given up on) and a bad
    selection fail the test with their one-line message, no traceback."""
    from pytest_plmtransfer.plan.cases import BadSelection

    if isinstance(case, BadSelection):
        pytest.fail(case.message, pytrace=False)
    missing = failure = None
    try:
        return call()
    except ResourceUnavailable as exc:
        missing = str(exc)
    except PlmTransferError as exc:
        failure = str(exc)
    # outside the except block: the message alone, no chained traceback
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    if stages.options.strict:
        pytest.fail(f"{missing} (--plm-strict)", pytrace=False)
    pytest.skip(str(missing))


@pytest.fixture
def plm_embeddings(plm_stages: Stages, plm_layer_case: LayerCase):
    """The current layer case's task data and cached, memory-mapped per-layer embeddings
    (a ``CaseEmbeddings``): the entry the layer tests use, so no second forward pass."""
    return _run_case(plm_stages, plm_layer_case, lambda: plm_stages.runner.case_embeddings(plm_layer_case))


@pytest.fixture(scope="session")
def plm_embeddings_of(plm_stages: Stages):
    """``plm_embeddings_of(model, task, init=None, seed=None, layers=None)``: the embeddings of
    any (model, init, seed) on a task, all layers by default (a ``CaseEmbeddings``). ``init``
    defaults to the model's first selected init (``none`` for one-hot), ``seed`` to the first
    ``--plm-seeds`` for random/stat."""

    def embeddings_of(model: str, task: str, *, init: str | None = None, seed: int | None = None, layers=None):
        pairs = plm_stages.planner.inits_for(model)
        init = init or (pairs[0][0] if pairs else "pretrained")
        if seed is None and init in ("random", "stat"):
            seed = plm_stages.options.seeds[0]
        return plm_stages.runner.embeddings(model, task, init=init, seed=seed, layers=layers)

    return embeddings_of


@pytest.fixture
def plm_task(plm_embeddings):
    """The current layer case's task (``TaskData``: ids, sequences, targets, splits, spec)."""
    return plm_embeddings.data


@pytest.fixture
def plm_record(request, plm_stages: Stages, plm_layer_case: LayerCase):
    """``plm_record(metrics, head="mlp", settings=None, fit_seconds=0.0, predictions=None)`` writes a
    ledger record of your own head on the current layer case (reported as ``<model>+<head>``) and
    returns it; its test ``predictions`` give it a bootstrap interval like the probe's."""

    def write(
        metrics: dict, head: str = "mlp", settings: dict | None = None, fit_seconds: float = 0.0, predictions=None
    ) -> dict:
        result = plm_stages.runner.head_result(
            plm_layer_case, metrics, head, settings=settings, fit_seconds=fit_seconds, predictions=predictions
        )
        record = plm_stages.recorder.layer_record(
            result, base_model=plm_layer_case.model, head_name=head, test_id=request.node.nodeid
        )
        _write(plm_stages, record)
        return record

    return write


@pytest.fixture
def plm_claim_outcome(request, plm_stages: Stages, plm_claim_case):
    """Evaluate one claim on the per-layer results and write its outcome to the ledger.

    Missing inputs skip (fail under --plm-strict or --plm-gate). Returns the ClaimOutcome; the
    test asserts ``outcome.passed``; expected failures are xfail marks (strict per the claim).
    """
    from pytest_plmtransfer.plan.cases import BadSelection
    from pytest_plmtransfer.run.claims import run_claim, skip_reason

    if isinstance(plm_claim_case, BadSelection):
        pytest.fail(plm_claim_case.message, pytrace=False)
    options = plm_stages.options
    reason = skip_reason(plm_claim_case, options)
    if reason:
        pytest.skip(reason)
    strict = options.strict or options.gate
    s = plm_stages
    # e.g. a full cache while computing a layer the claim needs: one line, as for the layer tests
    outcome, record = _run_case(
        s,
        plm_claim_case,
        lambda: run_claim(plm_claim_case, s.planner, s.runner, s.recorder, s.baselines(), strict=strict),
    )
    record["test_id"] = request.node.nodeid
    _write(plm_stages, record)
    request.node.stash[_CLAIM_MESSAGE_KEY] = outcome.message
    if outcome.missing:
        if strict:
            pytest.fail(f"{outcome.message} (--plm-strict/--plm-gate)", pytrace=False)
        pytest.skip(outcome.message)
    return outcome


_CLAIM_MESSAGE_KEY = pytest.StashKey[str]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """A strict expected failure that held: say which claim held where, with its numbers, and
    how to declare it (pytest's own line repeats only the declared reason)."""
    report = yield
    longrepr = report.longrepr
    if report.failed and isinstance(longrepr, str) and longrepr.startswith("[XPASS(strict)]"):
        message = item.stash.get(_CLAIM_MESSAGE_KEY, None)  # set by a claim case only
        if message is not None:
            report.longrepr = item.callspec.params["plm_claim_case"].unexpected_pass(message)
    return report


_OUTCOMES_KEY = pytest.StashKey[BenchmarkOutcomes]()


def pytest_unconfigure(config) -> None:
    if config.stash.get(_BENCHMARKS_DIR_KEY, True) is False:
        # pytest-benchmark made an empty ./.benchmarks it saved nothing into: leave no trace
        with contextlib.suppress(OSError):
            (Path.cwd() / ".benchmarks").rmdir()
    lazy = config.stash.get(STAGES_KEY, None)
    if lazy is not None and lazy.claim_kinds_added:
        from pytest_plmtransfer.run.claims import unregister_kind

        for name in lazy.claim_kinds_added:
            unregister_kind(name)


def _is_controller(config) -> bool:
    return not hasattr(config, "workerinput")


def pytest_sessionfinish(session, exitstatus) -> None:
    """Every process saves the records its ledger refused; the controller (which sees every
    outcome, under xdist too) judges an empty run and updates baselines."""
    config = session.config
    lazy = config.stash.get(STAGES_KEY, None)
    if lazy is None or lazy.built is None:
        return
    unsaved = lazy.built.recorder.save_unsaved()
    if unsaved is not None:
        lazy._notify(unsaved)
        if session.exitstatus == pytest.ExitCode.OK:  # records not in the ledger: never a green run
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if not _is_controller(config):
        return
    outcomes = config.stash[_OUTCOMES_KEY]
    if session.exitstatus == pytest.ExitCode.OK and outcomes.empty_failure_for(lazy.built.options):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if lazy.built.options.update_baselines:
        from pytest_plmtransfer.run.stages import update_baselines

        lazy.built.notes += update_baselines(lazy.built)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    lazy = config.stash.get(STAGES_KEY, None)
    if lazy is None or not _is_controller(config):
        return
    from pytest_plmtransfer.report.summary import end_of_run_lines

    stopped = config.stash.get(_SIGTERM_KEY, False)
    started = lazy.built is not None
    try:
        stages = lazy.get() if (lazy.built is not None or _wants_report(config)) else None
    except PlmTransferError:  # a bad selection (e.g. a model alias): already reported in its one line
        stages = None
    cwd = Path(str(config.invocation_params.dir))
    for style, line in end_of_run_lines(config.stash[_OUTCOMES_KEY], stages, stopped=stopped, started=started, cwd=cwd):
        if style == "sep":
            terminalreporter.write_sep("=", line)
        else:
            terminalreporter.write_line(line, **({style: True} if style else {}))


def _wants_report(config) -> bool:
    options = config.stash[OPTIONS_KEY]
    return bool(options.report or options.report_dir or options.update_baselines)
