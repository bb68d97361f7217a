"""``plmtransfer init``: scaffold a repository that gates a new PLM in CI.

Writes (never over an existing file unless ``force``; all or nothing):

* ``conftest.py`` — registers the model (a small torch stand-in to replace with yours; its
  weights are hashed into the cache key, so a changed model is never served stale embeddings);
* ``benchmarks/test_plmtransfer.py`` — the shipped suite, so ``pytest benchmarks`` runs it;
* ``baselines/claims.json`` — ``"extends": "default"``: the shipped claims, plus yours;
* ``.github/workflows/plm-gate.yml`` — the gate on every pull request;
* ``pytest.ini`` — only when the directory has no pytest configuration: it anchors pytest's
  rootdir here (without one, ``--plm-data-dir /abs/path`` written with a space makes pytest take
  the common ancestor of the paths, e.g. ``/``, as rootdir, and baselines/ledger would go there);
* ``.gitignore`` — the ledger, reports and caches a run leaves (only when there is none).

With ``hf`` (a Hugging Face directory or repo id) no model code is written: ``pytest.ini``
declares the alias ``<model>=hf:<hf>``, which the printed commands and the workflow name by
``<model>`` alone.
"""

from __future__ import annotations

import re
from pathlib import Path

from pytest_plmtransfer.infra.errors import PlmTransferError
from pytest_plmtransfer.infra.tempfiles import atomic_write, atomic_write_json

CONFTEST = '''"""Registers {model} with pytest-plmtransfer. Replace TinyPLM with your model."""

import torch

from pytest_plmtransfer.models.base import EmbeddingBatch, ModelAdapter

ALPHABET = "ACDEFGHIKLMNPQRSTVWYXBZUO"


class TinyPLM(torch.nn.Module):
    """A stand-in: a residue embedding and two tanh layers. Load your own weights instead."""

    def __init__(self, dim=16, layers=2):
        super().__init__()
        self.embed = torch.nn.Embedding(len(ALPHABET), dim)
        self.blocks = torch.nn.ModuleList(torch.nn.Linear(dim, dim) for _ in range(layers))

    def forward(self, tokens):
        hidden = [self.embed(tokens)]
        for block in self.blocks:
            hidden.append(torch.tanh(block(hidden[-1])))
        return hidden  # layer 0 = the embedding output, then one entry per layer


class {cls}Adapter(ModelAdapter):
    name = "{model}"

    def __init__(self, init, seed):
        self.init, self.seed = init, seed
        torch.manual_seed(0 if init == "pretrained" else 1000 + seed)
        self.net = TinyPLM().eval()  # e.g. self.net.load_state_dict(torch.load("weights.pt"))
        self.num_layers, self.embed_dim = len(self.net.blocks), self.net.embed.embedding_dim

    def identity(self):
        # The plugin adds "weights_sha256" (the state_dict of self.net) to this by itself.
        return {{"model": self.name, "init": self.init, "seed": self.seed}}

    @torch.inference_mode()
    def embed(self, sequences, layers, *, per_residue):
        for i, seq in enumerate(sequences):
            hidden = self.net(torch.tensor([ALPHABET.index(c) for c in seq]))
            out = {{layer: hidden[layer] if per_residue else hidden[layer].mean(0, keepdim=True)
                   for layer in layers}}
            yield EmbeddingBatch(indices=[i], per_layer={{k: v.numpy() for k, v in out.items()}})


def pytest_plmtransfer_register_models(registry):
    registry.register(
        "{model}",
        lambda name, init, seed, options: {cls}Adapter(init, seed),
        inits=("pretrained", "random"),  # add "stat" if your factory can permute your weights
        needs_weights=(),
    )
'''

PYTEST_INI = """[pytest]
# anchors pytest's rootdir (and so baselines/ and .plmtransfer/) in this directory
plm_models = {models}
"""
GITIGNORE = """# what pytest-plmtransfer runs leave behind (commit baselines/, not these)
.plmtransfer/
report/
.pytest_cache/
__pycache__/
"""
#: files any of which already configures pytest (and so anchors the rootdir)
_PYTEST_CONFIGS = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")

SUITE = '''"""The pytest-plmtransfer suite (shipped in the package): `pytest benchmarks --plm-models {model},onehot`."""

from pytest_plmtransfer.benchmarks.test_claims import test_claim  # noqa: F401
from pytest_plmtransfer.benchmarks.test_layers import test_layer  # noqa: F401
'''

#: the torch the scaffolded workflow installs: the CPU wheel the package's torch bound is tested with
TORCH = "2.13.0"

WORKFLOW = """# The PLM gate: recompute {model}'s layer results, fail on any broken claim or baseline.
# Checked by a YAML parser and by actionlint in pytest-plmtransfer's own tests.
name: plm-gate
on: [pull_request]
jobs:
  gate:
    runs-on: ubuntu-latest  # or a GPU runner: add --plm-device cuda --plm-dtype bf16 to the gate
    timeout-minutes: 120
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      # FLIP data and embeddings are keyed by content: a changed model is recomputed, not served stale
      - name: "Cache FLIP data and embeddings"
        uses: actions/cache@v4
        with:
          path: |
            ~/.cache/plmtransfer
            ~/.cache/torch/hub/checkpoints
          key: plm-${{{{ runner.os }}}}-${{{{ github.sha }}}}
          restore-keys: plm-${{{{ runner.os }}}}-
      # the CPU wheel, pinned: the default index would bring several GB of CUDA libraries
      - run: pip install torch=={torch} --index-url https://download.pytorch.org/whl/cpu
      - run: pip install pytest-plmtransfer
      - name: "Gate"
        run: >-
          pytest benchmarks --plm-models {model},onehot
          --plm-gate --plm-report --plm-report-dir report/
      - uses: actions/upload-artifact@v4
        if: always()
        with:
          name: plm-report
          path: |
            report/
            .plmtransfer/
          include-hidden-files: true
"""


def claims_document(model: str) -> dict:
    return {
        "format": "plmtransfer-claims/1",
        "extends": "default",
        "description": (
            f"Claims for {model}: the shipped claims (beats one-hot, saturates by the middle layer, "
            "pretrained beats random/stat, no regression against baselines/<task>/<model>--<init>.json) "
            "apply to every selected model. Add entries to 'claims'; an entry named like a shipped one "
            "replaces it. To declare an expected failure, name the shipped claim and say where and why "
            "(its kind and selection are the shipped one's), e.g. "
            + EXPECTED_FAILURE_EXAMPLE.format(model=model)
            + ". 'strict': true (the default) fails the gate when the claim starts to pass there "
            "(XPASS(strict)): list only the tasks where it fails, or set 'strict': false."
        ),
        "claims": [],
    }


#: the shape of a name-only override declaring an expected failure (README, claims file)
EXPECTED_FAILURE_EXAMPLE = (
    '{{"name": "beats_onehot", "expected_failures": [{{"models": "{model}", "tasks": ["gb1_low_vs_high"], '
    '"reason": "why it is expected to fail there", "strict": true}}]}}'
)


def scaffold(target: Path, model: str = "my_plm", *, force: bool = False, hf: str | None = None) -> list[Path]:
    """Write the files; refuse (writing nothing) when one exists and ``force`` is not set."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", model):
        raise PlmTransferError(f"--model: {model!r} is not a usable model name (letters, digits, underscores)")
    cls = "".join(part.capitalize() for part in model.split("_")) or "My"
    files = {
        target / "benchmarks" / "test_plmtransfer.py": SUITE.format(model=model),
        target / ".github" / "workflows" / "plm-gate.yml": WORKFLOW.format(model=model, torch=TORCH),
    }
    if hf is None:
        files[target / "conftest.py"] = CONFTEST.format(model=model, cls=cls)
    if not any((target / name).exists() for name in _PYTEST_CONFIGS):
        models = f"{model}=hf:{hf},onehot" if hf else f"{model},onehot"
        files[target / "pytest.ini"] = PYTEST_INI.format(models=models)
    if not (target / ".gitignore").exists():
        files[target / ".gitignore"] = GITIGNORE
    claims = target / "baselines" / "claims.json"
    existing = [p for p in [*files, claims] if p.exists()]
    if existing and not force:
        names = ", ".join(str(p) for p in existing)
        raise PlmTransferError(f"{names} already exist(s); nothing written (use --force to overwrite)")
    for path, text in files.items():
        atomic_write(path, text)
    atomic_write_json(claims, claims_document(model))
    return [*files, claims]


def next_steps(model: str, hf: str | None = None, wrote_ini: bool = True) -> str:
    if hf is None:
        first = "  1. replace TinyPLM in conftest.py with your model (keep the adapter's contract)"
    elif wrote_ini:
        first = f"  1. pytest.ini declares {model}=hf:{hf}; the commands below name it {model}"
    else:
        first = f"  1. add  plm_models = {model}=hf:{hf},onehot  to your pytest configuration ([pytest] or [tool.pytest.ini_options])"
    return "\n".join(
        [
            "next:",
            first,
            f"  2. pytest benchmarks --plm-models {model},onehot --plm-update-baselines   # on the reference machine",
            *(["     (TinyPLM is random: it fails the shipped scientific claims, as it should)"] if hf is None else []),
            "     a claim your model is not expected to meet goes into baselines/claims.json as an expected",
            "     failure with a reason (the shape is in that file's description)",
            "  3. review and commit baselines/, .gitignore and .github/workflows/plm-gate.yml",
            f"  4. CI runs: pytest benchmarks --plm-models {model},onehot --plm-gate",
            "  data: --plm-data-dir DIR (FLIP layout) or PLMTRANSFER_DATA, else it is downloaded",
        ]
    )
