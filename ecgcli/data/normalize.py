"""Per-lead standardisation fitted on training records, stored with every model.

One mean and one standard deviation per lead, over all training records and time steps. The
fit streams over the cache in chunks (float64 sums), so even 17,441 x 12 x 5000 samples need
little memory. Numpy only: ``ecg predict`` applies it without the training stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ecgcli.errors import CheckpointError

if TYPE_CHECKING:  # the cache imports pandas; `ecg predict` needs LeadNorm without it
    from ecgcli.data.cache import SignalStore

_CHUNK = 1024


@dataclass(frozen=True)
class LeadNorm:
    """``(x - mean) / std`` per lead; arrays of shape ``(12,)``."""

    mean: np.ndarray
    std: np.ndarray

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Normalise ``(..., 12, T)`` signals in mV (returns float32)."""
        return ((x - self.mean[:, None]) / self.std[:, None]).astype(np.float32)

    @classmethod
    def identity(cls, leads: int = 12) -> LeadNorm:
        """No-op normalisation (keeps millivolts)."""
        return cls(np.zeros(leads, dtype=np.float32), np.ones(leads, dtype=np.float32))

    def subset(self, rows: list[int]) -> LeadNorm:
        """The statistics of some leads only (a reduced-lead model)."""
        return LeadNorm(self.mean[rows], self.std[rows])

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> LeadNorm:
        try:
            mean = np.asarray(d["mean"], dtype=np.float32)
            std = np.asarray(d["std"], dtype=np.float32)
        except (KeyError, TypeError, ValueError):
            raise CheckpointError("checkpoint normalisation is malformed") from None
        if mean.shape != std.shape or mean.ndim != 1 or not (std > 0).all():
            raise CheckpointError("checkpoint normalisation is malformed")
        return cls(mean, std)


def fit_lead_norm(store: SignalStore, rows: np.ndarray) -> LeadNorm:
    """Mean and std per lead over ``rows`` of the cache (all time steps)."""
    rows = np.sort(np.asarray(rows))
    total = np.zeros(store.signals.shape[1])
    total_sq = np.zeros_like(total)
    count = 0
    for s in range(0, len(rows), _CHUNK):
        x = store.get(rows[s : s + _CHUNK]).astype(np.float64)
        total += x.sum(axis=(0, 2))
        total_sq += np.square(x).sum(axis=(0, 2))
        count += x.shape[0] * x.shape[2]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    std = np.where(std > 1e-6, std, 1.0)  # a flat lead must not divide by zero
    return LeadNorm(mean.astype(np.float32), std.astype(np.float32))
