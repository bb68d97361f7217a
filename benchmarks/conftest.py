"""The benchmark suite. Users register their own models here or through the entry point, e.g.:

    def pytest_plmtransfer_register_models(registry):
        registry.register("my_plm", my_factory)
"""
