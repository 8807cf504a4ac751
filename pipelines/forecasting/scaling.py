"""Global preprocessing fitted on the training part only; saved with the model as plain numbers (no pickles).

``standard``: (x - mean) / std. ``log``: the same on log(x), for multiplicative seasonality and growth
(positive series only). Per-window normalisation lives inside the Keras model (models/preprocessing.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("standard", "log")


@dataclass(frozen=True)
class Scaler:
    loc: float = 0.0
    scale: float = 1.0
    kind: str = "standard"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown scaler kind {self.kind!r}; allowed: {', '.join(map(repr, KINDS))}")

    @classmethod
    def fit(cls, values: np.ndarray, kind: str = "standard") -> Scaler:
        values = cls(kind=kind)._forward(values)
        spread = float(values.std())
        return cls(float(values.mean()), spread if spread > 1e-12 else 1.0, kind)

    def outside_domain(self, values) -> np.ndarray:
        """Where ``values`` cannot be transformed (``log``: values <= 0), as a boolean mask."""
        values = np.asarray(values, dtype=np.float64)
        return values <= 0 if self.kind == "log" else np.zeros(values.shape, dtype=bool)

    def _forward(self, values) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if self.kind == "log":
            if self.outside_domain(values).any():
                raise ValueError(
                    f"this model log-transforms its input; history holds {int((values <= 0).sum())} value(s) <= 0 "
                    f"(smallest {values.min():g}); only positive values are allowed"
                )
            return np.log(values)
        return values

    def transform(self, values):
        return (self._forward(values) - self.loc) / self.scale

    def inverse(self, values):
        out = np.asarray(values, dtype=np.float64) * self.scale + self.loc
        return np.exp(np.minimum(out, 700.0)) if self.kind == "log" else out

    def to_dict(self) -> dict:
        return {"kind": self.kind, "loc": self.loc, "scale": self.scale}

    @classmethod
    def from_dict(cls, data: dict) -> Scaler:
        return cls(float(data["loc"]), float(data["scale"]), data.get("kind", "standard"))
