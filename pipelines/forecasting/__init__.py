"""Forecasting: series data, windows, scaling, training, search, backtest, conformal intervals, the Forecaster."""
