"""The option parsers, directly: valid values and the one-line error each bad value gets; and the
single declaration (PlmOptions' fields) that --help, ini keys and parsing derive from."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from pytest_plmtransfer.infra.errors import PlmTransferError
from pytest_plmtransfer.options import (
    OPTIONS,
    SUITES,
    OptionError,
    PlmOptions,
    Where,
    options_from_config,
    parse_fraction,
    parse_layers,
    parse_positive_float,
    parse_positive_int,
    parse_seeds,
)
from pytest_plmtransfer.plan.sharding import Shard

WHERE = Where("--plm-x", Path("/root"), Path("/here"))


def parser(field_name: str):
    """The parser declared on a PlmOptions field."""
    return PlmOptions.__dataclass_fields__[field_name].metadata["option"].parse


# ------------------------------------------------------------------------------ layers
@pytest.mark.parametrize(
    ("spec", "num_layers", "expected"),
    [
        (None, 3, [0, 1, 2, 3]),
        ("all", 2, [0, 1, 2]),
        ("0,5,-1", 6, [0, 5, 6]),
        ("2-4", 6, [2, 3, 4]),
        ("2:99", 4, [2, 3, 4]),  # a range's end is clipped: "from 2 on"
        ("-2--1", 4, [3, 4]),
        ("3,3,1", 4, [1, 3]),  # sorted, each once
        ("5", 0, [0]),  # one-hot's single layer stays in any selection
    ],
)
def test_parse_layers_valid(spec, num_layers, expected):
    assert parse_layers(spec, num_layers) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("7", "--plm-layers 7: layer 7 is out of range; m has layers 0..6 (or -7..-1 from the end)"),
        ("-8", "--plm-layers -8: layer -8 is out of range"),
        ("5-2", "--plm-layers 5-2: the range 5-2 is empty (it runs backwards for m)"),
        ("1..3", "--plm-layers: cannot read '1..3' (use e.g. all, 0,5,-1 or 2-6)"),
        (" , ", "--plm-layers: empty; use e.g. all, 0,5,-1 or 2-6"),
    ],
)
def test_parse_layers_errors_name_the_model_and_its_range(spec, message):
    with pytest.raises(OptionError) as exc:
        parse_layers(spec, 6, "m")
    assert message in str(exc.value)


# ------------------------------------------------------------------------------ numbers
def test_seeds():
    assert parse_seeds("42, 0,12345") == [42, 0, 12345]
    assert parse_seeds("7\n8") == [7, 8]  # ini values may span lines
    for raw, message in [
        (",", "--plm-seeds: no seeds in ','"),
        ("-1", "'-1' is not a seed"),
        ("3,3", "seed 3 is given twice"),
    ]:
        with pytest.raises(OptionError, match=message):
            parse_seeds(raw)


def test_token_budget_and_other_positive_values():
    assert parse_positive_int("--plm-token-budget", "+512") == 512
    for raw in ("0", "4.5", "many"):
        with pytest.raises(OptionError, match=f"--plm-token-budget: '{raw}' is not a positive integer"):
            parse_positive_int("--plm-token-budget", raw)
    assert parse_positive_float("--plm-lock-timeout", " 2.5 ") == 2.5
    for raw in ("0", "inf", "soon"):
        with pytest.raises(OptionError, match="is not a positive number"):
            parse_positive_float("--plm-lock-timeout", raw)
    assert parse_fraction("--plm-leakage-max", "0.25") == 0.25
    with pytest.raises(OptionError, match="'1.5' is not a fraction between 0 and 1"):
        parse_fraction("--plm-leakage-max", "1.5")


@pytest.mark.parametrize(
    ("field_name", "raw", "expected"),
    [
        ("bootstrap", "0", 0),
        ("bootstrap", "200", 200),
        ("threads", "2", 2),
        ("dist", "group", "group"),
        ("inits", "random, stat", ["random", "stat"]),
        ("flip_url", "file:///m", "file:///m"),
        ("suite", "Paper", "paper"),
        ("dtype", "BF16", "bf16"),
        ("cache_dtype", "float16", "float16"),
    ],
)
def test_declared_parsers_accept(field_name, raw, expected):
    assert parser(field_name)(raw, WHERE) == expected


@pytest.mark.parametrize(
    ("field_name", "raw", "message"),
    [
        ("bootstrap", "1", "--plm-x: need 0 (no intervals) or at least 2 resamples, got 1"),
        ("bootstrap", "lots", "--plm-x: expected a number of resamples, got 'lots'"),
        ("threads", "0", "--plm-x: '0' is not a positive integer"),
        ("dist", "load", "--plm-x: unknown value 'load' (accepted: group)"),
        ("inits", "pretrained,warm", "--plm-x: unknown init(s) ['warm'] (accepted: pretrained, random, stat)"),
        ("flip_url", "ftp://x", "--plm-x: 'ftp://x' is not an http(s):// or file:// URL"),
        ("suite", "huge", "--plm-x: unknown value 'huge' (accepted: smoke, paper, icml)"),
        ("layers", "1..2", "--plm-x: cannot read '1..2'"),
    ],
)
def test_declared_parsers_refuse_with_one_line(field_name, raw, message):
    with pytest.raises(OptionError) as exc:
        parser(field_name)(raw, WHERE)
    assert str(exc.value) == message or str(exc.value).startswith(message)
    assert "\n" not in str(exc.value)


def test_shard_k_of_n():
    shard = Shard.parse("1/4")
    assert (shard.index, shard.count) == (1, 4)
    for raw, message in [("4/4", "need 0 <= K < N"), ("1-4", "expected K/N, e.g. 0/4"), ("x/2", "expected K/N")]:
        with pytest.raises(PlmTransferError, match=message):
            Shard.parse(raw)


# ------------------------------------------------------------------------------ declared once
def test_every_option_is_declared_once_with_help():
    names = [o.name for o in OPTIONS]
    assert len(names) == len(set(names))
    assert all(o.help for o in OPTIONS)
    assert {"list", "offline", "head-epochs", "shard", "from-ledger"} <= set(names)


def fake_config(cli: dict, ini: dict, root: Path, invocation: Path):
    return SimpleNamespace(
        getoption=lambda name, default=None: cli.get(name, default),
        getini=lambda name: ini.get(name, ""),
        rootpath=root,
        invocation_params=SimpleNamespace(dir=invocation),
    )


def test_options_from_config_command_line_wins_and_paths_are_relative_to_their_source(tmp_path):
    config = fake_config(
        {"plm_models": "onehot", "plm_report_dir": "out", "plm_offline": True, "plm_list": True},
        {
            "plm_models": "antiberty",
            "plm_suite": "paper",
            "plm_baselines_dir": "b",
            "plm_token_budget": "64",
            "plm_head_epochs": "3",
            "plm_no_progress": True,
        },
        tmp_path / "root",
        tmp_path / "cwd",
    )
    opts = options_from_config(config)
    assert opts.models == ["onehot"]  # the command line over the ini, and over the suite
    assert opts.tasks == SUITES["paper"]["tasks"] and opts.tasks_chosen
    assert opts.report_dir == tmp_path / "cwd" / "out"  # command line: from where pytest was invoked
    assert opts.baselines_dir == tmp_path / "root" / "b"  # ini: from rootdir
    assert opts.ledger == tmp_path / "root" / ".plmtransfer" / "ledger"  # the default, under rootdir
    assert opts.token_budget == 64 and opts.head == {"max_epochs": 3}
    assert not opts.allow_download and opts.list_only and opts.progress_mode == "off"


def test_options_from_config_defaults_choose_no_tasks(tmp_path, monkeypatch):
    monkeypatch.delenv("PLMTRANSFER_DATA", raising=False)
    opts = options_from_config(fake_config({}, {}, tmp_path, tmp_path))
    assert opts.models == SUITES["smoke"]["models"] and not opts.tasks_chosen
    assert opts.device == "auto" and opts.progress_mode == "auto" and opts.allow_download
    monkeypatch.setenv("PLMTRANSFER_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(OptionError, match="PLMTRANSFER_DATA: .*nowhere does not exist"):
        options_from_config(fake_config({}, {}, tmp_path, tmp_path))


def test_a_family_name_selects_each_task_of_that_dataset(tmp_path):
    """--plm-tasks scl selects what -k scl selects; a task id that is also a dataset stays one task."""
    opts = options_from_config(fake_config({"plm_tasks": "scl,gb1_sampled,bind"}, {}, tmp_path, tmp_path))
    assert opts.tasks == [
        "scl_balanced", "scl_human_hard", "scl_human_soft", "scl_mixed_hard", "scl_mixed_soft", "gb1_sampled", "bind",
    ]  # fmt: skip
    assert opts.tasks_chosen
    with pytest.raises(PlmTransferError, match=r"unknown task id 'sc'; .*; or a family: aav, bind, .*, scl, "):
        options_from_config(fake_config({"plm_tasks": "sc"}, {}, tmp_path, tmp_path))
