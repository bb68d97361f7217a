"""pytest-plmtransfer: layer-by-layer transfer of protein language models to FLIP tasks."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pytest-plmtransfer")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
