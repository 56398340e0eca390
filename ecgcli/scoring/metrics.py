"""Classification metrics on probabilities: AUROC, AUPRC, F1, Fmax, sensitivity, specificity,
thresholds.

Conventions (stated in every report):
- *macro* AUROC, AUPRC and F1 average the per-class values over the classes present; AUPRC is
  average precision (the step-wise area under the precision-recall curve, as scikit-learn);
- *Fmax* is sample-centric, as the PTB-XL benchmark (Strodthoff et al. 2021) takes it from
  protein-function prediction (Radivojac et al. 2013): at one global threshold t, precision
  is averaged over the records with at least one predicted label, recall over all records,
  F(t) = 2PR / (P + R). The benchmark reports max over t of F(t) on the test fold itself
  (``fmax``: the threshold is chosen on the test labels, so it is optimistic); ours also
  reports F at the threshold that maximises F on fold 9 (``sample_f1`` of the tuned scores,
  the honest one) — thresholds 0.00, 0.01, ..., 1.00;
- *sensitivity* and *specificity* are micro-averaged: true positives, false negatives, true
  negatives and false positives pooled over all classes and records;
- thresholds are tuned per class on the validation fold (fold 9) to maximise that class's F1,
  then applied unchanged to the test fold (fold 10).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from ecgcli import SUPERCLASSES

#: The global thresholds Fmax is maximised over.
FMAX_THRESHOLDS = np.round(np.linspace(0.0, 1.0, 101), 2)


@dataclass
class ClassMetrics:
    auroc: float
    auprc: float
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
    macro_auprc: float = float("nan")
    fmax: float = float("nan")  # the benchmark's: best global threshold on these very labels
    sample_f1: float = float("nan")  # sample-centric F at ``sample_threshold``
    sample_threshold: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Metrics:
        """Inverse of :meth:`to_dict` (e.g. scores read back from a run's metrics.json)."""
        per_class = {
            name: ClassMetrics(**{"auprc": float("nan"), **c}) for name, c in d.get("per_class", {}).items()
        }
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


def class_auprcs(y: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """Per-class average precision; NaN for a class without positives."""
    out = np.full(y.shape[1], np.nan)
    for c in range(y.shape[1]):
        if y[:, c].sum() > 0:
            out[c] = average_precision_score(y[:, c], prob[:, c])
    return out


def sample_f_curve(y: np.ndarray, prob: np.ndarray, thresholds: np.ndarray = FMAX_THRESHOLDS) -> np.ndarray:
    """Sample-centric F(t) at each global threshold t (see the module doc), one vector op per
    threshold block: precision over records with a predicted label, recall over all records."""
    y = np.asarray(y).astype(bool)
    prob = np.asarray(prob, dtype=np.float64)
    prec_i, rec_i, has_pred = sample_pr(y, prob, np.asarray(thresholds, dtype=np.float64))
    n_pred = has_pred.sum(axis=0)
    precision = _safe_div(prec_i.sum(axis=0), n_pred.astype(np.float64))
    recall = rec_i.mean(axis=0) if len(y) else np.zeros(len(thresholds))
    return _safe_div(2 * precision * recall, precision + recall)


def sample_pr(y: np.ndarray, prob: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per record and threshold ``(N, T)``: precision (0 where nothing is predicted), recall
    (of the record's true labels; 0 for a record without labels) and whether any is predicted."""
    pred = prob[:, None, :] >= thresholds[None, :, None]  # (N, T, C)
    tp = (pred & y[:, None, :]).sum(axis=2).astype(np.float64)
    n_pred = pred.sum(axis=2).astype(np.float64)
    n_true = y.sum(axis=1).astype(np.float64)[:, None]
    return _safe_div(tp, n_pred), _safe_div(tp, np.broadcast_to(n_true, tp.shape)), n_pred > 0


def fmax_threshold(y: np.ndarray, prob: np.ndarray) -> float:
    """The global threshold that maximises sample-centric F on (validation) predictions."""
    curve = sample_f_curve(y, prob)
    return float(FMAX_THRESHOLDS[int(np.argmax(curve))])


def compute_metrics(
    y: np.ndarray,
    prob: np.ndarray,
    thresholds: np.ndarray | float = 0.5,
    class_names: tuple[str, ...] | None = None,
    sample_threshold: float = 0.5,
) -> Metrics:
    """All scores of ``prob`` against multi-hot ``y`` at the given per-class thresholds (and
    the sample-centric F at the global ``sample_threshold``)."""
    y = np.asarray(y).astype(bool)
    prob = np.asarray(prob, dtype=np.float64)
    if class_names is None:  # the superclasses, or the column numbers of another label set
        class_names = SUPERCLASSES if y.shape[1] == len(SUPERCLASSES) else tuple(map(str, range(y.shape[1])))
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
    auprcs = class_auprcs(y, prob)
    present = y.sum(axis=0) > 0
    curve = sample_f_curve(y, prob)
    per_class = {
        name: ClassMetrics(
            auroc=float(aurocs[c]),
            auprc=float(auprcs[c]),
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
        macro_auprc=float(np.nanmean(auprcs)) if np.isfinite(auprcs).any() else float("nan"),
        fmax=float(curve.max()) if len(y) else float("nan"),
        sample_f1=float(sample_f_curve(y, prob, np.array([sample_threshold]))[0]) if len(y) else float("nan"),
        sample_threshold=float(sample_threshold),
    )


def tune_thresholds(y: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """Per-class threshold maximising F1 on (validation) predictions; 0.5 if a class is absent,
    or if its best threshold is the degenerate "call it on every record" optimum.

    For a class the model cannot pick out, F1 is maximised by calling it nearly everywhere
    (Lipton, Elkan & Naryanaswamy 2014, "Optimal thresholding of classifiers to maximize F1"):
    with 3 positives among 2,000 records, a threshold near 0 wins with F1 0.003. Such a
    threshold (one that calls the class on more than 10% of the records, and on more than ten
    times as many as carry it: nine false calls or more for each true one) would make
    ``ecg predict`` report the class on many records that do not have it, so the class keeps
    0.5 instead. A common class (SR in 77% of records) is not affected."""
    n = len(y)
    out = np.full(y.shape[1], 0.5)
    for c in range(y.shape[1]):
        positives = int(y[:, c].sum())
        if positives == 0:
            continue
        precision, recall, thr = precision_recall_curve(y[:, c], prob[:, c])
        f1 = _safe_div(2 * precision[:-1] * recall[:-1], precision[:-1] + recall[:-1])
        best = float(thr[int(np.argmax(f1))])
        called = int((prob[:, c] >= best).sum())
        if not (10 * called > n and called > 10 * positives):
            out[c] = best
    return out
