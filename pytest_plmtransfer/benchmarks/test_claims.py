"""The papers' findings as tests: one per claim in ``baselines/claims.json`` and selected
(model, task, init). Claims read the per-layer results (cached; nothing is refitted) and record
their outcome in the ledger. Expected failures are declared in the claims file, with a reason."""


def test_claim(plm_claim_outcome):
    assert plm_claim_outcome.passed, plm_claim_outcome.message
