"""Run artifacts of the image classifier as PNGs: training curves, confusion matrix, misclassified test images,
and the learning-rate x L2 accuracy heatmaps of a grid search."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def training_curves(history: dict[str, list[float]], title: str):
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax in (("loss", loss_ax), ("val_loss", loss_ax), ("accuracy", acc_ax), ("val_accuracy", acc_ax)):
        if key in history:
            ax.plot(np.arange(1, len(history[key]) + 1), history[key], label=key)
    loss_ax.set_ylabel("cross-entropy")
    acc_ax.set_ylabel("accuracy")
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrix(matrix: np.ndarray, labels, title: str):
    n = len(labels)
    size = min(12, 2 + 0.5 * n)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=90 if n > 12 else 0)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        high = matrix.max() / 2 if matrix.size else 0
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    str(int(matrix[i, j])),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if matrix[i, j] > high else "black",
                )
    ax.set_title(title)
    fig.tight_layout()
    return fig


def misclassified(
    images: np.ndarray, true: list[str], predicted: list[str], probabilities: list[float], title: str, limit: int = 36
):
    """Up to ``limit`` misclassified test images (normalised ``[N, H, W, C]``), each titled true -> predicted (p)."""
    shown = min(limit, len(images))
    cols = max(1, min(6, shown))
    rows = max(1, int(np.ceil(shown / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(1.8 * cols, 2.0 * rows + 0.6), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= shown:
            continue
        image = np.clip(images[k], 0, 1)
        ax.imshow(
            image[..., 0] if image.shape[-1] == 1 else image,
            cmap="gray" if image.shape[-1] == 1 else None,
            vmin=0,
            vmax=1,
        )
        ax.set_title(f"{true[k]} -> {predicted[k]} ({probabilities[k]:.2f})", fontsize=8)
    if shown == 0:
        axes[0, 0].text(0.5, 0.5, "no misclassified test images", ha="center", va="center")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def accuracy_heatmap(accuracy: np.ndarray, etas, lambdas, title: str):
    """The grid plot: rows eta (learning rate), columns lambda (L2), annotated with the accuracy."""
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(lambdas), 1.4 + 0.8 * len(etas)))
    image = ax.imshow(accuracy, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(lambdas)), [f"{v:g}" for v in lambdas])
    ax.set_yticks(range(len(etas)), [f"{v:g}" for v in etas])
    ax.set_xlabel("lambda (L2)")
    ax.set_ylabel("eta (learning rate)")
    for i in range(len(etas)):
        for j in range(len(lambdas)):
            ax.text(
                j,
                i,
                f"{accuracy[i, j]:.3f}",
                ha="center",
                va="center",
                color="black" if accuracy[i, j] > 0.6 else "white",
            )
    fig.colorbar(image, ax=ax)
    ax.set_title(title)
    fig.tight_layout()
    return fig
