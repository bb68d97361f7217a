"""The benchmark suite, shipped with the package so that it runs from any repository:

    pytest --pyargs pytest_plmtransfer.benchmarks --plm-models onehot

or from a module of your own that imports its tests (what ``plmtransfer init`` scaffolds, and what
this repository's ``benchmarks/`` does)::

    from pytest_plmtransfer.benchmarks.test_layers import test_layer  # noqa: F401
    from pytest_plmtransfer.benchmarks.test_claims import test_claim  # noqa: F401

Claims and stored baselines come from ``--plm-baselines-dir`` (default ``baselines/``) over the
shipped defaults (see ``pytest_plmtransfer.judge.defaults``).
"""
