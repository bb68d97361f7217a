"""--plm-head-* / ini head hyper-parameters: parsed, validated, and part of the result cache key."""

from __future__ import annotations

import pytest

from pytest_plmtransfer.measure.head_options import parse_head_options


def _getter(values: dict[str, object]):
    return lambda name: values.get(name)


def test_only_set_options_are_returned_as_probe_settings_fields():
    got = parse_head_options(_getter({"head_epochs": "7", "head_lr": "3e-4", "head_alphas": "0.1, 1,10"}))
    assert got == {"max_epochs": 7, "lr": 3e-4, "alphas": [0.1, 1.0, 10.0]}
    assert parse_head_options(_getter({})) == {}
    assert parse_head_options(_getter({"head_batch_size": "512", "head_patience": "2"})) == {
        "batch_size": 512,
        "patience": 2,
    }


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("head_epochs", "0", "--plm-head-epochs: must be at least 1"),
        ("head_patience", "two", "--plm-head-patience: 'two' is not a whole number"),
        ("head_lr", "-1", "--plm-head-lr: must be a finite number > 0"),
        ("head_alphas", "1,nan", "--plm-head-alphas: must be a finite number > 0"),
        ("head_alphas", " , ", "--plm-head-alphas: give at least one penalty"),
    ],
)
def test_bad_values_name_the_option(key, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parse_head_options(_getter({key: value}))


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
