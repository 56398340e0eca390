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


def test_a_class_the_model_cannot_pick_out_keeps_half_not_a_call_everywhere_threshold() -> None:
    """3 positives in 2,000 records, ranked below most negatives (PTB-XL's STE_ on fold 9): the
    F1-best threshold calls the class on ~90% of records; it keeps 0.5. A common class whose
    best threshold also calls most records (SR, 77% of records) keeps its tuned threshold, and
    so does a rare class the model does pick out."""
    rng = np.random.default_rng(0)
    n = 2000
    rare = np.zeros(n, int)
    rare[:3] = 1
    p_rare = rng.random(n) * 0.01
    p_rare[:3] = [0.0009, 0.0010, 0.0011]  # ranked below ~90% of the negatives
    common = (rng.random(n) < 0.77).astype(int)
    p_common = np.clip(0.5 * common + rng.random(n) * 0.6, 0, 1)
    found = np.zeros(n, int)
    found[:20] = 1
    p_found = np.where(found == 1, 0.3 + rng.random(n) * 0.5, rng.random(n) * 0.4)
    y, prob = np.stack([rare, common, found], 1), np.stack([p_rare, p_common, p_found], 1)
    best_rare = max(np.unique(p_rare), key=lambda t: f1_score(rare, p_rare >= t))
    assert (p_rare >= best_rare).mean() > 0.5  # the F1 optimum really is the degenerate one
    thr = tune_thresholds(y, prob)
    assert thr[0] == 0.5 and not (p_rare >= thr[0]).any()
    best_common = max(f1_score(common, p_common >= t) for t in np.unique(p_common))
    assert (p_common >= thr[1]).mean() > 0.5  # called on most records, as the class is common
    assert f1_score(common, p_common >= thr[1]) == pytest.approx(best_common)
    best_found = max(f1_score(found, p_found >= t) for t in np.unique(p_found))
    assert thr[2] != 0.5 and f1_score(found, p_found >= thr[2]) == pytest.approx(best_found)


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
