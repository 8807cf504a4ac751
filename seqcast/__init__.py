"""seqcast: recurrent-network forecasting, tracked in MLflow, served over REST."""

__version__ = "0.1.0"
