"""Statistical baselines every network must beat: naive, seasonal naive and drift (batched like the networks)."""

from __future__ import annotations

import numpy as np


def naive(histories, horizon: int, season: int | None = None) -> np.ndarray:
    return np.stack([np.full(horizon, np.asarray(h, dtype=float)[-1]) for h in histories])


def seasonal_naive(histories, horizon: int, season: int | None = None) -> np.ndarray:
    out = []
    for h in histories:
        h = np.asarray(h, dtype=float)
        m = season if season and len(h) >= season else 1
        last_season = h[-m:]
        out.append(np.resize(last_season, horizon))
    return np.stack(out)


def drift(histories, horizon: int, season: int | None = None) -> np.ndarray:
    out = []
    steps = np.arange(1, horizon + 1)
    for h in histories:
        h = np.asarray(h, dtype=float)
        slope = (h[-1] - h[0]) / (len(h) - 1) if len(h) > 1 else 0.0
        out.append(h[-1] + slope * steps)
    return np.stack(out)


BASELINES = {"naive": naive, "seasonal_naive": seasonal_naive, "drift": drift}
