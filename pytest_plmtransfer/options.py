"""Command-line / ini options, parsed once into a typed record."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

SUITES: dict[str, dict[str, list[str]]] = {
    # Finishes in minutes on a laptop CPU and works offline once data is present.
    "smoke": {
        "models": ["onehot", "antiberty", "carp_600k", "esm2_t6_8M_UR50D"],
        "tasks": ["gb1_sampled", "gb1_low_vs_high", "gb1_two_vs_rest"],
    },
    # The seed papers' 8 models x 7 tasks (GPU scale).
    "paper": {
        "models": [
            "onehot",
            "esm1_t6_43M_UR50S", "esm1_t12_85M_UR50S", "esm1_t34_670M_UR50S", "esm1b_t33_650M_UR50S",
            "carp_600k", "carp_38M", "carp_76M", "carp_640M",
        ],
        "tasks": [
            "gb1_sampled", "gb1_low_vs_high", "gb1_two_vs_rest",
            "aav_two_vs_many", "aav_one_vs_many", "meltome_mixed", "scl_balanced",
        ],
    },
}
# The ICML paper adds secondary structure. Its CARP pretraining checkpoints are local files
# (`--plm-models /path/carp_640M@step=78810.pt,...`): they cannot be named without the files.
SUITES["icml"] = {"models": SUITES["paper"]["models"], "tasks": SUITES["paper"]["tasks"] + ["ss3"]}

DEFAULT_INITS = ("pretrained", "random", "stat")
DEFAULT_SEEDS = (42,)


def split_list(value: str | None) -> list[str]:
    if not value:
        return []
    return [item.strip() for item in value.replace("\n", ",").split(",") if item.strip()]


def parse_layers(spec: str | None, num_layers: int) -> list[int]:
    """``all`` | comma list of indices (negative from the end) and ``a-b`` / ``a:b`` ranges."""
    if not spec or spec.strip() == "all":
        return list(range(num_layers + 1))
    out: set[int] = set()
    for part in split_list(spec):
        match = re.fullmatch(r"(-?\d+)(?:[-:](-?\d+))?", part)
        if match is None:
            raise ValueError(f"--plm-layers: cannot read {part!r} (use e.g. all, 0,5,-1 or 2-6)")
        lo, hi = int(match[1]), int(match[2]) if match[2] is not None else None
        if hi is None:
            if -(num_layers + 1) <= lo <= num_layers:  # skip layers this model doesn't have
                out.add(_index(lo, num_layers))
        else:
            out.update(range(_index(lo, num_layers), _index(hi, num_layers) + 1))
    return sorted(x for x in out if 0 <= x <= num_layers)


def _index(i: int, num_layers: int) -> int:
    return i + num_layers + 1 if i < 0 else min(i, num_layers)


@dataclass
class PlmOptions:
    models: list[str] = field(default_factory=lambda: list(SUITES["smoke"]["models"]))
    tasks: list[str] = field(default_factory=lambda: list(SUITES["smoke"]["tasks"]))
    inits: list[str] = field(default_factory=lambda: list(DEFAULT_INITS))
    seeds: list[int] = field(default_factory=lambda: list(DEFAULT_SEEDS))
    layers: str | None = None
    data_dir: Path | None = None
    cache_dir: Path | None = None
    weights_dir: Path | None = None
    ledger: Path = Path(".plmtransfer/ledger.json")
    strict: bool = False
    allow_download: bool = True
    device: str = "auto"
    dtype: str = "float32"
    token_budget: int = 4096
    progress: bool = False
    report: bool = False
    report_dir: Path | None = None
    baselines_dir: Path = Path("baselines")
    update_baselines: bool = False
    gate: bool = False
    #: True when --plm-tasks or --plm-suite chose the tasks; otherwise the whole catalog is
    #: collected and the smoke suite's tasks are the default selection (see selection.py)
    tasks_chosen: bool = False
    #: "auto" (on when the terminal is interactive, off under -q / CI), True or False
    progress_mode: str = "auto"
    threads: int | None = None
    #: bootstrap resamples for the test metric's interval and the paired claims (0: none)
    bootstrap: int = 1000


def _path(value, root: Path) -> Path | None:
    if value in (None, ""):
        return None
    p = Path(os.path.expanduser(str(value)))
    return p if p.is_absolute() else root / p


def options_from_config(config) -> PlmOptions:
    """Command line wins over ini (``[tool.pytest.ini_options]`` / pytest.ini)."""

    def get(name: str):
        value = config.getoption(f"plm_{name}", default=None)
        if value in (None, "", False, []):
            ini = config.getini(f"plm_{name}")
            return ini if ini not in ("", [], None) else value
        return value

    def flag(name: str) -> bool:
        value = get(name)
        return value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes", "on"}

    root = Path(str(config.rootpath))
    invocation = Path(str(config.invocation_params.dir))
    opts = PlmOptions()
    suite = get("suite")
    if suite:
        if suite not in SUITES:
            raise ValueError(f"--plm-suite: unknown suite {suite!r} (known: {', '.join(SUITES)})")
        opts.models = list(SUITES[suite]["models"])
        opts.tasks = list(SUITES[suite]["tasks"])
        opts.tasks_chosen = True
    if get("models"):
        opts.models = split_list(get("models"))
    if get("tasks"):
        opts.tasks = split_list(get("tasks"))
        opts.tasks_chosen = True
    if get("inits"):
        opts.inits = split_list(get("inits"))
        bad = [i for i in opts.inits if i not in DEFAULT_INITS]
        if bad:
            raise ValueError(f"--plm-inits: unknown init(s) {bad} (known: {', '.join(DEFAULT_INITS)})")
    if get("seeds"):
        opts.seeds = [int(s) for s in split_list(str(get("seeds")))]
    opts.layers = get("layers") or None
    # Paths given on the command line are relative to where pytest was invoked; ini paths to rootdir.
    opts.data_dir = _path(get("data_dir") or os.environ.get("PLMTRANSFER_DATA"), invocation)
    opts.cache_dir = _path(get("cache_dir"), invocation)
    opts.weights_dir = _path(get("weights_dir"), invocation)
    opts.ledger = _path(get("ledger"), invocation) or root / ".plmtransfer" / "ledger.json"
    opts.strict = flag("strict")
    opts.allow_download = not flag("offline")
    opts.device = get("device") or "auto"
    opts.dtype = get("dtype") or "float32"
    opts.token_budget = int(get("token_budget") or 4096)
    opts.progress = flag("progress")
    opts.progress_mode = "on" if opts.progress else ("off" if flag("no_progress") else "auto")
    if get("threads"):
        raw = str(get("threads")).strip()
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"--plm-threads: must be a positive whole number of threads, got {raw!r}")
        opts.threads = int(raw)
    opts.report = flag("report")
    opts.report_dir = _path(get("report_dir"), invocation)
    opts.baselines_dir = _path(get("baselines_dir"), root) or root / "baselines"
    opts.update_baselines = flag("update_baselines")
    opts.gate = flag("gate")
    raw_bootstrap = get("bootstrap")
    if raw_bootstrap not in (None, ""):
        try:
            opts.bootstrap = int(raw_bootstrap)
        except ValueError:
            raise ValueError(f"--plm-bootstrap: expected a number of resamples, got {raw_bootstrap!r}") from None
        if opts.bootstrap < 0 or opts.bootstrap == 1:
            raise ValueError(f"--plm-bootstrap: need 0 (no intervals) or at least 2 resamples, got {opts.bootstrap}")
    return opts


#: (option name, help, kind) — kind: "str" or "flag". Registered both as --plm-* and as ini keys.
OPTIONS: list[tuple[str, str, str]] = [
    ("models", "comma-separated model names (registry names, hf:<repo|dir>, or checkpoint paths)", "str"),
    ("tasks", "comma-separated FLIP task ids (e.g. gb1_sampled,ss3)", "str"),
    ("suite", "named selection: smoke (default), paper, icml", "str"),
    ("inits", "comma-separated inits: pretrained,random,stat (default: all three)", "str"),
    ("layers", "layers to probe: all (default), or e.g. 0,5,-1 or 2-6", "str"),
    ("seeds", "comma-separated seeds for random/stat inits and heads (default 42)", "str"),
    ("data-dir", "a directory laid out like the FLIP repository root (also PLMTRANSFER_DATA)", "str"),
    ("cache-dir", "embedding/data cache directory (default: PLMTRANSFER_CACHE or ~/.cache/plmtransfer)", "str"),
    ("weights-dir", "directory with model checkpoints (<name>.pt)", "str"),
    ("ledger", "JSON results ledger (default .plmtransfer/ledger.json under rootdir)", "str"),
    ("strict", "missing data or weights is an error instead of a skip", "flag"),
    ("offline", "never download data or weights", "flag"),
    ("device", "auto, cpu, cuda or cuda:N", "str"),
    ("dtype", "float32, bf16 or fp16 (half precision only on GPU)", "str"),
    ("token-budget", "most tokens in one forward batch (default 4096)", "str"),
    ("progress", "always show the embedding progress line (default: only on an interactive terminal, not under -q or CI)", "flag"),
    ("no-progress", "never show the embedding progress line", "flag"),
    ("threads", "CPU threads for torch and BLAS (default: the libraries' own; set it on shared machines)", "str"),
    ("list", "list models, tasks and suites with sizes and whether data and weights are present locally, then exit", "flag"),
    ("report", "print per-task layer tables and claim outcomes at the end", "flag"),
    ("report-dir", "also write Markdown, CSV and PNG layer curves here", "str"),
    ("baselines-dir", "stored baselines and claims (default baselines/ under rootdir)", "str"),
    ("update-baselines", "rewrite stored baselines from this run", "flag"),
    ("gate", "run the claims for the selected models and fail on any broken claim", "flag"),
    ("bootstrap", "bootstrap resamples of the test set for intervals and paired claims "
     "(default 1000; 0 turns intervals off and claims fall back to plain comparisons)", "str"),
]
