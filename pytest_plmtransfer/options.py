"""Command-line / ini options, parsed once into a typed record.

Every value is checked when it is read, by the plain ``parse_*`` functions below: a bad value is an
:class:`OptionError` naming the option, the value and what is accepted (the plugin turns it into
``pytest.UsageError``: one line, exit code 4), never a late failure inside a test.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pytest_plmtransfer.errors import PlmTransferError
from pytest_plmtransfer.models.base import INITS, ONEHOT

SUITES: dict[str, dict[str, list[str]]] = {
    # Finishes in minutes on a laptop CPU and works offline once data is present.
    "smoke": {
        "models": [ONEHOT, "antiberty", "carp_600k", "esm2_t6_8M_UR50D"],
        "tasks": ["gb1_sampled", "gb1_low_vs_high", "gb1_two_vs_rest"],
    },
    # The seed papers' 8 models x 7 tasks (GPU scale).
    "paper": {
        "models": [
            ONEHOT,
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

DEFAULT_SEEDS = (42,)
#: compute dtypes (the spellings models.torch_base accepts)
DTYPES = ("float32", "fp32", "float", "bf16", "bfloat16", "fp16", "float16", "half")
#: how embeddings are stored in the cache (``--plm-cache-dtype``; kept in step with store.CACHE_DTYPES)
CACHE_DTYPES = ("float32", "float16")
#: FLIP datasets with an archive (``--plm-flip-sha256 gb1=<hex>``)
FLIP_DATASETS = ("gb1", "aav", "meltome", "scl", "secondary_structure", "bind", "conservation")
_LAYER_PART = re.compile(r"(-?\d+)(?:[-:](-?\d+))?")


class OptionError(PlmTransferError, ValueError):
    """A bad option value; the message names the option and what it accepts."""


def benchmarks_command(models: str, task: str, inits: str, *extra: str) -> str:
    """The ``pytest benchmarks ...`` line that computes (``extra``: and stores) these results;
    messages that say what to run (missing results, missing baselines) all print this one."""
    cmd = f"pytest benchmarks --plm-models {models} --plm-tasks {task}"
    if inits != "none":  # one-hot has no init to select
        cmd += f" --plm-inits {inits}"
    return " ".join([cmd, *(e for e in extra if e)])


def split_list(value: str | None) -> list[str]:
    if not value:
        return []
    return [item.strip() for item in value.replace("\n", ",").split(",") if item.strip()]


def parse_seeds(value: str, option: str = "--plm-seeds") -> list[int]:
    """``"42,0,12345"`` -> ``[42, 0, 12345]``; seeds are non-negative integers, each once."""
    seeds: list[int] = []
    for item in split_list(value):
        if not re.fullmatch(r"\d+", item):
            raise OptionError(f"{option}: {item!r} is not a seed; give non-negative integers, e.g. 42,0,12345")
        if int(item) in seeds:
            raise OptionError(f"{option}: seed {item} is given twice")
        seeds.append(int(item))
    if not seeds:
        raise OptionError(f"{option}: no seeds in {value!r}; give non-negative integers, e.g. 42,0,12345")
    return seeds


def parse_positive_int(option: str, value: object) -> int:
    text = str(value).strip()
    if not re.fullmatch(r"\+?\d+", text) or int(text) <= 0:
        raise OptionError(f"{option}: {text!r} is not a positive integer")
    return int(text)


def parse_positive_float(option: str, value: object) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        number = float("nan")
    if not number > 0 or number == float("inf"):
        raise OptionError(f"{option}: {str(value).strip()!r} is not a positive number of seconds")
    return number


def parse_fraction(option: str, value: object) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        number = float("nan")
    if not 0 <= number <= 1:
        raise OptionError(f"{option}: {str(value).strip()!r} is not a fraction between 0 and 1")
    return number


def parse_choice(option: str, value: object, choices: tuple[str, ...]) -> str:
    text = str(value).strip()
    if text.lower() not in choices:
        raise OptionError(f"{option}: unknown value {text!r} (accepted: {', '.join(choices)})")
    return text.lower()


def parse_device(value: object, option: str = "--plm-device") -> str:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (whether it exists is the model's check)."""
    text = str(value).strip().lower()
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        raise OptionError(f"{option}: unknown device {text!r} (accepted: auto, cpu, cuda, cuda:N, mps)")
    return text


def check_layer_spec(spec: str, option: str = "--plm-layers") -> None:
    """Syntax only: ``all`` or a comma list of indices and ``a-b`` / ``a:b`` ranges."""
    if spec.strip() == "all":
        return
    parts = split_list(spec)
    if not parts:
        raise OptionError(f"{option}: empty; use e.g. all, 0,5,-1 or 2-6")
    for part in parts:
        if _LAYER_PART.fullmatch(part) is None:
            raise OptionError(f"{option}: cannot read {part!r} (use e.g. all, 0,5,-1 or 2-6)")


def parse_layers(spec: str | None, num_layers: int, model: str = "the model") -> list[int]:
    """``all`` | comma list of indices (negative from the end) and ``a-b`` / ``a:b`` ranges.

    An index outside the model's layers 0..L (or -(L+1)..-1), or a range that starts outside them
    or runs backwards, is an :class:`OptionError` naming the model and its range; a range's end is
    clipped to L (``2-99`` means "from 2 on"). A model with a single layer (one-hot) always gives
    its layer 0, so a baseline stays in any selection.
    """
    if not spec or spec.strip() == "all":
        return list(range(num_layers + 1))
    check_layer_spec(spec)
    if num_layers == 0:
        return [0]
    span = f"{model} has layers 0..{num_layers} (or -{num_layers + 1}..-1 from the end)"
    out: set[int] = set()
    for part in split_list(spec):
        match = _LAYER_PART.fullmatch(part)
        assert match is not None  # check_layer_spec
        lo = int(match[1])
        if not -(num_layers + 1) <= lo <= num_layers:
            raise OptionError(f"--plm-layers {spec}: layer {lo} is out of range; {span}")
        first = _index(lo, num_layers)
        if match[2] is None:
            out.add(first)
            continue
        hi = int(match[2])
        if hi < -(num_layers + 1):
            raise OptionError(f"--plm-layers {spec}: layer {hi} is out of range; {span}")
        last = min(_index(hi, num_layers), num_layers)
        if last < first:
            raise OptionError(f"--plm-layers {spec}: the range {part} is empty (it runs backwards for {model}); {span}")
        out.update(range(first, last + 1))
    return sorted(out)


def _index(i: int, num_layers: int) -> int:
    return i + num_layers + 1 if i < 0 else i


def parse_existing_dir(option: str, value: Path) -> Path:
    if not value.is_dir():
        what = "is not a directory" if value.exists() else "does not exist"
        raise OptionError(f"{option}: {value} {what}")
    return value


def parse_sha256_map(value: str, option: str = "--plm-flip-sha256") -> dict[str, str]:
    """``"gb1=<64 hex>,aav=<64 hex>"`` -> ``{"gb1": ..., "aav": ...}``."""
    out: dict[str, str] = {}
    for item in split_list(value):
        name, _, digest = item.partition("=")
        name, digest = name.strip(), digest.strip().lower()
        if name not in FLIP_DATASETS:
            raise OptionError(f"{option}: unknown dataset {name!r} in {item!r} (accepted: {', '.join(FLIP_DATASETS)})")
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise OptionError(f"{option}: {item!r}: give DATASET=<64 hex digits of the archive's sha256>")
        out[name] = digest
    return out


@dataclass
class PlmOptions:
    models: list[str] = field(default_factory=lambda: list(SUITES["smoke"]["models"]))
    tasks: list[str] = field(default_factory=lambda: list(SUITES["smoke"]["tasks"]))
    inits: list[str] = field(default_factory=lambda: list(INITS))
    seeds: list[int] = field(default_factory=lambda: list(DEFAULT_SEEDS))
    layers: str | None = None
    data_dir: Path | None = None
    cache_dir: Path | None = None
    weights_dir: Path | None = None
    ledger: Path = Path(".plmtransfer/ledger")
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
    #: "sdpa" (fused scaled_dot_product_attention) or "library" (the model library's own)
    attention: str = "sdpa"
    #: head hyper-parameters from --plm-head-* / ini (None: the heads' documented defaults)
    head: dict[str, object] = field(default_factory=dict)
    cache_dtype: str = "float32"
    lock_timeout: float = 300.0
    lock_fail: bool = False
    flip_url: str | None = None
    flip_sha256: dict[str, str] = field(default_factory=dict)
    leakage_max: float = 0.0
    #: True when --plm-tasks or --plm-suite chose the tasks; otherwise the whole catalog is
    #: collected and the smoke suite's tasks are the default selection (see selection.py)
    tasks_chosen: bool = False
    #: "auto" (on when the terminal is interactive, off under -q / CI), True or False
    progress_mode: str = "auto"
    threads: int | None = None
    #: bootstrap resamples for the test metric's interval and the paired claims (0: none)
    bootstrap: int = 1000
    #: scale-out (see sharding.py, xdist_scheduling.py): "group" or None
    dist: str | None = None
    shard: str | None = None
    run_id: str | None = None
    from_ledger: Path | None = None


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
        suite = parse_choice("--plm-suite", suite, tuple(SUITES))
        opts.models = list(SUITES[suite]["models"])
        opts.tasks = list(SUITES[suite]["tasks"])
        opts.tasks_chosen = True
    if get("models"):
        opts.models = split_list(get("models"))
    if get("tasks"):
        opts.tasks = split_list(get("tasks"))
        opts.tasks_chosen = True
    from pytest_plmtransfer.tasks.catalog import get_task

    for task in opts.tasks:
        get_task(task)  # UnknownTaskError names the known ids
    if get("inits"):
        opts.inits = split_list(get("inits"))
        bad = [i for i in opts.inits if i not in INITS]
        if bad:
            raise OptionError(f"--plm-inits: unknown init(s) {bad} (accepted: {', '.join(INITS)})")
    if get("seeds"):
        opts.seeds = parse_seeds(str(get("seeds")))
    opts.layers = get("layers") or None
    if opts.layers:
        check_layer_spec(opts.layers)
    # Paths given on the command line are relative to where pytest was invoked; ini paths to rootdir.
    opts.data_dir = _path(get("data_dir") or os.environ.get("PLMTRANSFER_DATA"), invocation)
    if opts.data_dir is not None:  # named explicitly, so it must be there (no silent download)
        parse_existing_dir("--plm-data-dir" if get("data_dir") else "PLMTRANSFER_DATA", opts.data_dir)
    opts.cache_dir = _path(get("cache_dir"), invocation)
    opts.weights_dir = _path(get("weights_dir"), invocation)
    opts.ledger = _path(get("ledger"), invocation) or root / ".plmtransfer" / "ledger"
    opts.strict = flag("strict")
    opts.allow_download = not flag("offline")
    opts.device = parse_device(get("device") or "auto")
    opts.dtype = parse_choice("--plm-dtype", get("dtype") or "float32", DTYPES)
    if get("token_budget"):
        opts.token_budget = parse_positive_int("--plm-token-budget", get("token_budget"))
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
    from pytest_plmtransfer.head_options import parse_head_options
    from pytest_plmtransfer.models.attention import check_attention

    opts.attention = check_attention(get("attention"))
    opts.head = parse_head_options(get)
    opts.cache_dtype = parse_choice("--plm-cache-dtype", get("cache_dtype") or "float32", CACHE_DTYPES)
    if get("lock_timeout"):
        opts.lock_timeout = parse_positive_float("--plm-lock-timeout", get("lock_timeout"))
    opts.lock_fail = flag("lock_fail")
    opts.flip_url = get("flip_url") or None
    if opts.flip_url and not re.match(r"(https?|file)://", opts.flip_url):
        raise OptionError(f"--plm-flip-url: {opts.flip_url!r} is not an http(s):// or file:// URL")
    opts.flip_sha256 = parse_sha256_map(get("flip_sha256") or "")
    if get("leakage_max"):
        opts.leakage_max = parse_fraction("--plm-leakage-max", get("leakage_max"))
    raw_bootstrap = get("bootstrap")
    if raw_bootstrap not in (None, ""):
        try:
            opts.bootstrap = int(raw_bootstrap)
        except ValueError:
            raise OptionError(f"--plm-bootstrap: expected a number of resamples, got {raw_bootstrap!r}") from None
        if opts.bootstrap < 0 or opts.bootstrap == 1:
            raise OptionError(f"--plm-bootstrap: need 0 (no intervals) or at least 2 resamples, got {opts.bootstrap}")
    opts.dist = get("dist") or None
    if opts.dist not in (None, "group"):
        raise OptionError(f"--plm-dist: unknown mode {opts.dist!r} (known: group)")
    opts.shard = get("shard") or None
    opts.run_id = get("run_id") or None
    opts.from_ledger = _path(get("from_ledger"), invocation)
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
    ("ledger", "results ledger directory: one JSON Lines part per process (default .plmtransfer/ledger "
     "under rootdir); an old single-file ledger there is moved into it", "str"),
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
    ("attention", "attention kernel: sdpa (fused scaled_dot_product_attention, default) or library", "str"),
    ("head-epochs", "softmax probe: most training epochs (default 100)", "str"),
    ("head-patience", "softmax probe: epochs without validation improvement before stopping (default 5)", "str"),
    ("head-batch-size", "softmax probe: rows per mini-batch (default 256; 1024 for per-residue tasks)", "str"),
    ("head-lr", "softmax probe: Adam learning rate (default 1e-3)", "str"),
    ("head-alphas", "ridge probe: comma-separated penalty grid (default logspace(-3, 6, 19))", "str"),
    ("cache-dtype", "how embeddings are cached: float32 (default) or float16 (half the disk)", "str"),
    ("lock-timeout", "seconds to wait for a cache/ledger lock before saying who holds it (default 300)", "str"),
    ("lock-fail", "after --plm-lock-timeout, fail instead of waiting on", "flag"),
    ("flip-url", "base URL of the FLIP repository to download splits from (default: a pinned commit)", "str"),
    ("flip-sha256", "expected archive digests, e.g. gb1=<sha256>,aav=<sha256> (override the pinned ones)", "str"),
    ("leakage-max", "fraction of test sequences also in train/val tolerated without a warning (default 0)", "str"),
    ("bootstrap", "bootstrap resamples of the test set for intervals and paired claims "
     "(default 1000; 0 turns intervals off and claims fall back to plain comparisons)", "str"),
    ("dist", "with pytest-xdist -n: 'group' sends every test of one (model, init, seed) to one worker "
     "and pins worker gwI to the I-th GPU of CUDA_VISIBLE_DEVICES", "str"),
    ("shard", "K/N: run only shard K (0-based) of N; whole embedding groups, balanced by estimated cost", "str"),
    ("run-id", "run id shared by the shards of one run (default: a fresh id per pytest run)", "str"),
    ("from-ledger", "evaluate claims (and --plm-update-baselines) from this ledger alone: no models, "
     "no embeddings (e.g. the output of plmtransfer merge)", "str"),
]
