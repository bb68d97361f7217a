"""--plm-head-* / ini head hyper-parameters: parsed, validated, and part of the result cache key."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import pytest

from pytest_plmtransfer.measure.probe import ProbeSettings
from pytest_plmtransfer.options import HEAD_OPTIONS, OPTIONS, OptionError, options_from_config


def _head(cli: dict[str, object], ini: dict[str, object] | None = None) -> dict[str, object]:
    """``PlmOptions.head`` from these command-line values (``plm_head_*``) and ini keys."""
    config = SimpleNamespace(
        getoption=lambda name, default=None: cli.get(name, default),
        getini=lambda name: (ini or {}).get(name, ""),
        rootpath=Path("/root"),
        invocation_params=SimpleNamespace(dir=Path("/here")),
    )
    return options_from_config(config).head


def test_only_set_options_are_returned_as_probe_settings_fields():
    got = _head({"plm_head_epochs": "7", "plm_head_lr": "3e-4", "plm_head_alphas": "0.1, 1,10"})
    assert got == {"max_epochs": 7, "lr": 3e-4, "alphas": [0.1, 1.0, 10.0]}
    assert _head({}) == {}
    assert _head({"plm_head_batch_size": "512"}, {"plm_head_patience": "2"}) == {"batch_size": 512, "patience": 2}


def test_head_options_are_options_like_the_others_after_attention():
    names = [o.name for o in OPTIONS]
    assert names[names.index("attention") + 1 : names.index("attention") + 6] == [o.name for o in HEAD_OPTIONS]
    settings = {f.name for f in fields(ProbeSettings)}
    assert all(o.head in settings and o.help and o.parse for o in HEAD_OPTIONS)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("head_epochs", "0", "--plm-head-epochs: '0' is not a positive integer"),
        ("head_patience", "two", "--plm-head-patience: 'two' is not a positive integer"),
        ("head_lr", "-1", "--plm-head-lr: '-1' is not a positive number"),
        ("head_alphas", "1,nan", "--plm-head-alphas: 'nan' is not a positive number"),
        ("head_alphas", " , ", "--plm-head-alphas: give at least one penalty"),
    ],
)
def test_bad_values_name_the_option(key, value, message):
    with pytest.raises(OptionError, match=message.replace("(", r"\(")):
        _head({f"plm_{key}": value})


def test_head_settings_change_the_result_cache_key(tmp_path):
    from pytest_plmtransfer.models.registry import builtin_registry
    from pytest_plmtransfer.options import PlmOptions
    from pytest_plmtransfer.run.stages import build_stages
    from pytest_plmtransfer.tasks.catalog import get_task

    class _Data:  # only what _result_key reads
        spec = get_task("gb1_sampled")
        sha256 = "x"

    def key(head):
        opts = PlmOptions(cache_dir=tmp_path, ledger=tmp_path / "l.json", device="cpu", head=head)
        runner = build_stages(opts, builtin_registry(), root=tmp_path, run_id="r").runner
        return runner.prober.result_key("emb", _Data(), 1, 0)

    assert key({}) == key({})
    assert key({"max_epochs": 3}) != key({})
