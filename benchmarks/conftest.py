"""``pytest benchmarks`` runs the suite shipped in the package (see ``test_layers.py``).

Users register their own models in a conftest or through the ``plmtransfer.models`` entry point:

    def pytest_plmtransfer_register_models(registry):
        registry.register("my_plm", my_factory)

In this repository ``baselines/`` is a link to the shipped defaults
(``pytest_plmtransfer/judge/baselines_default``), so ``--plm-update-baselines`` here refreshes them.
"""
