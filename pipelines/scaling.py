"""Scaling fitted on the training part only; saved with the model as plain numbers (no pickles)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Scaler:
    loc: float = 0.0
    scale: float = 1.0

    @classmethod
    def fit(cls, values: np.ndarray) -> "Scaler":
        values = np.asarray(values, dtype=np.float64)
        spread = float(values.std())
        return cls(float(values.mean()), spread if spread > 1e-12 else 1.0)

    def transform(self, values):
        return (np.asarray(values, dtype=np.float64) - self.loc) / self.scale

    def inverse(self, values):
        return np.asarray(values, dtype=np.float64) * self.scale + self.loc

    def to_dict(self) -> dict:
        return {"kind": "standard", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "Scaler":
        if data.get("kind") != "standard":
            raise ValueError(f"unknown scaler kind {data.get('kind')!r}; allowed: 'standard'")
        return cls(float(data["loc"]), float(data["scale"]))
