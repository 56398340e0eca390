"""Synthetic PTB-XL for every task: labels match what the waveform shows, and every task learns.

Measurements are made the way a reader of the ECG would: R peaks from the summed slope of the
12 leads give rate and RR regularity; a median beat per record gives P, QRS and T amplitudes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import find_peaks

from ecgcli import TASKS
from ecgcli.data.cache import ensure_cache
from ecgcli.data.ptbxl import TEST_FOLD, load_ptbxl

FS = 100
BEFORE, AFTER = 30, 50  # median-beat window: 0.3 s before and 0.5 s after the R peak
UPRIGHT_T = [0, 1, 4, 5, 7, 8, 9, 10, 11]  # leads where a normal T is upright: not aVR, III, V1
PR_SEGMENT = slice(BEFORE - 7, BEFORE - 4)  # 70-40 ms before R: the isoelectric reference


def _beats(sig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R-peak sample positions and the median beat ``(12, 80)``, zero on the PR segment."""
    energy = np.abs(np.diff(sig, axis=1)).sum(axis=0)
    peaks, _ = find_peaks(energy, distance=int(0.27 * FS), height=0.35 * np.percentile(energy, 99))
    inner = peaks[(peaks >= BEFORE) & (peaks < sig.shape[1] - AFTER)]
    beat = np.median(np.stack([sig[:, p - BEFORE : p + AFTER] for p in inner]), axis=0)
    return peaks, beat - beat[:, PR_SEGMENT].mean(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def measured(synth_root: Path, session_cache: Path) -> dict[str, np.ndarray]:
    ds = load_ptbxl(synth_root)
    x = ensure_cache(ds, session_cache).get(np.arange(len(ds))).astype(np.float64)
    rate, irregular, spread, beats = [], [], [], []
    for sig in x:
        peaks, beat = _beats(sig)
        rr = np.diff(peaks) / FS
        rate.append(60.0 / np.median(rr))
        irregular.append(np.median(np.abs(np.diff(rr))) / np.median(rr))  # beat-to-beat jumps
        spread.append((np.percentile(rr, 90) - np.percentile(rr, 10)) / np.median(rr))
        beats.append(beat)
    return {
        "rate": np.array(rate),
        "irregular": np.array(irregular),
        "spread": np.array(spread),
        "beat": np.stack(beats),
    }


@pytest.fixture(scope="module")
def statements(synth_root: Path):
    ds = load_ptbxl(synth_root, task="all")
    return lambda code: ds.labels[:, ds.class_names.index(code)] == 1


def test_rhythm_statements_match_rate_and_rr(measured, statements) -> None:
    rate, irregular = measured["rate"], measured["irregular"]
    regular = ~statements("PVC")  # a premature beat breaks any rhythm's regularity
    sr = statements("SR") & regular
    assert sr.sum() > 100 and ((rate[sr] > 60) & (rate[sr] < 100)).all()
    assert (irregular[sr] < 0.08).all()
    assert statements("STACH").sum() >= 10 and (rate[statements("STACH")] > 100).all()
    assert statements("SBRAD").sum() >= 10 and (rate[statements("SBRAD")] < 60).all()
    afib = statements("AFIB")
    assert afib.sum() >= 10 and (irregular[afib] > 0.09).all()  # irregularly irregular
    sarrh = statements("SARRH") & regular
    # sinus arrhythmia: RR swings with breathing, far more than in sinus rhythm
    assert np.median(measured["spread"][sarrh]) > 2 * np.median(measured["spread"][sr])
    # every record has exactly one rhythm statement
    rhythms = np.stack([statements(c) for c in ("SR", "SBRAD", "STACH", "SARRH", "AFIB")])
    assert (rhythms.sum(axis=0) == 1).all()


def test_atrial_fibrillation_has_no_p_waves(measured, statements) -> None:
    p_wave = np.ptp(measured["beat"][:, 1, 10:23], axis=1)  # lead II, 0.2-0.08 s before R
    sinus = statements("SR") & ~statements("1AVB")
    assert np.median(p_wave[statements("AFIB")]) < 0.5 * np.median(p_wave[sinus])


def test_form_statements_match_the_waveform(measured, statements) -> None:
    beat = measured["beat"]
    limb_qrs = np.ptp(beat[:, :6, BEFORE - 6 : BEFORE + 8], axis=2).max(axis=1)
    lvolt = statements("LVOLT")
    assert lvolt.sum() >= 10 and (limb_qrs[lvolt] < 0.5).all()  # PTB-XL's low-voltage criterion
    assert np.percentile(limb_qrs[~lvolt], 5) > 0.5
    # the T wave peaks 0.3 s after R at 70 bpm and moves with the RR interval (QT ~ sqrt(RR))
    t_peak = BEFORE + np.round(30 * np.sqrt(60 / measured["rate"] / 0.857)).astype(int)
    window = t_peak[:, None] + np.arange(-6, 7)[None, :]
    t_wave = np.take_along_axis(beat[:, UPRIGHT_T], window[:, None, :], axis=2).mean(axis=2)
    inverted = (t_wave < -0.03).sum(axis=1)
    invt = statements("INVT")
    assert np.median(inverted[invt]) >= 2 and np.median(inverted[~invt]) == 0
    assert (inverted[invt] >= 1).mean() > 0.9


def test_subclasses_follow_the_territory_and_conduction(measured, statements) -> None:
    beat = measured["beat"]
    qrs = beat[:, :, BEFORE - 4 : BEFORE + 5].mean(axis=2)
    inferior, anterior, lateral = (
        qrs[:, [1, 2, 5]].mean(1),
        qrs[:, [6, 7, 8]].mean(1),
        qrs[:, [0, 4, 10, 11]].mean(1),
    )
    imi, asmi, lmi = statements("IMI"), statements("ASMI"), statements("LMI")
    # Q waves and lost R where the infarct is: each territory's QRS is lowest in its own MI
    assert np.median(inferior[imi]) < min(np.median(inferior[asmi]), np.median(inferior[lmi]))
    assert np.median(anterior[asmi]) < min(np.median(anterior[imi]), np.median(anterior[lmi]))
    assert np.median(lateral[lmi]) < min(np.median(lateral[imi]), np.median(lateral[asmi]))
    slope = np.abs(np.diff(beat, axis=2)).sum(axis=1)
    width = (slope > 0.3 * slope.max(axis=1, keepdims=True)).sum(axis=1)  # samples of fast QRS
    norm = statements("NORM")
    assert (
        np.median(width[statements("CLBBB")]) > np.median(width[statements("CRBBB")]) > np.median(width[norm])
    )


def _features(measured: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The median beat every 20 ms, and five rhythm numbers (given more weight: 480 beat
    samples would otherwise drown them in a regularised linear model)."""
    beat, rate = measured["beat"], measured["rate"]
    p_wave = np.ptp(beat[:, 1, 10:23], axis=1)
    rhythm = np.stack([rate, (rate - 80) ** 2, measured["irregular"], measured["spread"], p_wave], axis=1)
    x = np.concatenate([beat[:, :, ::2].reshape(len(beat), -1), rhythm], axis=1)
    weight = np.ones(x.shape[1])
    weight[-rhythm.shape[1] :] = 3.0
    return x, weight


@pytest.mark.parametrize("task", TASKS)
def test_every_task_is_learnable(task: str, synth_root: Path, measured) -> None:
    """A logistic regression on the median beat and five rhythm numbers, trained on folds 1-9
    of 300 records, is well above chance (macro AUROC 0.5) on fold 10 for every task."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    ds = load_ptbxl(synth_root, task=task)
    x, weight = _features(measured)
    train = ds.fold_rows(tuple(range(1, 10)))
    test = ds.fold_rows(TEST_FOLD)
    scaler = StandardScaler().fit(x[train])
    x_train, x_test = scaler.transform(x[train]) * weight, scaler.transform(x[test]) * weight
    aurocs = []
    for j, name in enumerate(ds.class_names):
        y = ds.labels[:, j]
        assert y[test].any() and not y[test].all(), f"{task}: {name} not scorable on fold 10"
        model = LogisticRegression(C=0.05, max_iter=300).fit(x_train, y[train])
        aurocs.append(roc_auc_score(y[test], model.decision_function(x_test)))
    print(f"{task}: macro AUROC {np.mean(aurocs):.3f} over {len(aurocs)} classes")  # shown by -rP
    assert np.mean(aurocs) > 0.8, dict(zip(ds.class_names, np.round(aurocs, 2), strict=True))


def test_every_class_of_every_task_in_every_part(synth_root: Path) -> None:
    """The 300-record test set can train and score every task: each class is in the 10%
    labelled fraction, fold 9 and fold 10 (the check trainers run before training)."""
    base = load_ptbxl(synth_root)
    sizes = {}
    for task in TASKS:
        ds = base.with_task(task)
        for fraction in (0.1, 1.0):
            ds.check_classes(ds.split(fraction, seed=0))
        sizes[task] = len(ds.class_names)
    assert sizes == {
        "superdiagnostic": 5,
        "subdiagnostic": 12,
        "diagnostic": 12,
        "form": 5,
        "rhythm": 5,
        "all": 20,
    }
