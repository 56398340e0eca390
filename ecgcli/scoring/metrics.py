"""Classification metrics on probabilities: AUROC, F1, sensitivity, specificity, thresholds.

Conventions (stated in every report):
- *macro* AUROC and F1 average the per-class values over the classes present;
- *sensitivity* and *specificity* are micro-averaged: true positives, false negatives, true
  negatives and false positives pooled over all classes and records;
- thresholds are tuned per class on the validation fold (fold 9) to maximise that class's F1,
  then applied unchanged to the test fold (fold 10).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_auc_score

from ecgcli import SUPERCLASSES


@dataclass
class ClassMetrics:
    auroc: float
    f1: float
    sensitivity: float
    specificity: float
    precision: float
    support: int
    threshold: float


@dataclass
class Metrics:
    """Scores of one set of predictions at one set of thresholds."""

    macro_auroc: float
    macro_f1: float
    sensitivity: float
    specificity: float
    n: int
    thresholds: list[float]
    per_class: dict[str, ClassMetrics] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Metrics:
        """Inverse of :meth:`to_dict` (e.g. scores read back from a run's metrics.json)."""
        per_class = {name: ClassMetrics(**c) for name, c in d.get("per_class", {}).items()}
        return cls(**{**d, "per_class": per_class})


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def class_aurocs(y: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """Per-class AUROC; NaN for a class with only positives or only negatives."""
    out = np.full(y.shape[1], np.nan)
    for c in range(y.shape[1]):
        if 0 < y[:, c].sum() < len(y):
            out[c] = roc_auc_score(y[:, c], prob[:, c])
    return out


def compute_metrics(
    y: np.ndarray,
    prob: np.ndarray,
    thresholds: np.ndarray | float = 0.5,
    class_names: tuple[str, ...] = SUPERCLASSES,
) -> Metrics:
    """All scores of ``prob`` against multi-hot ``y`` at the given per-class thresholds."""
    y = np.asarray(y).astype(bool)
    prob = np.asarray(prob, dtype=np.float64)
    thr = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (y.shape[1],))
    pred = prob >= thr
    tp = (pred & y).sum(axis=0).astype(np.float64)
    fp = (pred & ~y).sum(axis=0).astype(np.float64)
    fn = (~pred & y).sum(axis=0).astype(np.float64)
    tn = (~pred & ~y).sum(axis=0).astype(np.float64)
    f1 = _safe_div(2 * tp, 2 * tp + fp + fn)
    sens = _safe_div(tp, tp + fn)
    spec = _safe_div(tn, tn + fp)
    precision = _safe_div(tp, tp + fp)
    aurocs = class_aurocs(y, prob)
    present = y.sum(axis=0) > 0
    per_class = {
        name: ClassMetrics(
            auroc=float(aurocs[c]),
            f1=float(f1[c]),
            sensitivity=float(sens[c]),
            specificity=float(spec[c]),
            precision=float(precision[c]),
            support=int(y[:, c].sum()),
            threshold=float(thr[c]),
        )
        for c, name in enumerate(class_names)
    }
    return Metrics(
        macro_auroc=float(np.nanmean(aurocs)) if np.isfinite(aurocs).any() else float("nan"),
        macro_f1=float(f1[present].mean()) if present.any() else float("nan"),
        sensitivity=float(_safe_div(tp.sum(), tp.sum() + fn.sum())),
        specificity=float(_safe_div(tn.sum(), tn.sum() + fp.sum())),
        n=int(len(y)),
        thresholds=[float(t) for t in thr],
        per_class=per_class,
    )


def tune_thresholds(y: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """Per-class threshold maximising F1 on (validation) predictions; 0.5 if a class is absent."""
    out = np.full(y.shape[1], 0.5)
    for c in range(y.shape[1]):
        if y[:, c].sum() == 0:
            continue
        precision, recall, thr = precision_recall_curve(y[:, c], prob[:, c])
        f1 = _safe_div(2 * precision[:-1] * recall[:-1], precision[:-1] + recall[:-1])
        out[c] = float(thr[int(np.argmax(f1))])
    return out
