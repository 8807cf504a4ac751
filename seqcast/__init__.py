"""seqcast: recurrent-network forecasting, tracked in MLflow, served over REST."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("seqcast")  # pyproject.toml's, as installed: the one place the version is written
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
