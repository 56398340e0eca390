"""Metrics against scikit-learn and brute force."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from ecgcli.scoring.metrics import compute_metrics, tune_thresholds


def _data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 5)) < 0.3).astype(int)
    prob = np.clip(0.35 * y + rng.random((n, 5)) * 0.7, 0, 1)
    return y, prob


def test_against_sklearn() -> None:
    y, prob = _data()
    m = compute_metrics(y, prob, 0.5)
    assert m.macro_auroc == pytest.approx(roc_auc_score(y, prob, average="macro"))
    assert m.macro_f1 == pytest.approx(f1_score(y, prob >= 0.5, average="macro"))
    pred = prob >= 0.5
    assert m.sensitivity == pytest.approx((pred & (y == 1)).sum() / (y == 1).sum())
    assert m.specificity == pytest.approx((~pred & (y == 0)).sum() / (y == 0).sum())
    assert m.per_class["MI"].support == y[:, 1].sum()


def test_tuned_thresholds_maximise_f1() -> None:
    y, prob = _data(seed=3)
    thr = tune_thresholds(y, prob)
    for c in range(5):
        best = max(f1_score(y[:, c], prob[:, c] >= t) for t in np.unique(prob[:, c]))
        assert f1_score(y[:, c], prob[:, c] >= thr[c]) == pytest.approx(best)
    tuned = compute_metrics(y, prob, thr)
    assert tuned.macro_f1 >= compute_metrics(y, prob, 0.5).macro_f1


def test_absent_class_is_skipped_not_zero() -> None:
    y, prob = _data()
    y[:, 4] = 0
    m = compute_metrics(y, prob)
    assert np.isnan(m.per_class["CD"].auroc)
    assert m.macro_auroc == pytest.approx(roc_auc_score(y[:, :4], prob[:, :4], average="macro"))
    assert tune_thresholds(y, prob)[4] == 0.5


def test_auprc_and_fmax_on_fixed_inputs() -> None:
    from sklearn.metrics import average_precision_score

    from ecgcli.scoring.metrics import fmax_threshold, sample_f_curve

    y = np.array([[1, 0], [1, 1], [0, 1], [0, 0], [1, 0]])
    p = np.array([[0.9, 0.2], [0.6, 0.7], [0.3, 0.8], [0.4, 0.1], [0.35, 0.6]])
    m = compute_metrics(y, p, class_names=("A", "B"))
    ap = [average_precision_score(y[:, c], p[:, c]) for c in range(2)]
    assert m.per_class["A"].auprc == pytest.approx(ap[0]) and m.macro_auprc == pytest.approx(np.mean(ap))
    # at t = 0.5: predicted sets {A}, {A,B}, {B}, {}, {B}; per-record precision over the four
    # records with a prediction: 1, 1, 1, 0 -> 0.75; recall over the five: 1, 1, 1, 0, 0 -> 0.6
    f = sample_f_curve(y, p, np.array([0.5]))[0]
    assert f == pytest.approx(2 * 0.75 * 0.6 / (0.75 + 0.6))
    assert m.fmax >= f and m.fmax == pytest.approx(sample_f_curve(y, p).max())
    # the honest Fmax scores the test fold at a threshold chosen elsewhere
    t = fmax_threshold(y, p)
    honest = compute_metrics(y, p, class_names=("A", "B"), sample_threshold=t)
    assert honest.sample_threshold == t and honest.sample_f1 == pytest.approx(m.fmax)
