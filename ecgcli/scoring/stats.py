"""Statistics a reviewer accepts: seed summaries, paired comparisons, AUROC and its bootstrap CI.

Why this module exists: the previous system reported a "95% CI" as the 2.5/97.5 percentiles
of ten seed values. That is a (very noisy) interval for *one run*, not for the mean over runs.
Here the interval of a mean over seeds is Student's t interval, two configurations run on the
same seeds are compared with paired tests (a seed fixes the labelled subset, so runs pair up),
and the uncertainty of one run's test AUROC over test records comes from Efron's bootstrap.

Pure numpy/scipy on purpose: it is imported by reporting code that must not pull in torch.

Every result is a small frozen dataclass; ``to_dict()`` gives plain Python numbers for JSON,
with undefined values (NaN, and the infinite t of constant non-zero differences) as ``None``
because JSON has no NaN or infinity.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import special
from scipy import stats as sps

from ecgcli.errors import ConfigError
from ecgcli.files import json_safe

__all__ = [
    "BootstrapCI",
    "PairedComparison",
    "Summary",
    "bootstrap_auroc_ci",
    "macro_auroc",
    "paired_tests",
    "summarize",
]

ArrayLike = Sequence[float] | np.ndarray

#: Upper bound on elements of one (replicates x records) block in the bootstrap, so memory
#: stays around 100 MB whatever N and n_boot are (about 8 float64 arrays of this size live).
_BOOT_BLOCK_ELEMENTS = 1 << 21


class _ToDict:
    def to_dict(self) -> dict[str, Any]:
        """Plain Python numbers; NaN and infinities become ``None`` (JSON has neither)."""
        return json_safe(asdict(self))


@dataclass(frozen=True)
class Summary(_ToDict):
    """One metric of one configuration over n seeds."""

    mean: float
    std: float  # sample standard deviation (ddof=1); NaN when n == 1
    ci_low: float  # Student's t interval of the mean; NaN when n == 1
    ci_high: float
    min: float
    max: float
    n: int
    clipped: bool = False  # the t interval left the metric's range and was clipped to it


#: The range of every score we summarise (AUROC, AUPRC, F1, Fmax, sensitivity, specificity).
UNIT_INTERVAL = (0.0, 1.0)


@dataclass(frozen=True)
class PairedComparison(_ToDict):
    """New method ``b`` against baseline ``a`` on the same seeds; differences are ``b - a``."""

    n: int
    mean_diff: float
    diff_ci_low: float  # Student's t interval of the mean difference
    diff_ci_high: float
    t_stat: float  # paired t-test (Student 1908)
    t_p: float
    wilcoxon_stat: float  # Wilcoxon (1945) signed-rank test
    wilcoxon_p: float
    welch_t: float  # Welch (1947) unpaired t-test, as if the seeds were not paired
    welch_p: float
    cohens_dz: float  # mean(diff) / sd(diff): Cohen's d for paired samples
    hedges_g: float  # bias-corrected standardised mean difference, unpaired (Hedges 1981)


@dataclass(frozen=True)
class BootstrapCI(_ToDict):
    """Percentile bootstrap interval (Efron 1979) of a run's test macro AUROC."""

    estimate: float  # macro AUROC on the full test set
    ci_low: float
    ci_high: float
    n_boot: int  # replicates used (those that kept both labels of every class)


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")


def _as_1d(values: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be a flat list of numbers, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ConfigError(f"{name} contains NaN or infinite values")
    return arr


def _t_interval(x: np.ndarray, confidence: float) -> tuple[float, float, float, float]:
    """Mean, sample sd and Student's t interval ``mean ± t_{(1+c)/2, n-1} s / sqrt(n)``."""
    n = x.size
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    sd = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2.0, n - 1)) * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half


def summarize(
    values: ArrayLike, confidence: float = 0.95, bounds: tuple[float, float] | None = None
) -> Summary:
    """Mean over seeds with the Student's t confidence interval of that mean.

    With one value the spread is unknown, so ``std`` and the interval are NaN rather than a
    misleading zero width. No values at all is a configuration error.

    ``bounds``: the metric's range (:data:`UNIT_INTERVAL` for AUROC, F1, ...). The t interval
    assumes an unbounded normal mean; with two or three seeds it can reach past 1 (sensitivity
    ``[0.366, 1.169]`` over 2 seeds). It is then clipped to the range and ``clipped`` says so,
    so tables can mark it: such an interval is mostly a statement that n is too small.
    """
    _check_confidence(confidence)
    x = _as_1d(values, "values")
    if x.size == 0:
        raise ConfigError("cannot summarise an empty list of values")
    mean, sd, lo, hi = _t_interval(x, confidence)
    clipped = False
    if bounds is not None and math.isfinite(lo) and math.isfinite(hi):
        low, high = bounds
        clipped = lo < low or hi > high
        lo, hi = max(lo, low), min(hi, high)
    return Summary(mean, sd, lo, hi, float(x.min()), float(x.max()), int(x.size), clipped)


def _hedges_g(a: np.ndarray, b: np.ndarray) -> float:
    """(mean b - mean a) / pooled sd, times Hedges' exact small-sample correction J(df).

    J(df) = Γ(df/2) / (sqrt(df/2) Γ((df-1)/2)) with df = n_a + n_b - 2 (Hedges 1981); the
    usual 1 - 3/(4 df - 1) is its approximation and is poor for the few seeds we run.
    """
    df = a.size + b.size - 2
    pooled = ((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / df
    if pooled == 0.0:
        return math.nan
    j = math.exp(special.gammaln(df / 2) - special.gammaln((df - 1) / 2)) / math.sqrt(df / 2)
    return float(j * (b.mean() - a.mean()) / math.sqrt(pooled))


def paired_tests(a: ArrayLike, b: ArrayLike) -> PairedComparison:
    """Compare new method ``b`` with baseline ``a``, both evaluated on the same seeds.

    * paired t-test (Student) and its t interval of the mean difference;
    * Wilcoxon (1945) signed-rank test, zeros dropped as in Wilcoxon's original procedure
      (scipy's default ``zero_method="wilcox"``); when *every* difference is zero there is no
      evidence of a difference and scipy's result is version dependent, so we return
      statistic 0 and p = 1.0 ourselves;
    * Welch's (1947) unequal-variance t-test, which ignores the pairing: reported because
      readers ask for it, and because the gap between it and the paired test shows how much
      the pairing (shared labelled subsets) removes;
    * effect sizes: Cohen's d_z = mean(diff)/sd(diff) (paired) and Hedges' g (unpaired).

    With fewer than two pairs the tests and effect sizes are NaN, not an exception, so one
    seed still produces a report. Constant non-zero differences give t = ±inf, p = 0 (as
    scipy); d_z is then NaN because the spread it divides by is zero.
    """
    x = _as_1d(a, "baseline values")
    y = _as_1d(b, "new-method values")
    if x.size != y.size:
        raise ConfigError(f"paired comparison needs the same seeds on both sides, got {x.size} and {y.size}")
    n = int(x.size)
    nan = math.nan
    if n == 0:
        return PairedComparison(0, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan)
    diff = y - x
    mean_diff, sd_diff, lo, hi = _t_interval(diff, 0.95)
    if n < 2:
        return PairedComparison(n, mean_diff, lo, hi, nan, nan, nan, nan, nan, nan, nan, nan)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # scipy warns about zero variance ("catastrophic cancellation"); the values it
        # returns for that case (nan or ±inf) are the ones we document.
        warnings.simplefilter("ignore", RuntimeWarning)
        paired = sps.ttest_rel(y, x)
        welch = sps.ttest_ind(y, x, equal_var=False)
        if np.all(diff == 0.0):
            w_stat, w_p = 0.0, 1.0
        else:
            w = sps.wilcoxon(diff)
            w_stat, w_p = float(w.statistic), float(w.pvalue)
    dz = mean_diff / sd_diff if sd_diff > 0 else nan
    return PairedComparison(
        n=n,
        mean_diff=mean_diff,
        diff_ci_low=lo,
        diff_ci_high=hi,
        t_stat=float(paired.statistic),
        t_p=float(paired.pvalue),
        wilcoxon_stat=w_stat,
        wilcoxon_p=w_p,
        welch_t=float(welch.statistic),
        welch_p=float(welch.pvalue),
        cohens_dz=float(dz),
        hedges_g=_hedges_g(x, y),
    )


def _check_labels(y_true: np.ndarray | Sequence, y_score: np.ndarray | Sequence):
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if s.ndim == 1:
        s = s[:, None]
    if y.ndim != 2 or y.shape != s.shape:
        raise ConfigError(
            f"labels {np.shape(y_true)} and scores {np.shape(y_score)} must have one shape (N, C)"
        )
    if y.size and not np.isin(y, (0, 1)).all():
        raise ConfigError("labels must be 0 or 1")
    if not np.isfinite(s).all():
        raise ConfigError("scores contain NaN or infinite values")
    return y.astype(bool), s


def macro_auroc(y_true: np.ndarray | Sequence, y_score: np.ndarray | Sequence) -> float:
    """Macro-averaged AUROC over the classes that have both positive and negative records.

    AUROC is the Mann-Whitney U statistic scaled to [0, 1] (Hanley & McNeil 1982):
    (sum of positive ranks - P(P+1)/2) / (P N), with tied scores given their average rank,
    which counts a tied positive/negative pair as one half, exactly like the ROC trapezoid.
    A class without positives or without negatives has no AUROC and is left out of the
    average (sklearn would raise); NaN when no class qualifies.
    """
    y, s = _check_labels(y_true, y_score)
    ranks = sps.rankdata(s, axis=0, method="average")  # one sort per class, all classes at once
    pos = y.sum(axis=0).astype(np.float64)
    neg = y.shape[0] - pos
    ok = (pos > 0) & (neg > 0)
    if not ok.any():
        return math.nan
    u = (ranks * y).sum(axis=0) - pos * (pos + 1) / 2.0
    return float(np.mean(u[ok] / (pos[ok] * neg[ok])))


def _replicate_counts(idx: np.ndarray, n: int) -> np.ndarray:
    """How many times each record appears in each replicate: (B, n) from indices (B, n)."""
    b = idx.shape[0]
    flat = idx + (np.arange(b, dtype=np.int64) * n)[:, None]
    return np.bincount(flat.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def _macro_auroc_weighted(counts: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Macro AUROC of each replicate, given as record multiplicities ``counts`` (B, N).

    A bootstrap replicate is the original records, each repeated ``counts`` times, so its
    Mann-Whitney statistic is sum over positive i and negative j of w_i w_j [s_i > s_j]
    (+1/2 for ties). Sorting each class's scores *once* and grouping ties, that is
    sum over tie groups g of W+_g (W-_{<g} + W-_g / 2): cumulative sums over (B, groups),
    with no per-replicate sort. Identical to AUROC on the resampled rows, far cheaper.
    Classes absent from a replicate (no positives or no negatives) are skipped.
    """
    b = counts.shape[0]
    total = np.zeros(b)
    used = np.zeros(b)
    for c in range(y.shape[1]):  # a handful of classes; everything inside is over replicates
        order = np.argsort(s[:, c], kind="stable")
        sorted_scores = s[order, c]
        starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
        w = counts[:, order]
        is_pos = y[order, c]
        w_pos = np.add.reduceat(np.where(is_pos, w, 0.0), starts, axis=1)
        w_neg = np.add.reduceat(np.where(is_pos, 0.0, w), starts, axis=1)
        below = np.cumsum(w_neg, axis=1) - w_neg
        u = (w_pos * (below + 0.5 * w_neg)).sum(axis=1)
        den = w_pos.sum(axis=1) * w_neg.sum(axis=1)
        ok = den > 0
        total[ok] += u[ok] / den[ok]
        used += ok
    out = np.full(b, np.nan)
    np.divide(total, used, out=out, where=used > 0)
    return out


def _macro_auprc_weighted(counts: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Macro average precision of each replicate (record multiplicities ``counts`` (B, N)).

    Average precision sums, over the distinct scores from the highest down, the recall gained
    there times the precision at that threshold (scikit-learn's definition). With each class's
    scores sorted once and ties grouped, both are cumulative sums over (B, groups) of the
    replicate's weights. Classes without positives in a replicate are skipped.
    """
    b = counts.shape[0]
    total = np.zeros(b)
    used = np.zeros(b)
    for c in range(y.shape[1]):
        order = np.argsort(-s[:, c], kind="stable")
        sorted_scores = s[order, c]
        starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
        w = counts[:, order]
        w_pos = np.add.reduceat(np.where(y[order, c], w, 0.0), starts, axis=1)
        w_all = np.add.reduceat(w, starts, axis=1)
        precision = np.cumsum(w_pos, axis=1) / np.maximum(np.cumsum(w_all, axis=1), 1e-300)
        positives = w_pos.sum(axis=1)
        ok = positives > 0
        total[ok] += (w_pos * precision).sum(axis=1)[ok] / positives[ok]
        used += ok
    out = np.full(b, np.nan)
    np.divide(total, used, out=out, where=used > 0)
    return out


def _sample_f_weighted(counts: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Sample-centric F(t) of each replicate at every threshold of
    :data:`~ecgcli.scoring.metrics.FMAX_THRESHOLDS`: (B, T), from per-record precision and
    recall computed once and averaged with the replicate's weights (two matrix products)."""
    from ecgcli.scoring.metrics import FMAX_THRESHOLDS, sample_pr

    prec_i, rec_i, has_pred = sample_pr(y, s, FMAX_THRESHOLDS)
    precision = (counts @ prec_i) / np.maximum(counts @ has_pred.astype(np.float64), 1e-300)
    recall = (counts @ rec_i) / counts.sum(axis=1, keepdims=True)
    den = precision + recall
    return np.divide(2 * precision * recall, den, out=np.zeros_like(den), where=den > 0)


def _fmax_at(threshold: float) -> Any:
    """Replicate F at one global threshold (the one chosen on fold 9: the honest Fmax)."""
    from ecgcli.scoring.metrics import FMAX_THRESHOLDS

    col = int(np.argmin(np.abs(FMAX_THRESHOLDS - threshold)))
    return lambda counts, y, s: _sample_f_weighted(counts, y, s)[:, col]


def _fmax_best(counts: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Replicate Fmax as the benchmark defines it (best threshold on the replicate itself)."""
    return _sample_f_weighted(counts, y, s).max(axis=1)


#: Metrics :func:`bootstrap_ci` resamples, and the replicates and seed runs record.
BOOTSTRAP_METRICS = ("auroc", "auprc", "fmax", "fmax_bench")
BOOTSTRAP_REPLICATES = 1000
BOOTSTRAP_SEED = 0
#: Draws allowed per replicate asked for, before :func:`bootstrap_ci` settles for fewer
#: replicates: enough for a test set where 1 draw in 50 keeps every class (the 71-statement
#: task keeps 1 in 9), bounded so a class with a single positive in a tiny set cannot loop.
MAX_DRAWS_PER_REPLICATE = 50
#: How replicates are drawn, stored beside each interval (:func:`test_bootstraps`).
BOOTSTRAP_RESAMPLE = "records, redrawn until every class keeps both labels"


def _replicate_blocks(y: np.ndarray, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """The bootstrap replicates of :func:`bootstrap_ci`, as blocks of record multiplicities
    (B, N): drawn block by block from one seeded stream (the same indices as one (n_boot, N)
    draw when every draw qualifies), keeping only draws in which every class that has both
    labels in the test set has both too, until ``n_boot`` are kept or the draw limit is hit."""
    n = y.shape[0]
    rng = np.random.default_rng(seed)
    block = max(1, _BOOT_BLOCK_ELEMENTS // n)
    pos = y.sum(axis=0)
    yf = y[:, (pos > 0) & (pos < n)].astype(np.float64)
    found = drawn = 0
    limit = MAX_DRAWS_PER_REPLICATE * n_boot
    while found < n_boot and drawn < limit:
        # as many draws as should yield the replicates still wanted, at the rate seen so far
        rate = found / drawn if drawn else 1.0
        want = math.ceil((n_boot - found) / max(rate, 1.0 / MAX_DRAWS_PER_REPLICATE))
        size = min(block, want, limit - drawn)
        counts = _replicate_counts(rng.integers(0, n, size=(size, n)), n)
        drawn += size
        p = counts @ yf
        counts = counts[((p > 0) & (p < n)).all(axis=1)][: n_boot - found]  # p < n: a negative
        if counts.shape[0]:
            found += counts.shape[0]
            yield counts


def _bootstrap_many(
    y_true: np.ndarray,
    y_score: np.ndarray,
    metrics: Sequence[str],
    n_boot: int,
    confidence: float,
    seed: int,
    threshold: float,
) -> dict[str, BootstrapCI]:
    """:func:`bootstrap_ci` of several metrics over one set of replicates, drawn once."""
    fns = {
        "auroc": _macro_auroc_weighted,
        "auprc": _macro_auprc_weighted,
        "fmax": _fmax_at(threshold),
        "fmax_bench": _fmax_best,
    }
    for metric in metrics:
        if metric not in fns:
            raise ConfigError(f"no bootstrap for metric {metric!r} (choose {', '.join(fns)})")
    _check_confidence(confidence)
    if int(n_boot) != n_boot or n_boot < 1:
        raise ConfigError(f"n_boot must be a positive integer, got {n_boot}")
    y, s = _check_labels(y_true, y_score)
    n = y.shape[0]
    if n == 0:
        raise ConfigError("cannot bootstrap an empty test set")
    reps: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    for counts in _replicate_blocks(y, int(n_boot), seed):
        for metric in metrics:
            reps[metric].append(fns[metric](counts, y, s))
    alpha = (1.0 - confidence) / 2.0
    out = {}
    for metric in metrics:
        fn = fns[metric]
        estimate = macro_auroc(y, s) if metric == "auroc" else float(fn(np.ones((1, n)), y, s)[0])
        r = np.concatenate(reps[metric]) if reps[metric] else np.empty(0)
        r = r[np.isfinite(r)]
        if r.size == 0:
            out[metric] = BootstrapCI(estimate, math.nan, math.nan, 0)
            continue
        lo, hi = np.quantile(r, [alpha, 1.0 - alpha])
        out[metric] = BootstrapCI(estimate, float(lo), float(hi), int(r.size))
    return out


def bootstrap_ci(
    y_true: np.ndarray,
    y_score: np.ndarray,
    metric: str = "auroc",
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    threshold: float = 0.5,
) -> BootstrapCI:
    """Percentile bootstrap CI (Efron 1979; Efron & Tibshirani 1993) of a test-set metric:
    ``auroc`` or ``auprc`` (macro), ``fmax`` (sample-centric F at the global ``threshold``,
    chosen on fold 9) or ``fmax_bench`` (the benchmark's Fmax, re-maximised per replicate).

    Records are resampled with replacement (rows of ``y_true``/``y_score``). As in the PTB-XL
    benchmark's own bands, a replicate counts only when every class that has positives and
    negatives in the test set has both in it too; others are drawn again (at most
    :data:`MAX_DRAWS_PER_REPLICATE` draws per replicate asked for; ``n_boot`` of the result says
    how many counted). Without that, a replicate's macro average would leave out whichever rare
    classes it missed: on the 71-statement task, where 14 classes have at most 3 positives in
    fold 10, 89% of replicates miss one, which biased the AUPRC band so far upwards that it
    excluded the estimate. The interval is the (1-c)/2 and (1+c)/2 percentiles of the
    replicate values; the estimate is the metric on the full test set, not the replicate mean.
    Deterministic for a given seed, and the same records are drawn for every metric. When
    every draw qualifies (every class common, as in superdiagnostic), the replicates are the
    first ``n_boot`` draws of the seed's stream.

    Vectorised over replicates (a replicate is a vector of record multiplicities); replicates
    are processed in blocks only to bound memory on very large test sets.
    """
    return _bootstrap_many(y_true, y_score, (metric,), n_boot, confidence, seed, threshold)[metric]


def bootstrap_auroc_ci(
    y_true: np.ndarray,
    y_score: np.ndarray,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapCI:
    """:func:`bootstrap_ci` of test macro AUROC."""
    return bootstrap_ci(y_true, y_score, "auroc", n_boot, confidence, seed)


def test_bootstraps(
    y_true: np.ndarray,
    y_score: np.ndarray,
    fmax_threshold: float,
    n_boot: int = BOOTSTRAP_REPLICATES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, dict[str, Any]]:
    """Bootstrap CIs of every metric in :data:`BOOTSTRAP_METRICS` on one test set, as stored
    in metrics.json and multiseed.json (``fmax`` at the global threshold chosen on fold 9).
    Each carries ``resample`` = :data:`BOOTSTRAP_RESAMPLE`; intervals stored without it were
    drawn before replicates had to keep every class (see :func:`current_bootstraps`)."""
    cis = _bootstrap_many(y_true, y_score, BOOTSTRAP_METRICS, n_boot, 0.95, seed, fmax_threshold)
    return {m: {**ci.to_dict(), "resample": BOOTSTRAP_RESAMPLE} for m, ci in cis.items()}


def current_bootstraps(boots: dict[str, Any] | None) -> bool:
    """Whether stored intervals (:func:`test_bootstraps`' output) follow today's resampling,
    so they can be reused instead of recomputed from the run's predictions."""
    return bool(boots) and all(
        (boots.get(m) or {}).get("resample") == BOOTSTRAP_RESAMPLE for m in BOOTSTRAP_METRICS
    )


def paired_bootstrap_auroc(
    y_true: np.ndarray,
    score_a: np.ndarray,
    score_b: np.ndarray,
    n_boot: int = BOOTSTRAP_REPLICATES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Paired bootstrap of macro AUROC ``a - b`` on the *same* test records: each replicate
    resamples record indices once and scores both on them (the same replicates as
    :func:`bootstrap_ci`), so the record-to-record variation both share cancels out. Returns
    the difference on the full set, its percentile CI, the replicates counted, and the
    fraction of replicates in which ``a`` is not better (a one-sided bootstrap p-value)."""
    _check_confidence(confidence)
    y, a = _check_labels(y_true, score_a)
    _, b = _check_labels(y_true, score_b)
    diffs = [
        _macro_auroc_weighted(counts, y, a) - _macro_auroc_weighted(counts, y, b)
        for counts in _replicate_blocks(y, int(n_boot), seed)
    ]
    d = np.concatenate(diffs) if diffs else np.empty(0)
    d = d[np.isfinite(d)]
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(d, [alpha, 1.0 - alpha]) if d.size else (math.nan, math.nan)
    return json_safe(
        {
            "delta": macro_auroc(y, a) - macro_auroc(y, b),
            "lo": float(lo),
            "hi": float(hi),
            "n_boot": int(d.size),
            "p_not_better": float((d <= 0).mean()) if d.size else math.nan,
            "resample": BOOTSTRAP_RESAMPLE,
        }
    )
