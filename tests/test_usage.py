"""Plain-Python parts of the usage features: default selection, summaries, identity hashing,
layered claims, the scaffold, aliases, README options table."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest

from pytest_plmtransfer.infra.errors import PlmTransferError
from pytest_plmtransfer.infra.identity import (
    IdentityWarning,
    ensure_content_identity,
    has_content_hash,
    state_dict_sha256,
)
from pytest_plmtransfer.judge.baselines import BaselineStore, stable_model_key
from pytest_plmtransfer.judge.claims.spec import ClaimsError
from pytest_plmtransfer.judge.defaults import DEFAULT_BASELINES, LayeredBaselineStore, load_effective_claims
from pytest_plmtransfer.models.aliases import apply_aliases
from pytest_plmtransfer.models.base import ModelAdapter
from pytest_plmtransfer.models.registry import ModelRegistry
from pytest_plmtransfer.options import OPTIONS, benchmarks_command
from pytest_plmtransfer.plan.selection import Selectable, chooses_tasks, default_keep, marker_names
from pytest_plmtransfer.report.scaffold import claims_document, next_steps, scaffold
from pytest_plmtransfer.report.summary import report_written_lines, skipped_explanation
from pytest_plmtransfer.run.progress import progress_enabled

REPO = Path(__file__).parents[1]
TASKS = ["gb1_sampled", "scl_balanced", "ss3"]


def _cases(tasks=TASKS, layers=(0, 1)):
    return [Selectable(("test_layer", "m", "pretrained", None, layer), t) for t in tasks for layer in layers]


# ------------------------------------------------------------------------- default selection
def test_an_expression_that_chooses_tasks_lifts_the_default():
    full = _cases()
    scl_only = [c for c in full if c.task == "scl_balanced"]  # what -k scl leaves
    assert chooses_tasks(full, scl_only)
    assert default_keep(full, scl_only, ["gb1_sampled"], tasks_chosen=False, expression_given=True) == [True, True]


def test_an_expression_on_other_axes_keeps_the_default_tasks():
    full = _cases()
    layer1 = [c for c in full if c.group[-1] == 1]  # what -k L01 leaves: every task, one layer
    assert not chooses_tasks(full, layer1)
    keep = default_keep(full, layer1, ["gb1_sampled"], tasks_chosen=False, expression_given=True)
    assert [c.task for c, k in zip(layer1, keep) if k] == ["gb1_sampled"]
    # no expression: the default; --plm-tasks / --plm-suite: everything collected
    assert sum(default_keep(full, full, ["gb1_sampled"], tasks_chosen=False, expression_given=False)) == 2
    assert all(default_keep(full, full, ["gb1_sampled"], tasks_chosen=True, expression_given=False))


def test_markers_of_a_case():
    assert marker_names("plm_layer", "ss3", "random") == ["plm_layer", "ss3", "per_residue", "random"]
    assert marker_names("plm_claim", "bind_one_vs_sn", "pretrained") == [
        "plm_claim",
        "bind",
        "per_residue",
        "pretrained",
    ]
    assert marker_names("plm_layer", "scl_balanced", "none") == ["plm_layer", "scl", "classification"]


# ------------------------------------------------------------------------- summaries
def test_skipped_explanation_groups_reasons_and_says_what_to_pass():
    reasons = [
        "FLIP archive splits/gb1/splits.zip (task gb1_sampled) is not available: no local copy. To fix, download X",
        "FLIP archive splits/gb1/splits.zip (task gb1_low_vs_high) is not available: no local copy. To fix, download X",
        "esm2_t6_8M_UR50D.pt: checkpoint not found. Put it in Y",
    ]
    text = skipped_explanation(reasons, others=0)
    assert "all 3 benchmark test(s) skipped" in text
    assert "2 x FLIP archive splits/gb1/splits.zip is not available: no local copy" in text
    assert "--plm-data-dir" in text and "--plm-weights-dir" in text and "--plm-strict" in text
    assert "the first in full:" in text and "To fix, download X" in text
    # some skipped, some measured: the same reasons, counted against the whole
    some = skipped_explanation(reasons, others=5)
    assert some.startswith("plmtransfer: 3 of 8 benchmark test(s) skipped. Why:")
    assert "2 x FLIP archive splits/gb1/splits.zip is not available" in some and "--plm-weights-dir" in some
    assert skipped_explanation([], others=3) is None


def test_report_written_lines_are_relative_paths_not_a_dict(tmp_path):
    out = tmp_path / "out"
    lines = report_written_lines(
        {"markdown": out / "report.md", "csv": out / "results.csv", "png": {"t1": out / "a.png", "t2": out / "b.png"}},
        out,
        tmp_path,
    )
    assert lines == [
        "plmtransfer: report written to out/",
        "  markdown: out/report.md",
        "  csv: out/results.csv",
        "  png: out/a.png, out/b.png",
    ]


def test_progress_is_on_only_where_it_can_be_seen():
    assert progress_enabled("auto", interactive=True, verbosity=0, worker=False, env={})
    assert not progress_enabled("auto", interactive=True, verbosity=-1, worker=False, env={})  # -q
    assert not progress_enabled("auto", interactive=True, verbosity=0, worker=False, env={"CI": "true"})
    assert not progress_enabled("auto", interactive=False, verbosity=0, worker=False, env={})
    assert not progress_enabled("auto", interactive=True, verbosity=0, worker=True, env={})
    assert progress_enabled("on", interactive=False, verbosity=-1, worker=False, env={"CI": "1"})
    assert not progress_enabled("off", interactive=True, verbosity=0, worker=False, env={})


# ------------------------------------------------------------------------- identity
def test_has_content_hash():
    assert not has_content_hash({"model": "m", "weights": "v1", "seed": 0})
    assert has_content_hash({"model": "m", "weights": {"sha256": "ab"}})
    assert has_content_hash({"weights": "sha256:" + "0" * 64})
    assert has_content_hash({"weights": "antiberty==0.1.3:sha256:" + "0" * 64}) is False  # not whole
    assert has_content_hash({"weights_checksum": "x"})


class _NumpyModel(ModelAdapter):
    name, num_layers, embed_dim = "numpy_model", 1, 2

    def identity(self):
        return {"model": self.name, "weights": "v1"}

    def embed(self, sequences, layers, *, per_residue):  # pragma: no cover - not called
        return iter(())


def test_torch_weights_are_hashed_into_a_user_identity_and_a_change_changes_it():
    torch = pytest.importorskip("torch")

    class TorchModel(_NumpyModel):
        def __init__(self, scale):
            torch.manual_seed(0)
            self.net = torch.nn.Linear(3, 2)
            with torch.no_grad():
                self.net.weight.mul_(scale)

    a, b, c = TorchModel(1.0), TorchModel(1.0), TorchModel(1.001)
    for m in (a, b, c):
        assert ensure_content_identity(m) is not None
    assert a.identity()["weights_sha256"] == b.identity()["weights_sha256"] != c.identity()["weights_sha256"]
    assert a.identity()["weights"] == "v1"  # the user's own fields stay
    assert state_dict_sha256(a.net) != state_dict_sha256(torch.nn.Linear(3, 2))


def test_an_identity_without_content_hash_warns():
    with pytest.warns(IdentityWarning, match="no content hash"):
        assert ensure_content_identity(_NumpyModel()) is None


def test_identities_that_hash_their_weights_are_left_alone():
    class Hashed(_NumpyModel):
        def identity(self):
            return {"model": self.name, "weights_sha256": "ab" * 32}

    model = Hashed()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ensure_content_identity(model) is None
    assert "identity" not in vars(model)


# ------------------------------------------------------------------------- layered baselines
def _write_claims(path: Path, doc: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_claims_extend_the_shipped_defaults_and_override_by_name(tmp_path):
    shipped = load_effective_claims(tmp_path / "none" / "claims.json")
    names = [c.name for c in shipped]
    assert {"beats_onehot", "no_regression", "matches_paper"} <= set(names)
    own = _write_claims(
        tmp_path / "baselines" / "claims.json",
        {
            "format": "plmtransfer-claims/1",
            "extends": "default",
            "claims": [
                {"name": "beats_onehot", "kind": "beats_onehot", "models": "my_plm", "params": {"margin": 0.1}},
                {"name": "mine", "kind": "saturates_by", "params": {"layer": 1}},
            ],
        },
    )
    merged = load_effective_claims(own)
    by_name = {c.name: c for c in merged}
    assert [c.name for c in merged].count("beats_onehot") == 1
    assert by_name["beats_onehot"].models == ("my_plm",) and by_name["beats_onehot"].params["margin"] == 0.1
    assert "mine" in by_name and "no_regression" in by_name
    # without "extends": only the user's claims
    doc = json.loads(own.read_text())
    del doc["extends"]
    own.write_text(json.dumps(doc))
    assert [c.name for c in load_effective_claims(own)] == ["beats_onehot", "mine"]
    doc["extends"] = "other"
    own.write_text(json.dumps(doc))
    with pytest.raises(ClaimsError, match="'extends'"):
        load_effective_claims(own)


def test_an_expected_failure_is_one_entry_naming_the_shipped_claim(tmp_path):
    shipped = {c.name: c for c in load_effective_claims(tmp_path / "none" / "claims.json")}
    xfail = {"models": "my_plm", "tasks": ["gb1_low_vs_high"], "reason": "toy"}
    own = _write_claims(
        tmp_path / "baselines" / "claims.json",
        {
            "format": "plmtransfer-claims/1",
            "extends": "default",
            "claims": [{"name": "beats_onehot", "expected_failures": [xfail]}],
        },
    )
    merged = {c.name: c for c in load_effective_claims(own)}
    mine, base = merged["beats_onehot"], shipped["beats_onehot"]
    assert (mine.kind, mine.models, mine.tasks, mine.inits, dict(mine.params)) == (
        base.kind, base.models, base.tasks, base.inits, dict(base.params),
    )  # fmt: skip
    # the user's expected failure first (first match wins), the shipped ones kept after it
    assert mine.expected_failures[0].models == ("my_plm",) and mine.expected_failures[0].strict
    assert mine.expected_failures[1:] == base.expected_failures
    # the shape the scaffold's claims file shows is this one
    assert '"expected_failures": [{"models": "my_plm"' in claims_document("my_plm")["description"]
    # a kind-less entry that names no shipped claim: what is missing and when it may be left out
    own.write_text(json.dumps({"extends": "default", "claims": [{"name": "mine", "expected_failures": [xfail]}]}))
    with pytest.raises(ClaimsError, match=r"claims\[0\] \(mine\): no 'kind'. Only an entry named like a shipped"):
        load_effective_claims(own)


def test_layered_store_reads_user_files_first_then_the_shipped_ones_and_writes_the_users(tmp_path):
    store = LayeredBaselineStore(tmp_path / "baselines")
    shipped = BaselineStore(DEFAULT_BASELINES)
    assert store.read_path("gb1_sampled", "onehot", "none") == shipped.path_for("gb1_sampled", "onehot", "none")
    assert store.paper_path == shipped.paper_path and store.paper() is not None
    own = store.path_for("gb1_sampled", "onehot", "none")
    assert own.parent.parent == tmp_path / "baselines"
    own.parent.mkdir(parents=True)
    own.write_text(shipped.path_for("gb1_sampled", "onehot", "none").read_text())
    assert store.read_path("gb1_sampled", "onehot", "none") == own
    # a claims file of one's own without "extends" stands alone: no shipped baselines or paper numbers
    _write_claims(tmp_path / "alone" / "claims.json", {"format": "plmtransfer-claims/1", "claims": []})
    alone = LayeredBaselineStore(tmp_path / "alone")
    assert not alone.read_path("gb1_sampled", "onehot", "none").is_file() and alone.paper() is None
    _write_claims(
        tmp_path / "ext" / "claims.json", {"format": "plmtransfer-claims/1", "extends": "default", "claims": []}
    )
    assert LayeredBaselineStore(tmp_path / "ext").read_path("gb1_sampled", "onehot", "none").is_file()


def test_repo_baselines_is_the_shipped_package_data():
    assert (REPO / "baselines").resolve() == DEFAULT_BASELINES.resolve()
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"baselines_default/*.json", "baselines_default/*/*.json"' in pyproject
    for path in DEFAULT_BASELINES.rglob("*"):
        if path.is_file():
            depth = len(path.relative_to(DEFAULT_BASELINES).parts)
            assert path.suffix == ".json" and depth <= 2, f"{path} would not be package data"
    assert (REPO / "pytest_plmtransfer" / "benchmarks" / "__init__.py").is_file()


# ------------------------------------------------------------------------- scaffold, aliases
def test_scaffold_writes_everything_and_never_overwrites(tmp_path):
    written = scaffold(tmp_path, "my_plm")
    rel = sorted(str(p.relative_to(tmp_path)) for p in written)
    assert rel == [
        ".github/workflows/plm-gate.yml",
        ".gitignore",
        "baselines/claims.json",
        "benchmarks/test_plmtransfer.py",
        "conftest.py",
        "pytest.ini",
    ]
    assert ".plmtransfer/" in (tmp_path / ".gitignore").read_text().splitlines()
    assert json.loads((tmp_path / "baselines" / "claims.json").read_text())["extends"] == "default"
    conftest = (tmp_path / "conftest.py").read_text()
    compile(conftest, "conftest.py", "exec")
    assert "pytest_plmtransfer_register_models" in conftest
    assert "--plm-gate" in (tmp_path / ".github" / "workflows" / "plm-gate.yml").read_text()
    before = (tmp_path / "conftest.py").read_text()
    (tmp_path / "conftest.py").write_text("# mine\n")
    with pytest.raises(PlmTransferError, match="already exist"):
        scaffold(tmp_path, "my_plm")
    assert (tmp_path / "conftest.py").read_text() == "# mine\n"
    scaffold(tmp_path, "my_plm", force=True)
    assert (tmp_path / "conftest.py").read_text() == before
    with pytest.raises(PlmTransferError, match="not a usable model name"):
        scaffold(tmp_path / "x", "my plm")


def test_aliases_name_a_model_and_reject_bad_ones():
    registry = ModelRegistry()
    calls = []
    registry.register("hf:", lambda name, init, seed, options: calls.append(name), prefix=True, inits=("pretrained",))
    registry.register("onehot", lambda *a: None, inits=("none",))
    assert apply_aliases(["my_plm=hf:./models/m", "onehot"], registry) == ["my_plm", "onehot"]
    registry.create("my_plm", "pretrained", None, None)
    assert calls == ["hf:./models/m"]
    assert registry.entry("my_plm").inits == ("pretrained",)
    with pytest.raises(PlmTransferError, match="NAME=MODEL"):
        apply_aliases(["bad name=hf:x"], registry)
    # a checkpoint step is a model name, not an alias; an alias may name one
    registry.register("carp_640M", lambda *a: None, inits=("pretrained",))
    assert apply_aliases(["carp_640M@step=78810", "early=carp_640M@step=78810"], registry)[0] == "carp_640M@step=78810"
    with pytest.raises(PlmTransferError, match="would hide the model 'onehot' that a plugin or conftest.py registers"):
        apply_aliases(["onehot=hf:x"], registry)


def test_ini_aliases_are_known_to_bare_names_and_commands_spell_command_line_ones():
    registry = ModelRegistry()
    registry.register("hf:", lambda name, init, seed, options: name, prefix=True, inits=("pretrained",))
    registry.register("onehot", lambda *a: None, inits=("none",))
    ini = ["my_plm=hf:./models/m", "onehot"]
    # what init prints and its workflow runs: --plm-models my_plm,onehot, the alias in pytest.ini
    assert apply_aliases(["my_plm", "onehot"], registry, ini) == ["my_plm", "onehot"]
    assert registry.create("my_plm", "pretrained", None, None) == "hf:./models/m"
    assert benchmarks_command("my_plm", "gb1_sampled", "pretrained").startswith(
        "pytest benchmarks --plm-models my_plm --plm-tasks gb1_sampled"
    )
    # an alias given only on the command line: a printed command must carry it, or my_plm is unknown
    registry = ModelRegistry()
    registry.register("hf:", lambda name, init, seed, options: name, prefix=True, inits=("pretrained",))
    registry.register("onehot", lambda *a: None, inits=("none",))
    apply_aliases(["other=hf:./o", "onehot"], registry, ini)
    assert benchmarks_command("other,onehot", "gb1_sampled", "pretrained").startswith(
        "pytest benchmarks --plm-models other=hf:./o,onehot --plm-tasks gb1_sampled"
    )


def test_scaffold_for_a_hugging_face_model_declares_the_alias_and_writes_no_model_code(tmp_path):
    written = scaffold(tmp_path, "my_plm", hf="./checkpoints/my_plm")
    assert not (tmp_path / "conftest.py").exists() and tmp_path / "pytest.ini" in written
    assert "plm_models = my_plm=hf:./checkpoints/my_plm,onehot" in (tmp_path / "pytest.ini").read_text()
    assert "pytest.ini declares my_plm=hf:./checkpoints/my_plm" in next_steps("my_plm", "./checkpoints/my_plm")
    # a project with its own pytest configuration is told where the alias goes
    assert "add  plm_models = my_plm=hf:x,onehot" in next_steps("my_plm", "x", wrote_ini=False)


def test_hf_local_directories_are_keyed_by_name_not_path(tmp_path):
    (tmp_path / "m").mkdir()
    assert stable_model_key(f"hf:{tmp_path / 'm'}") == "hf:m"
    assert stable_model_key("hf:./some/where/m") == "hf:m"
    assert stable_model_key("hf:org/model") == "hf:org/model"  # a hub name is stable already
    store = BaselineStore(tmp_path / "b")
    assert store.path_for("gb1_sampled", "hf:../x/m", "pretrained") == store.path_for(
        "gb1_sampled", "hf:/abs/m", "pretrained"
    )


# ------------------------------------------------------------------------- README
def test_readme_options_table_lists_every_option():
    readme = (REPO / "README.md").read_text()
    # the first cell of a row names one or more options, each possibly with its value (`--plm-shard K/N`)
    table = {
        m
        for row in re.findall(r"^\| (`--plm-.*?)\|", readme, re.M)
        for m in re.findall(r"`(--plm-[a-z0-9-]+)[ `]", row)
    }
    missing = [o.flag_name for o in OPTIONS if o.flag_name not in table]
    assert not missing, f"README options table lacks {missing}"


def test_bind_headline_is_macro_f1():
    from pytest_plmtransfer.tasks.catalog import get_task

    assert get_task("bind").test_metric == "test_f1_macro"
    assert get_task("ss3").test_metric == "test_accuracy"
