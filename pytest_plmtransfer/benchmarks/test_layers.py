"""The main job: one test per selected (model, task, layer, init[, seed]).

Each test embeds (or reuses cached embeddings of) the task's sequences, fits the task's linear
probe on the layer, and writes one record to the ledger. What is asserted here is that the
measurement is sound; scientific claims about the numbers live in ``test_claims.py``.
"""

import math


def test_layer(plm_layer_result):
    metrics = plm_layer_result["metrics"]
    headline = plm_layer_result["test_metric"]
    assert headline in metrics, f"probe did not report the task's test metric {headline}"
    assert math.isfinite(metrics[headline]), f"{headline} is not finite: {metrics[headline]}"
    sizes = plm_layer_result["split_sizes"]
    assert min(sizes.values()) > 0, f"a split is empty: {sizes}"
