"""The claims (``baselines/claims.json``), from the suite shipped in the package."""

from pytest_plmtransfer.benchmarks.test_claims import test_claim  # noqa: F401
