"""Series -> supervised windows, like the classic ``convertToMatrix`` / ``format_data`` loops (``tests/pipelines/forecasting/test_windows.py`` keeps them as the reference) but vectorised and copy-free."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def to_windows(
    series: np.ndarray, lookback: int, horizon: int = 1, stride: int = 1, target: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Return read-only views ``X[n, lookback, features]`` and ``y[n, horizon]``.

    Window ``i`` reads ``series[i*stride : i*stride + lookback]`` and its targets are the next ``horizon``
    values of feature ``target``. A 1-D series is one feature. No window is copied.
    """
    if lookback < 1 or horizon < 1 or stride < 1:
        raise ValueError(f"lookback, horizon and stride must be >= 1; got {lookback}, {horizon}, {stride}")
    data = np.asarray(series)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2:
        raise ValueError(f"series must be 1-D or 2-D (time, features); got shape {data.shape}")
    n = (len(data) - lookback - horizon) // stride + 1
    if n < 1:
        raise ValueError(
            f"series has {len(data)} values; lookback {lookback} + horizon {horizon} needs at least {lookback + horizon}"
        )
    # sliding_window_view puts the window axis last: (n, features, lookback) -> (n, lookback, features)
    X = sliding_window_view(data[: len(data) - horizon], lookback, axis=0)[::stride][:n].transpose(0, 2, 1)
    y = sliding_window_view(data[lookback:, target], horizon)[::stride][:n]
    return X, y
