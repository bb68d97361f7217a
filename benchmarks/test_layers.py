"""The main job's layer tests. The suite ships in the package (``pytest_plmtransfer/benchmarks``)
so that it runs from any repository; this module only puts it under ``pytest benchmarks`` here."""

from pytest_plmtransfer.benchmarks.test_layers import test_layer  # noqa: F401
