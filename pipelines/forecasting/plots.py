"""Run artifacts as PNGs: loss curves and forecast against actual with the training region shaded."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def loss_curve(history: dict[str, list[float]], title: str):
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in ("loss", "val_loss"):
        if key in history:
            ax.plot(np.arange(1, len(history[key]) + 1), history[key], label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (scaled)")
    ax.set_yscale("log")
    ax.set_title(title)
    if ax.lines:  # an untrained baseline has no curves
        ax.legend()
    fig.tight_layout()
    return fig


def forecast_vs_actual(values: np.ndarray, train_end: int, origins: list[int], forecasts: np.ndarray, title: str):
    fig, ax = plt.subplots(figsize=(10, 4))
    t = np.arange(len(values))
    ax.plot(t, values, color="black", lw=1, label="actual")
    ax.axvspan(0, train_end - 1, color="tab:blue", alpha=0.12, label="training region")
    for k, (origin, forecast) in enumerate(zip(origins, forecasts, strict=True)):
        ax.plot(
            np.arange(origin, origin + len(forecast)),
            forecast,
            color="tab:red",
            lw=1.5,
            label="forecast" if k == 0 else None,
        )
    ax.set_xlabel("t")
    ax.set_title(title)
    ax.legend(loc="best")
    fig.tight_layout()
    return fig
