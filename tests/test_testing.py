"""pytest_plmtransfer.testing: the toy adapter, and records shaped like the ones a run writes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from pytest_plmtransfer.results.records import LayerRecord, parse_record
from pytest_plmtransfer.testing import ToyAdapter, collect_embeddings, layer_record, synthetic_records

REPO = Path(__file__).resolve().parents[1]
SEQS = ["ACDE", "MKV", "WYYWA"]


def test_toy_adapter_is_deterministic_and_its_inits_differ_as_documented():
    pre = ToyAdapter("pretrained")
    again = collect_embeddings(ToyAdapter("pretrained"), SEQS, [0, 2], per_residue=True)
    first = collect_embeddings(pre, SEQS, [0, 2], per_residue=True)
    assert [a.shape for a in first[2]] == [(4, 8), (3, 8), (5, 8)]
    assert all(np.array_equal(a, b) for a, b in zip(first[2], again[2]))
    stat = ToyAdapter("stat", 0)
    assert sorted(stat.table.ravel()) == sorted(pre.table.ravel())  # the same values, moved
    assert not np.array_equal(stat.table, pre.table)
    ids = {a.identity()["weights_sha256"] for a in (pre, stat, ToyAdapter("random", 0), ToyAdapter("random", 1))}
    assert len(ids) == 4  # the identity follows the weights: no stale cache hits
    pooled = collect_embeddings(pre, SEQS, [1], per_residue=False)[1]
    np.testing.assert_allclose(pooled[1], collect_embeddings(pre, SEQS, [1], per_residue=True)[1][1].mean(0), rtol=1e-6)


def test_layer_record_has_the_fields_a_run_writes():
    rec = layer_record("m", "gb1_sampled", 1, "random", 42, {"test_spearman": 0.5}, num_layers=2)
    typed = parse_record(rec)
    assert isinstance(typed, LayerRecord) and typed.extra == {}  # nothing outside the real schema
    assert rec["data"]["archive"] == "splits/gb1/splits.zip" and rec["data"]["member"]
    assert set(rec["machine"]) == {"platform", "python", "cpu_count", "torch_threads", "cuda"}
    assert rec["weights"]["model"] == "m" and re.fullmatch(r"[0-9a-f]{64}", rec["weights"]["weights_sha256"])
    assert rec["requested"] == {"device": "auto", "dtype": "float32"}
    assert {r["model"] for r in synthetic_records(models={"onehot": 0, "x": 2})} == {"onehot", "x"}


def test_readme_example_runs():
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Testing adapters and claims", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    namespace["test_layers_differ"]()
