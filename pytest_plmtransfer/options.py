"""Command-line / ini options, parsed once into a typed record.

Every value is checked when it is read, by the plain ``parse_*`` functions below: a bad value is an
:class:`OptionError` naming the option, the value and what is accepted (the plugin turns it into
``pytest.UsageError``: one line, exit code 4), never a late failure inside a test.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from pytest_plmtransfer.infra.errors import PlmTransferError
from pytest_plmtransfer.measure.protocol import AUTHORS, AUTHORS_SUITES, PLMTRANSFER, PROTOCOLS
from pytest_plmtransfer.models.base import DTYPES, INITS, ONEHOT
from pytest_plmtransfer.results.records import CACHE_DTYPES

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
            "esm1_t6_43M_UR50S",
            "esm1_t12_85M_UR50S",
            "esm1_t34_670M_UR50S",
            "esm1b_t33_650M_UR50S",
            "carp_600k",
            "carp_38M",
            "carp_76M",
            "carp_640M",
        ],
        "tasks": [
            "gb1_sampled",
            "gb1_low_vs_high",
            "gb1_two_vs_rest",
            "aav_two_vs_many",
            "aav_one_vs_many",
            "meltome_mixed",
            "scl_balanced",
        ],
    },
}
# The ICML paper adds CARP's pretraining checkpoints at 12.5/25/50% (100% is the published model;
# models/carp.py CARP_CHECKPOINT_STEPS, kept equal by a test) and TAPE's secondary structure with
# its three test sets (the authors' scr/params/vis.py ORDERED_TASK_LIST).
ICML_CHECKPOINTS = [
    f"{m}@{f}" for m in ("carp_600k", "carp_38M", "carp_76M", "carp_640M") for f in ("0.125", "0.25", "0.5")
]
SUITES["icml"] = {
    "models": SUITES["paper"]["models"] + ICML_CHECKPOINTS,
    "tasks": SUITES["paper"]["tasks"] + ["ss3_casp12", "ss3_cb513", "ss3_ts115"],
}

DEFAULT_SEEDS = (42,)
_LAYER_PART = re.compile(r"(-?\d+)(?:[-:](-?\d+))?")


class OptionError(PlmTransferError, ValueError):
    """A bad option value; the message names the option and what it accepts."""


def benchmarks_command(models: str, task: str, inits: str, *extra: str) -> str:
    """The ``pytest benchmarks ...`` line that computes (``extra``: and stores) these results;
    messages that say what to run (missing results, missing baselines) all print this one."""
    from pytest_plmtransfer.models.aliases import command_spelling

    models = ",".join(command_spelling(m) for m in split_list(models))
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
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise OptionError(f"{option}: {text!r} is not a positive number")
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


def parse_sha256_map(value: str, option: str = "--plm-flip-sha256") -> dict[str, str]:
    """``"gb1=<64 hex>,aav=<64 hex>"`` -> ``{"gb1": ..., "aav": ...}``."""
    from pytest_plmtransfer.tasks.catalog import DATASETS  # not at import: the catalog imports numpy

    out: dict[str, str] = {}
    for item in split_list(value):
        name, _, digest = item.partition("=")
        name, digest = name.strip(), digest.strip().lower()
        if name not in DATASETS:
            raise OptionError(f"{option}: unknown dataset {name!r} in {item!r} (accepted: {', '.join(DATASETS)})")
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise OptionError(f"{option}: {item!r}: give DATASET=<64 hex digits of the archive's sha256>")
        out[name] = digest
    return out


# --------------------------------------------------------------------------------------------
# the options: each declared once, as a field of PlmOptions (name, type, default) whose metadata
# holds its help and parser; pytest's addoption/addini, parsing and the README check derive from it


@dataclass(frozen=True)
class Where:
    """What a parser may need besides the raw value: the option's name (for messages) and the
    directories relative paths are taken from."""

    option: str
    root: Path  # rootdir: ini paths (and defaults) are relative to it
    invocation: Path  # where pytest was invoked: command-line paths are relative to it


Parser = Callable[[Any, Where], Any]


@dataclass(frozen=True)
class Option:
    """One ``--plm-<name>`` option and its ini key ``plm_<name>``."""

    name: str
    help: str
    #: a flag (``store_true``, ini bool) rather than a value
    flag: bool = False
    #: the checked value from the raw string; ``None``: the string as given
    parse: Parser | None = None
    #: the value when the option is not given, from the directories (``None``: the field's default)
    unset: Callable[[Where], Any] | None = None
    #: a ``--plm-head-*`` option: the ProbeSettings field it sets in ``PlmOptions.head`` when given
    head: str = ""

    @property
    def dest(self) -> str:
        return "plm_" + self.name.replace("-", "_")

    @property
    def flag_name(self) -> str:
        return f"--plm-{self.name}"


def option(
    default: Any = None,
    help: str = "",
    *,
    factory: Callable[[], Any] | None = None,
    flag: bool = False,
    parse: Parser | None = None,
    unset: Callable[[Where], Any] | None = None,
    name: str | None = None,
) -> Any:
    """A PlmOptions field that is also an option (``name``: the option's, when not the field's)."""
    meta = {"option": Option(name or "", help, flag, parse, unset)}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=False if flag else default, metadata=meta)


def _list(raw: Any, where: Where) -> list[str]:
    return split_list(str(raw))


def _inits(raw: Any, where: Where) -> list[str]:
    inits = split_list(str(raw))
    bad = [i for i in inits if i not in INITS]
    if bad:
        raise OptionError(f"{where.option}: unknown init(s) {bad} (accepted: {', '.join(INITS)})")
    return inits


def _layers(raw: Any, where: Where) -> str:
    check_layer_spec(str(raw), where.option)
    return str(raw)


def _cli_path(raw: Any, where: Where) -> Path:  # command-line paths: relative to the invocation dir
    return _resolved(raw, where.invocation)


def _root_path(raw: Any, where: Where) -> Path:  # baselines: relative to rootdir
    return _resolved(raw, where.root)


def _data_dir(raw: Any, where: Where) -> Path:
    path = _resolved(raw, where.invocation)
    if not path.is_dir():  # named explicitly, so it must be there (no silent download)
        raise OptionError(f"{where.option}: {path} {'is not a directory' if path.exists() else 'does not exist'}")
    return path


def _data_dir_from_env(where: Where) -> Path | None:
    env = os.environ.get("PLMTRANSFER_DATA")
    return _data_dir(env, Where("PLMTRANSFER_DATA", where.root, where.invocation)) if env else None


def _checked(parse: Callable[[str, Any], Any]) -> Parser:
    """A ``parse_*(option, value)`` function as an option's parser."""
    return lambda raw, where: parse(where.option, raw)


def _choice(choices: tuple[str, ...]) -> Parser:
    return lambda raw, where: parse_choice(where.option, raw, choices)


def _attention(raw: Any, where: Where) -> str:
    from pytest_plmtransfer.models.attention import check_attention

    return check_attention(raw)


def _url(raw: Any, where: Where) -> str:
    if not re.match(r"(https?|file)://", str(raw)):
        raise OptionError(f"{where.option}: {raw!r} is not an http(s):// or file:// URL")
    return str(raw)


def _bootstrap(raw: Any, where: Where) -> int:
    try:
        n = int(raw)
    except ValueError:
        raise OptionError(f"{where.option}: expected a number of resamples, got {raw!r}") from None
    if n < 0 or n == 1:
        raise OptionError(f"{where.option}: need 0 (no intervals) or at least 2 resamples, got {n}")
    return n


def _alphas(raw: Any, where: Where) -> list[float]:
    parts = split_list(str(raw))
    if not parts:
        raise OptionError(f"{where.option}: give at least one penalty, e.g. 0.1,1,10")
    return [parse_positive_float(where.option, p) for p in parts]


#: the heads' hyper-parameters (``--plm-head-*``): each given one sets a ProbeSettings field in
#: ``PlmOptions.head``; the rest keep the heads' (or the protocol's) defaults. The settings a head
#: used are in every record's ``head``, and a non-default one is part of the result-cache key.
HEAD_OPTIONS = tuple(
    Option(f"head-{name}", text, parse=parse, head=head)
    for name, head, parse, text in (
        ("epochs", "max_epochs", _checked(parse_positive_int), "softmax probe: most training epochs (default 100)"),
        ("patience", "patience", _checked(parse_positive_int),
         "softmax probe: epochs without validation improvement before stopping (default 5)"),
        ("batch-size", "batch_size", _checked(parse_positive_int),
         "softmax probe: rows per mini-batch (default 256; 1024 for per-residue tasks)"),
        ("lr", "lr", _checked(parse_positive_float), "softmax probe: Adam learning rate (default 1e-3)"),
        ("alphas", "alphas", _alphas, "ridge probe: comma-separated penalty grid (default logspace(-3, 6, 19))"),
    )
)  # fmt: skip


@dataclass
class PlmOptions:
    """Every ``--plm-*`` option (and ini key), checked and typed; declared here once."""

    models: list[str] = option(
        factory=lambda: list(SUITES["smoke"]["models"]),
        parse=_list,
        help="comma-separated models: registry names, hf:<repo|dir>, checkpoint paths, or NAME=MODEL "
        "aliases (e.g. my_plm=hf:./checkpoints/my_plm: records, baselines and test ids say my_plm)",
    )
    tasks: list[str] = option(
        factory=lambda: list(SUITES["smoke"]["tasks"]),
        parse=_list,
        help="comma-separated FLIP task ids or families (e.g. gb1_sampled,ss3, or scl: every SCL task)",
    )
    suite: str | None = option(parse=_choice(tuple(SUITES)), help="named selection: smoke (default), paper, icml")
    inits: list[str] = option(
        factory=lambda: list(INITS),
        parse=_inits,
        help="comma-separated inits: pretrained,random,stat (default: all three)",
    )
    layers: str | None = option(parse=_layers, help="layers to probe: all (default), or e.g. 0,5,-1 or 2-6")
    seeds: list[int] = option(
        factory=lambda: list(DEFAULT_SEEDS),
        parse=lambda raw, where: parse_seeds(str(raw), where.option),
        help="comma-separated seeds for random/stat inits and heads (default 42)",
    )
    protocol: str = option(
        PLMTRANSFER,
        parse=_choice(tuple(PROTOCOLS)),
        help="plmtransfer (default) or authors: the authors' code path, quirks included "
        "(docs/protocols.md); --plm-suite paper/icml default to authors",
    )
    data_dir: Path | None = option(
        parse=_data_dir,
        unset=_data_dir_from_env,
        help="a directory laid out like the FLIP repository root (also PLMTRANSFER_DATA)",
    )
    cache_dir: Path | None = option(
        parse=_cli_path, help="embedding/data cache directory (default: PLMTRANSFER_CACHE or ~/.cache/plmtransfer)"
    )
    weights_dir: Path | None = option(parse=_cli_path, help="directory with model checkpoints (<name>.pt)")
    ledger: Path = option(
        Path(".plmtransfer/ledger"),
        parse=_cli_path,
        unset=lambda where: where.root / ".plmtransfer" / "ledger",
        help="results ledger directory: one JSON Lines part per process (default .plmtransfer/ledger under rootdir)",
    )
    strict: bool = option(flag=True, help="missing data or weights is an error instead of a skip")
    offline: bool = option(flag=True, help="never download data or weights")
    device: str = option(
        "auto", parse=lambda raw, where: parse_device(raw, where.option), help="auto, cpu, cuda or cuda:N"
    )
    dtype: str = option(
        "float32", parse=_choice(tuple(DTYPES)), help="float32, bf16 or fp16 (half precision only on GPU)"
    )
    token_budget: int = option(
        4096, parse=_checked(parse_positive_int), help="most tokens in one forward batch (default 4096)"
    )
    progress: bool = option(
        flag=True,
        help="always show the embedding progress line (default: only on an interactive terminal, not under -q or CI)",
    )
    no_progress: bool = option(flag=True, help="never show the embedding progress line")
    threads: int | None = option(
        parse=_checked(parse_positive_int),
        help="CPU threads for torch and BLAS (default: the libraries' own; set it on shared machines)",
    )
    list_only: bool = option(
        flag=True,
        name="list",
        help="list models, tasks and suites with sizes and whether data and weights are present locally, then exit",
    )
    report: bool = option(flag=True, help="print per-task layer tables and claim outcomes at the end")
    report_dir: Path | None = option(
        parse=_cli_path, help="also write report.html, Markdown, CSV and layer curves (PNG, SVG) here"
    )
    baselines_dir: Path = option(
        Path("baselines"),
        parse=_root_path,
        unset=lambda where: where.root / "baselines",
        help="stored baselines and claims (default baselines/ under rootdir)",
    )
    update_baselines: bool = option(flag=True, help="rewrite stored baselines from this run")
    gate: bool = option(
        flag=True, help="run the claims for the selected models and fail on any broken claim (and on an empty run)"
    )
    fail_on_empty: bool = option(
        flag=True, help="fail (exit 1) when every benchmark test skipped, so nothing was measured (on under --plm-gate)"
    )
    #: "sdpa" (fused scaled_dot_product_attention) or "library" (the model library's own)
    attention: str = option(
        "sdpa", parse=_attention, help="attention kernel: sdpa (fused scaled_dot_product_attention, default) or library"
    )
    #: head hyper-parameters given (ProbeSettings field -> value): HEAD_OPTIONS
    head: dict[str, object] = field(default_factory=dict, metadata={"options": HEAD_OPTIONS})
    cache_dtype: str = option(
        "float32",
        parse=_choice(CACHE_DTYPES),
        help="how embeddings are cached: float32 (default) or float16 (half the disk)",
    )
    lock_timeout: float = option(
        300.0,
        parse=_checked(parse_positive_float),
        help="seconds to wait for a cache/ledger lock before saying who holds it (default 300)",
    )
    lock_fail: bool = option(flag=True, help="after --plm-lock-timeout, fail instead of waiting on")
    flip_url: str | None = option(
        parse=_url, help="base URL of the FLIP repository to download splits from (default: a pinned commit)"
    )
    flip_sha256: dict[str, str] = option(
        factory=dict,
        parse=lambda raw, where: parse_sha256_map(str(raw), where.option),
        help="expected archive digests, e.g. gb1=<sha256>,aav=<sha256> (override the pinned ones)",
    )
    leakage_max: float = option(
        0.0,
        parse=_checked(parse_fraction),
        help="fraction of test sequences also in train/val tolerated without a warning (default 0)",
    )
    #: bootstrap resamples for the test metric's interval and the paired claims (0: none)
    bootstrap: int = option(
        1000,
        parse=_bootstrap,
        help="bootstrap resamples of the test set for intervals and paired claims "
        "(default 1000; 0 turns intervals off and claims fall back to plain comparisons)",
    )
    #: scale-out (see plan/sharding.py, plan/xdist.py)
    dist: str | None = option(
        parse=_choice(("group",)),
        help="with pytest-xdist -n: 'group' sends every test of one (model, init, seed) to one worker "
        "and pins worker gwI to the I-th GPU of CUDA_VISIBLE_DEVICES",
    )
    shard: str | None = option(
        help="K/N: run only shard K (0-based) of N; whole embedding groups, balanced by estimated cost"
    )
    run_id: str | None = option(help="run id shared by the shards of one run (default: a fresh id per pytest run)")
    from_ledger: Path | None = option(
        parse=_cli_path,
        help="evaluate claims (and --plm-update-baselines) from this ledger alone: no models, "
        "no embeddings (e.g. the output of plmtransfer merge)",
    )
    limit: int | None = option(
        parse=_checked(parse_positive_int),
        help="a quick look: at most N sequences of each split (train/val/test), the same ones every run; "
        "recorded in every record, never stored as a baseline nor compared with one",
    )
    #: True when --plm-tasks or --plm-suite chose the tasks; otherwise the whole catalog is
    #: collected and the smoke suite's tasks are the default selection (see selection.py)
    tasks_chosen: bool = False

    @property
    def allow_download(self) -> bool:
        return not self.offline

    @property
    def progress_mode(self) -> str:
        """ "on", "off" or "auto" (on when the terminal is interactive, off under -q / CI)."""
        return "on" if self.progress else ("off" if self.no_progress else "auto")


def _declared() -> list[tuple[str, Option]]:
    """(PlmOptions field, its option) in declaration order (``--help`` order), each option named."""
    out = []
    for f in fields(PlmOptions):
        if "option" in f.metadata:
            decl = f.metadata["option"]
            out.append((f.name, replace(decl, name=decl.name or f.name.replace("_", "-"))))
        out += [(f.name, decl) for decl in f.metadata.get("options", ())]
    return out


def add_options(parser) -> None:
    """Register every option with pytest, as ``--plm-<name>`` and as the ini key ``plm_<name>``."""
    group = parser.getgroup("plmtransfer", "protein language model transfer benchmarks")
    for decl in OPTIONS:
        if decl.flag:
            group.addoption(decl.flag_name, action="store_true", default=False, dest=decl.dest, help=decl.help)
            parser.addini(decl.dest, decl.help, type="bool", default=False)
        else:
            group.addoption(decl.flag_name, action="store", default=None, dest=decl.dest, help=decl.help)
            parser.addini(decl.dest, decl.help, default="")


def _resolved(value: Any, root: Path) -> Path:
    """A given (non-empty) path: ``~`` expanded, relative ones taken from ``root``."""
    p = Path(os.path.expanduser(str(value)))
    return p if p.is_absolute() else root / p


def options_from_config(config) -> PlmOptions:
    """Command line wins over ini (``[tool.pytest.ini_options]`` / pytest.ini). Paths given on the
    command line are relative to where pytest was invoked; ini paths to rootdir."""

    def get(name: str):
        value = config.getoption(f"plm_{name}", default=None)
        if value in (None, "", False, []):
            ini = config.getini(f"plm_{name}")
            return ini if ini not in ("", [], None) else value
        return value

    root = Path(str(config.rootpath))
    invocation = Path(str(config.invocation_params.dir))
    opts = PlmOptions()
    given: set[str] = set()
    for name, decl in _declared():
        raw = get(decl.dest.removeprefix("plm_"))
        where = Where(decl.flag_name, root, invocation)
        if decl.flag:
            value = raw if isinstance(raw, bool) else str(raw).lower() in {"1", "true", "yes", "on"}
        elif raw in (None, "", False, []):
            if decl.unset is None:
                continue
            value = decl.unset(where)
        else:
            given.add(name)
            value = decl.parse(raw, where) if decl.parse else raw
        if decl.head:
            opts.head[decl.head] = value
        else:
            setattr(opts, name, value)
    from pytest_plmtransfer.tasks.catalog import expand_tasks

    if opts.suite:  # a suite names models and tasks; --plm-models / --plm-tasks win over it
        opts.models = opts.models if "models" in given else list(SUITES[opts.suite]["models"])
        opts.tasks = opts.tasks if "tasks" in given else list(SUITES[opts.suite]["tasks"])
        if opts.suite in AUTHORS_SUITES and "protocol" not in given:
            opts.protocol = AUTHORS  # the papers' suites reproduce the papers' numbers
    opts.tasks_chosen = bool(opts.suite) or "tasks" in given
    opts.tasks = expand_tasks(opts.tasks)  # family names (scl); UnknownTaskError names the known ids
    if opts.limit is not None and opts.update_baselines:
        raise OptionError(
            f"--plm-limit {opts.limit} with --plm-update-baselines: a subsample is a quick look; "
            "baselines are stored from the full data (drop --plm-limit)"
        )
    return opts


#: every option, in ``--help`` order, for the README check and for users who list them
OPTIONS: list[Option] = [decl for _field, decl in _declared()]
