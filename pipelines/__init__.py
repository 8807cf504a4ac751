"""Data, windowing, scaling, training, backtesting, MLflow tracking and the registry."""
