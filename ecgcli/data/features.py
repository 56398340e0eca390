"""Handcrafted ECG features: per-lead statistics, heart rate and RR variability, and wavelet
energies, computed for a whole batch of records at once.

This is the feature set of the handcrafted baseline (``features:logreg``/``features:forest``,
:mod:`ecgcli.train.features`). It adapts the "Wavelet+NN" model of the PTB-XL benchmark
(Strodthoff et al., "Deep Learning for ECG Analysis: Benchmarks and Insights from PTB-XL",
IEEE JBHI 2021), itself after Sharma et al. 2018 (multiscale wavelet energies/entropies and
statistics per lead, then a shallow classifier). What we adapted: a periodised db4 DWT per lead
(our own, below), per level the log energy and the share of the record's energy of the detail
coefficients; per-lead distribution statistics; and rhythm features from an R-peak detector.
The classifier on top is logistic regression or a random forest, not a small neural network.

Everything is vectorised over records: no Python loop runs per record. R peaks come from one
FFT band-pass (5-20 Hz) of every lead, the multi-lead energy of that, a running maximum
(``scipy.ndimage.maximum_filter1d``, one C call for the batch) and a threshold relative to each
record's own energy; RR statistics are grouped sums over the peak list (``np.bincount``).

Why our own DWT rather than PyWavelets: it is not in the environment, the transform needed is
eight strided multiply-adds per level, and exact agreement with another library does not
matter for a baseline (its orthonormality is tested: coefficient energy equals signal energy).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Bumped whenever a feature's definition changes (it keys the in-process feature cache).
FEATURES_VERSION = 1
STATISTICS = ("mean", "std", "min", "max", "p5", "p25", "p50", "p75", "p95", "skew", "kurtosis", "abs_diff")
RHYTHM = ("heart_rate", "rr_mean", "rr_std", "rr_min", "rr_max", "rmssd", "beats")
_PERCENTILES = (5, 25, 50, 75, 95)
_BAND_HZ = (5.0, 20.0)  # QRS energy band of the R-peak detector
_REFRACTORY_S = 0.25  # no two beats closer than this (240 bpm)
_THRESHOLD = 0.25  # a peak must reach this share of the record's 99th-percentile QRS energy
_EPS = 1e-12

# Daubechies 4 (8 taps) scaling filter; the wavelet filter is its quadrature mirror.
_DB4 = np.array(
    [
        0.23037781330885523,
        0.7148465705525415,
        0.6308807679295904,
        -0.02798376941698385,
        -0.18703481171888114,
        0.030841381835986965,
        0.032883011666982945,
        -0.010597401784997278,
    ]
)
_DB4_HI = np.array([(-1) ** k * _DB4[len(_DB4) - 1 - k] for k in range(len(_DB4))])


def dwt_levels(sampling_rate: int) -> int:
    """Levels so that the coarsest detail band starts near 1.5 Hz (5 at 100 Hz, 7 at 500 Hz)."""
    return max(1, int(np.floor(np.log2(sampling_rate / 3.0))))


def dwt_step(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One level of the periodised db4 DWT along the last axis: (approximation, detail).

    An odd length is made even by repeating the last sample."""
    if x.shape[-1] % 2:
        x = np.concatenate([x, x[..., -1:]], axis=-1)
    n, taps = x.shape[-1], len(_DB4)
    xp = np.concatenate([x, x[..., : taps - 1]], axis=-1)  # circular extension
    a = np.zeros(x.shape[:-1] + (n // 2,), dtype=x.dtype)
    d = np.zeros_like(a)
    for j in range(taps):  # eight strided multiply-adds for the whole batch
        s = xp[..., j : j + n : 2]
        a += _DB4[j] * s
        d += _DB4_HI[j] * s
    return a, d


def wavedec(x: np.ndarray, levels: int) -> list[np.ndarray]:
    """``[approximation, detail_levels, ..., detail_1]`` (PyWavelets' order) along the last axis."""
    details = []
    a = x
    for _ in range(levels):
        a, d = dwt_step(a)
        details.append(d)
    return [a, *details[::-1]]


def feature_names(leads: Sequence[str], sampling_rate: int) -> list[str]:
    """The name of every column :func:`extract_features` returns, in order."""
    levels = dwt_levels(sampling_rate)
    names = [f"{lead}_{s}" for lead in leads for s in STATISTICS]
    for lead in leads:
        for level in range(1, levels + 1):
            names += [f"{lead}_d{level}_log_energy", f"{lead}_d{level}_energy_share"]
        names.append(f"{lead}_a{levels}_log_energy")
    return names + list(RHYTHM)


def extract_features(x: np.ndarray, sampling_rate: int) -> np.ndarray:
    """Features of a batch ``x`` (N, leads, T) in mV: (N, F) float64, columns named by
    :func:`feature_names`. Rhythm features of a record with fewer than two (three for RR
    variability) detected beats are NaN; the classifier imputes them."""
    x = np.asarray(x, dtype=np.float64)
    return np.concatenate(
        [lead_statistics(x), wavelet_features(x, sampling_rate), rhythm_features(x, sampling_rate)], axis=1
    )


def lead_statistics(x: np.ndarray) -> np.ndarray:
    """Per lead: mean, std, min, max, percentiles, skewness, excess kurtosis, mean |first
    difference|; (N, leads * 12), lead-major."""
    mean = x.mean(-1)
    centred = x - mean[..., None]
    c2 = centred * centred  # products, not ``**3``/``**4``: numpy's generic pow is many times slower
    var = c2.mean(-1)
    std = np.sqrt(var)
    flat = std <= _EPS  # a flat lead has skewness and kurtosis 0
    safe_var = np.where(flat, 1.0, var)
    skew = np.where(flat, 0.0, (c2 * centred).mean(-1) / (safe_var * np.sqrt(safe_var)))
    kurt = np.where(flat, 0.0, (c2 * c2).mean(-1) / safe_var**2 - 3.0)
    pct = np.moveaxis(np.percentile(x, _PERCENTILES, axis=-1), 0, -1)  # (N, L, 5)
    cols = [mean, std, x.min(-1), x.max(-1), *np.moveaxis(pct, -1, 0), skew, kurt]
    cols.append(np.abs(np.diff(x, axis=-1)).mean(-1))
    return np.stack(cols, axis=-1).reshape(len(x), -1)


def wavelet_features(x: np.ndarray, sampling_rate: int) -> np.ndarray:
    """Per lead and detail level (finest first): log energy and share of the total energy of
    the DWT coefficients, then the approximation's log energy; (N, leads * (2 * levels + 1))."""
    levels = dwt_levels(sampling_rate)
    x = x - x.mean(-1, keepdims=True)
    coeffs = wavedec(x, levels)
    energy = np.stack([(c * c).sum(-1) for c in coeffs], axis=-1)  # (N, L, levels+1), a first
    total = energy.sum(-1, keepdims=True) + _EPS
    detail = energy[..., :0:-1]  # d1 (finest) ... d_levels
    cols = np.stack([np.log(detail + _EPS), detail / total], axis=-1).reshape(*x.shape[:2], -1)
    approx = np.log(energy[..., :1] + _EPS)
    return np.concatenate([cols, approx], axis=-1).reshape(len(x), -1)


def r_peaks(x: np.ndarray, sampling_rate: int) -> np.ndarray:
    """Boolean (N, T): the R peaks of each record, from the energy of all its leads in the QRS
    band (a missed lead or an inverted one does not matter)."""
    from scipy.ndimage import maximum_filter1d

    n, _, t = x.shape
    spec = np.fft.rfft(x - x.mean(-1, keepdims=True), axis=-1)
    freq = np.fft.rfftfreq(t, 1.0 / sampling_rate)
    spec[..., (freq < _BAND_HZ[0]) | (freq > _BAND_HZ[1])] = 0
    energy = (np.fft.irfft(spec, n=t, axis=-1) ** 2).sum(1)  # (N, T)
    width = max(3, int(round(0.04 * sampling_rate)) | 1)  # 40 ms smoothing: one hump per QRS
    csum = np.cumsum(np.pad(energy, ((0, 0), (width // 2 + 1, width // 2))), axis=-1)
    energy = (csum[:, width:] - csum[:, :-width]) / width  # centred moving average
    window = int(round(2 * _REFRACTORY_S * sampling_rate)) | 1
    local = maximum_filter1d(energy, size=window, axis=-1, mode="constant", cval=-np.inf)
    threshold = _THRESHOLD * np.percentile(energy, 99, axis=-1, keepdims=True)
    left = np.concatenate([np.full((n, 1), -np.inf), energy[:, :-1]], axis=-1)
    return (energy >= local) & (energy > left) & (energy > threshold) & (threshold > _EPS)


def rhythm_features(x: np.ndarray, sampling_rate: int) -> np.ndarray:
    """Heart rate (bpm), RR mean, sd, min, max, RMSSD (s) and beat count: (N, 7)."""
    n = len(x)
    rec, pos = np.nonzero(r_peaks(x, sampling_rate))  # sorted by record, then time
    beats = np.bincount(rec, minlength=n).astype(np.float64)
    same = rec[1:] == rec[:-1]
    rr = (np.diff(pos) / sampling_rate)[same]
    rr_rec = rec[1:][same]
    count = np.bincount(rr_rec, minlength=n).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(rr_rec, rr, minlength=n) / count
        var = np.bincount(rr_rec, (rr - mean[rr_rec]) ** 2, minlength=n) / (count - 1)
        var[count < 2] = np.nan  # an sd needs two intervals
        rr_min = np.full(n, np.inf)
        rr_max = np.full(n, -np.inf)
        np.minimum.at(rr_min, rr_rec, rr)
        np.maximum.at(rr_max, rr_rec, rr)
        succ = rr_rec[1:] == rr_rec[:-1]
        d_rec = rr_rec[1:][succ]
        d2 = np.diff(rr)[succ] ** 2
        rmssd = np.sqrt(np.bincount(d_rec, d2, minlength=n) / np.bincount(d_rec, minlength=n))
        out = np.stack([60.0 / mean, mean, np.sqrt(var), rr_min, rr_max, rmssd, beats], axis=-1)
    out[~np.isfinite(out)] = np.nan
    return out
