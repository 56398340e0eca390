"""How far predicted probabilities can be taken at face value, and temperature scaling.

Each class is a binary problem (multi-label), so calibration is reported per class:

- *expected calibration error* (ECE; Naeini et al. 2015, Guo et al. 2017): the records are
  put in ``N_BINS`` = 15 equal-width bins of predicted probability; ECE is the mean, weighted
  by bin size, of ``|fraction of positives - mean predicted probability|`` over the bins;
- *Brier score* (Brier 1950): the mean squared difference between probability and label;
- the *reliability diagram* data: per bin, its size, mean predicted probability and
  fraction of positives (empty bins are None), drawn by ``ecg compare --plots``.

*Temperature scaling* (Guo et al. 2017, "On calibration of modern neural networks"), one
temperature per class: ``p = sigmoid(z / T_c)`` for each window's logit ``z``, ``T_c``
minimising the negative log-likelihood of the validation labels (fold 9) of the record
probabilities (the mean over a record's windows, as predict aggregates). A monotone map per
class: it leaves AUROC unchanged for one-window records and moves only how confident the
probabilities are. The fit is a golden-section search on ``log T`` in [1/20, 20], all classes
at once (the NLL of a single temperature is unimodal), vectorised over records and classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

N_BINS = 15
T_RANGE = (0.05, 20.0)
_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0
_EPS = 1e-7


def _bins(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of each probability: ``[0, 1/n), [1/n, 2/n), ..., [(n-1)/n, 1]``."""
    return np.minimum((np.asarray(p) * n_bins).astype(np.int64), n_bins - 1)


def reliability(y: np.ndarray, p: np.ndarray, n_bins: int = N_BINS) -> tuple[np.ndarray, ...]:
    """Per class and bin: ``(count, mean probability, fraction positive)``, each ``(C, n_bins)``;
    the means are NaN in an empty bin. One bincount over (class, bin) pairs, no loop."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    n_cls = p.shape[1]
    key = (np.arange(n_cls)[None, :] * n_bins + _bins(p, n_bins)).ravel()
    size = n_cls * n_bins
    count = np.bincount(key, minlength=size).reshape(n_cls, n_bins).astype(np.float64)
    sum_p = np.bincount(key, weights=p.ravel(), minlength=size).reshape(n_cls, n_bins)
    sum_y = np.bincount(key, weights=y.ravel(), minlength=size).reshape(n_cls, n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return count, sum_p / count, sum_y / count


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """ECE per class, ``(C,)`` (NaN when there are no records)."""
    count, conf, frac = reliability(y, p, n_bins)
    total = count.sum(axis=1)
    gap = np.where(count > 0, np.abs(frac - conf), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (count * gap).sum(axis=1) / total


def brier_score(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Brier score per class, ``(C,)``."""
    return np.mean((np.asarray(p, dtype=np.float64) - np.asarray(y, dtype=np.float64)) ** 2, axis=0)


def calibration_report(
    y: np.ndarray, p: np.ndarray, class_names: Sequence[str], n_bins: int = N_BINS
) -> dict[str, Any]:
    """ECE, Brier score and reliability-diagram data per class, plus their macro means
    (JSON-ready; an empty bin's means are None)."""
    count, conf, frac = reliability(y, p, n_bins)
    ece = expected_calibration_error(y, p, n_bins)
    brier = brier_score(y, p)

    def listed(a: np.ndarray) -> list[float | None]:
        return [float(v) if np.isfinite(v) else None for v in a]

    return {
        "n_bins": n_bins,
        "ece": {c: float(v) for c, v in zip(class_names, ece, strict=True)},
        "brier": {c: float(v) for c, v in zip(class_names, brier, strict=True)},
        "macro_ece": float(np.nanmean(ece)) if np.isfinite(ece).any() else None,
        "macro_brier": float(np.mean(brier)),
        "reliability": {
            c: {
                "count": count[i].astype(int).tolist(),
                "mean_probability": listed(conf[i]),
                "fraction_positive": listed(frac[i]),
            }
            for i, c in enumerate(class_names)
        },
    }


def _as_windows(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    return z[:, None, :] if z.ndim == 2 else z


def apply_temperature(
    logits: np.ndarray, temperature: np.ndarray | float, aggregate: str = "mean"
) -> np.ndarray:
    """Record probabilities ``(N, C)`` from window logits ``(N, K, C)`` (or ``(N, C)``):
    ``sigmoid(z / T)`` per window, then the mean (or max) over a record's windows."""
    z = _as_windows(logits) / np.asarray(temperature, dtype=np.float64)
    p = 1.0 / (1.0 + np.exp(-z))
    return p.max(axis=1) if aggregate == "max" else p.mean(axis=1)


def _nll(logits: np.ndarray, y: np.ndarray, temperature: np.ndarray, aggregate: str = "mean") -> np.ndarray:
    """Mean negative log-likelihood per class at per-class ``temperature``."""
    p = np.clip(apply_temperature(logits, temperature, aggregate), _EPS, 1 - _EPS)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p)).mean(axis=0)


def fit_temperature(
    logits: np.ndarray, y: np.ndarray, iterations: int = 60, aggregate: str = "mean"
) -> np.ndarray:
    """One temperature per class minimising the NLL of ``y`` (validation labels, ``(N, C)``)
    given window logits ``(N, K, C)`` or ``(N, C)``; ``(C,)``. A class without both
    positives and negatives keeps T = 1 (nothing to fit)."""
    z = _as_windows(logits)
    y = np.asarray(y, dtype=np.float64)
    lo = np.full(z.shape[2], np.log(T_RANGE[0]))
    hi = np.full(z.shape[2], np.log(T_RANGE[1]))
    a = hi - _GOLDEN * (hi - lo)
    b = lo + _GOLDEN * (hi - lo)
    fa, fb = _nll(z, y, np.exp(a), aggregate), _nll(z, y, np.exp(b), aggregate)
    for _ in range(iterations):  # each step shrinks every class's bracket by the golden ratio
        left = fa < fb
        hi = np.where(left, b, hi)
        lo = np.where(left, lo, a)
        a_new = hi - _GOLDEN * (hi - lo)
        b_new = lo + _GOLDEN * (hi - lo)
        # the kept point is reused; only the new one is evaluated (for all classes at once)
        probe = np.where(left, a_new, b_new)
        fp = _nll(z, y, np.exp(probe), aggregate)
        fb, fa = np.where(left, fa, fp), np.where(left, fp, fb)
        b, a = np.where(left, a, b_new), np.where(left, a_new, b)
    t = np.exp((lo + hi) / 2)
    informative = (y.sum(axis=0) > 0) & (y.sum(axis=0) < len(y))
    return np.where(informative, t, 1.0)


__all__ = [
    "N_BINS",
    "apply_temperature",
    "brier_score",
    "calibration_report",
    "expected_calibration_error",
    "fit_temperature",
    "reliability",
]
