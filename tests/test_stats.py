"""Statistics: every number checked against scipy/sklearn or by hand, plus the edge cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special
from scipy import stats as sps
from sklearn.metrics import roc_auc_score

from ecgcli.errors import ConfigError
from ecgcli.scoring.stats import (
    _macro_auroc_weighted,
    _replicate_counts,
    bootstrap_auroc_ci,
    bootstrap_ci,
    macro_auroc,
    paired_tests,
    summarize,
)

BASE = np.array([0.812, 0.845, 0.828, 0.851, 0.833, 0.840, 0.819, 0.836, 0.829, 0.847])
NEW = np.array([0.829, 0.851, 0.842, 0.858, 0.846, 0.839, 0.835, 0.850, 0.833, 0.861])


def _labels(n: int, c: int = 5, seed: int = 0, decimals: int = 2):
    """Multi-label targets and informative scores, rounded so that many scores tie."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.25).astype(int)
    s = np.round(rng.random((n, c)) + 0.6 * y, decimals)
    return y, s


# ---------------------------------------------------------------- summarize


def test_summarize_by_hand() -> None:
    # mean 2.5, s = sqrt(5/3), t_{0.975,3} = 3.182446305284263
    got = summarize([1.0, 2.0, 3.0, 4.0])
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2
    assert got.mean == 2.5
    assert got.std == pytest.approx(math.sqrt(5 / 3), rel=1e-12)
    assert got.ci_low == pytest.approx(2.5 - half, rel=1e-12)
    assert got.ci_high == pytest.approx(2.5 + half, rel=1e-12)
    assert (got.min, got.max, got.n) == (1.0, 4.0, 4)


def test_summarize_matches_scipy_t_interval() -> None:
    got = summarize(BASE, confidence=0.9)
    lo, hi = sps.t.interval(0.9, len(BASE) - 1, loc=BASE.mean(), scale=sps.sem(BASE))
    assert got.ci_low == pytest.approx(lo, rel=1e-12)
    assert got.ci_high == pytest.approx(hi, rel=1e-12)
    assert got.std == pytest.approx(BASE.std(ddof=1), rel=1e-12)


def test_summarize_is_not_the_percentile_of_seeds() -> None:
    """The old bug: percentiles of the seed values are far wider than the CI of the mean."""
    got = summarize(BASE)
    lo, hi = np.percentile(BASE, [2.5, 97.5])
    assert got.ci_high - got.ci_low < 0.75 * (hi - lo)


def test_summarize_single_value_has_no_spread() -> None:
    got = summarize([0.8])
    assert got.mean == 0.8 and got.n == 1
    assert math.isnan(got.std) and math.isnan(got.ci_low) and math.isnan(got.ci_high)
    assert got.to_dict()["std"] is None
    json.dumps(got.to_dict(), allow_nan=False)  # strict JSON


@pytest.mark.parametrize(
    ("values", "confidence", "message"),
    [
        ([], 0.95, "empty"),
        ([1.0, float("nan")], 0.95, "NaN"),
        ([[1.0, 2.0]], 0.95, "flat"),
        ([1.0, 2.0], 1.5, "confidence"),
    ],
)
def test_summarize_rejects(values, confidence: float, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        summarize(values, confidence)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=-1e3, max_value=1e3, allow_nan=False), min_size=2, max_size=40),
    st.floats(min_value=0.5, max_value=0.999),
)
def test_property_mean_inside_ci_with_t_width(values: list[float], confidence: float) -> None:
    got = summarize(values, confidence)
    x = np.asarray(values)
    assert got.ci_low <= got.mean + 1e-9 and got.mean - 1e-9 <= got.ci_high
    expected = 2 * sps.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    assert got.ci_high - got.ci_low == pytest.approx(expected, rel=1e-9, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=1, max_value=50), st.floats(min_value=0.01, max_value=10.0))
def test_property_width_shrinks_as_t_over_sqrt_n(k: int, sd_scale: float) -> None:
    """Samples {-a, +a} repeated k times keep their sd fixed, so width * sqrt(n) / t is too."""
    n = 2 * k
    a = sd_scale * math.sqrt((n - 1) / n)  # makes the ddof=1 sd exactly sd_scale
    got = summarize([-a, a] * k)
    assert got.std == pytest.approx(sd_scale, rel=1e-9)
    scaled = (got.ci_high - got.ci_low) * math.sqrt(n) / sps.t.ppf(0.975, n - 1)
    assert scaled == pytest.approx(2 * sd_scale, rel=1e-9)


# ---------------------------------------------------------------- paired_tests


def test_paired_tests_match_scipy() -> None:
    got = paired_tests(BASE, NEW)
    diff = NEW - BASE
    t = sps.ttest_rel(NEW, BASE)
    w = sps.wilcoxon(NEW, BASE)
    welch = sps.ttest_ind(NEW, BASE, equal_var=False)
    lo, hi = sps.t.interval(0.95, diff.size - 1, loc=diff.mean(), scale=sps.sem(diff))
    assert got.n == 10
    assert got.mean_diff == pytest.approx(diff.mean(), rel=1e-12)
    assert (got.diff_ci_low, got.diff_ci_high) == pytest.approx((lo, hi), rel=1e-12)
    assert (got.t_stat, got.t_p) == pytest.approx((t.statistic, t.pvalue), rel=1e-12)
    assert (got.wilcoxon_stat, got.wilcoxon_p) == pytest.approx((w.statistic, w.pvalue), rel=1e-12)
    assert (got.welch_t, got.welch_p) == pytest.approx((welch.statistic, welch.pvalue), rel=1e-12)
    assert got.t_stat > 0  # diff is new - baseline, and the new method is better here
    assert got.t_p < welch.pvalue  # pairing removes the between-seed variation


def test_effect_sizes() -> None:
    got = paired_tests(BASE, NEW)
    diff = NEW - BASE
    assert got.cohens_dz == pytest.approx(diff.mean() / diff.std(ddof=1), rel=1e-12)
    n = BASE.size
    pooled = math.sqrt((BASE.var(ddof=1) + NEW.var(ddof=1)) / 2)  # equal n
    df = 2 * n - 2
    j = special.gamma(df / 2) / (math.sqrt(df / 2) * special.gamma((df - 1) / 2))
    d = (NEW.mean() - BASE.mean()) / pooled
    assert got.hedges_g == pytest.approx(j * d, rel=1e-12)
    assert got.hedges_g == pytest.approx(d * (1 - 3 / (4 * df - 1)), rel=2e-3)  # textbook approx


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ConfigError, match="same seeds"):
        paired_tests([0.8, 0.9], [0.8])


def test_fewer_than_two_pairs_give_nan_tests() -> None:
    got = paired_tests([0.80], [0.83])
    assert got.n == 1 and got.mean_diff == pytest.approx(0.03)
    for field in ("t_p", "wilcoxon_p", "welch_p", "cohens_dz", "hedges_g", "diff_ci_low"):
        assert math.isnan(getattr(got, field)), field
    empty = paired_tests([], [])
    assert empty.n == 0 and math.isnan(empty.mean_diff)


def test_identical_runs_give_wilcoxon_p_one() -> None:
    got = paired_tests(BASE, BASE.copy())
    assert got.mean_diff == 0.0
    assert (got.wilcoxon_stat, got.wilcoxon_p) == (0.0, 1.0)
    assert math.isnan(got.t_p) and math.isnan(got.cohens_dz)
    assert got.hedges_g == 0.0
    json.dumps(got.to_dict(), allow_nan=False)


def test_constant_nonzero_difference() -> None:
    got = paired_tests([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])
    assert got.t_stat == math.inf and got.t_p == 0.0
    assert math.isnan(got.cohens_dz)
    assert got.to_dict()["t_stat"] is None


# ---------------------------------------------------------------- macro_auroc


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_macro_auroc_matches_sklearn_with_ties(seed: int) -> None:
    y, s = _labels(500, seed=seed, decimals=1)  # ~16 distinct values: heavy ties
    assert macro_auroc(y, s) == pytest.approx(roc_auc_score(y, s, average="macro"), abs=1e-10)


def test_macro_auroc_single_class_and_skipped_classes() -> None:
    y, s = _labels(200, c=3)
    assert macro_auroc(y[:, 0], s[:, 0]) == pytest.approx(roc_auc_score(y[:, 0], s[:, 0]))
    y[:, 1] = 0  # no positives: no AUROC for that class, the others are averaged
    expected = np.mean([roc_auc_score(y[:, c], s[:, c]) for c in (0, 2)])
    assert macro_auroc(y, s) == pytest.approx(expected, abs=1e-12)
    assert math.isnan(macro_auroc(np.zeros((5, 2)), np.ones((5, 2))))


def test_macro_auroc_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match="shape"):
        macro_auroc(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ConfigError, match="0 or 1"):
        macro_auroc(np.full((4, 2), 2), np.zeros((4, 2)))


# ---------------------------------------------------------------- bootstrap


def test_weighted_replicates_equal_auroc_of_resampled_rows() -> None:
    """The counts trick is exact: same value as sklearn on the explicitly resampled rows."""
    y, s = _labels(300)
    idx = np.random.default_rng(5).integers(0, 300, size=(8, 300))
    got = _macro_auroc_weighted(_replicate_counts(idx, 300), y.astype(bool), s)
    expected = [roc_auc_score(y[i], s[i], average="macro") for i in idx]
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_bootstrap_uses_the_seeded_resamples() -> None:
    y, s = _labels(120)
    idx = np.random.default_rng(3).integers(0, 120, size=(200, 120))
    reps = [macro_auroc(y[i], s[i]) for i in idx]
    got = bootstrap_auroc_ci(y, s, n_boot=200, seed=3)
    assert (got.ci_low, got.ci_high) == pytest.approx(tuple(np.quantile(reps, [0.025, 0.975])), abs=1e-12)
    assert got.estimate == pytest.approx(roc_auc_score(y, s, average="macro"), abs=1e-12)


def test_bootstrap_contains_estimate_is_deterministic_and_narrows() -> None:
    y, s = _labels(2000, seed=1)
    big = bootstrap_auroc_ci(y, s, n_boot=400, seed=0)
    assert big.ci_low <= big.estimate <= big.ci_high
    assert big == bootstrap_auroc_ci(y, s, n_boot=400, seed=0)
    assert big != bootstrap_auroc_ci(y, s, n_boot=400, seed=1)
    small = bootstrap_auroc_ci(y[:200], s[:200], n_boot=400, seed=0)
    # width ~ 1/sqrt(N): 10x the records, about 1/3.2 the width
    assert big.ci_high - big.ci_low < 0.6 * (small.ci_high - small.ci_low)
    assert big.n_boot == 400
    json.dumps(big.to_dict(), allow_nan=False)


def test_bootstrap_redraws_replicates_that_miss_a_class() -> None:
    """A class with one positive is in every replicate (the benchmark's resampling): skipping
    it where a draw missed it would mix in replicates of the other class alone."""
    y, s = _labels(60, c=2)
    s[:, 0] = y[:, 0] + 0.01 * s[:, 0]  # class 0: AUROC 1
    y[:, 1] = 0
    y[0, 1] = 1
    s[:, 1] = 1.0
    s[0, 1] = 0.0  # class 1: its one positive scores lowest, AUROC 0
    got = bootstrap_auroc_ci(y, s, n_boot=300)
    assert got.estimate == pytest.approx(0.5)
    # every replicate holds both classes, so every replicate is 0.5; a skipped class gave 1.0
    assert got.n_boot == 300 and got.ci_low == pytest.approx(0.5) and got.ci_high == pytest.approx(0.5)
    for metric in ("auprc", "fmax"):
        assert bootstrap_ci(y, s, metric, n_boot=50).n_boot == 50


def test_bootstrap_settles_for_fewer_replicates_when_classes_are_too_rare() -> None:
    """Twenty classes of one positive each among 400 records: about 1 draw in 10,000 keeps
    them all, so the draw limit ends the search with fewer replicates (never a hang)."""
    from ecgcli.scoring.stats import MAX_DRAWS_PER_REPLICATE

    y = np.zeros((400, 20), dtype=int)
    y[np.arange(20), np.arange(20)] = 1
    s = np.random.default_rng(0).random((400, 20))
    got = bootstrap_auroc_ci(y, s, n_boot=100)
    assert MAX_DRAWS_PER_REPLICATE * 100 < 10_000 and got.n_boot < 100
    assert got.n_boot > 0 or (math.isnan(got.ci_low) and math.isnan(got.ci_high))


def test_stored_intervals_say_how_they_were_drawn() -> None:
    from ecgcli.scoring.stats import BOOTSTRAP_METRICS, current_bootstraps, test_bootstraps

    y, s = _labels(80)
    boots = test_bootstraps(y, s, fmax_threshold=0.5, n_boot=20)
    assert set(boots) == set(BOOTSTRAP_METRICS) and current_bootstraps(boots)
    old = {m: {k: v for k, v in b.items() if k != "resample"} for m, b in boots.items()}
    assert not current_bootstraps(old) and not current_bootstraps(None)


def test_bootstrap_block_boundary_does_not_change_result(monkeypatch) -> None:
    import ecgcli.scoring.stats as stats_mod

    y, s = _labels(500)
    whole = bootstrap_auroc_ci(y, s, n_boot=300, seed=4)
    monkeypatch.setattr(stats_mod, "_BOOT_BLOCK_ELEMENTS", 500 * 7)  # blocks of 7 replicates
    assert bootstrap_auroc_ci(y, s, n_boot=300, seed=4) == whole


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"n_boot": 0}, "n_boot"), ({"confidence": 0.0}, "confidence")]
)
def test_bootstrap_rejects_bad_options(kwargs: dict, message: str) -> None:
    y, s = _labels(50)
    with pytest.raises(ConfigError, match=message):
        bootstrap_auroc_ci(y, s, **kwargs)


def test_t_interval_of_a_bounded_metric_is_clipped_and_says_so() -> None:
    from ecgcli.cli.formats import fmt_summary
    from ecgcli.scoring.stats import UNIT_INTERVAL

    values = [0.7359, 0.7991]  # two seeds: t(0.975, 1) = 12.7 makes the interval reach past 1
    raw = summarize(values)
    assert raw.ci_high > 1.15 and not raw.clipped
    s = summarize(values, bounds=UNIT_INTERVAL)
    assert s.clipped and s.ci_high == 1.0 and s.ci_low == pytest.approx(raw.ci_low) and s.mean == raw.mean
    assert fmt_summary(s) == f"0.768 ± 0.045 [{raw.ci_low:.3f}, 1.000]†"
    inside = summarize([0.80, 0.81, 0.82], bounds=UNIT_INTERVAL)
    assert not inside.clipped and fmt_summary(inside).endswith("]")
    assert s.to_dict()["clipped"] is True


@pytest.mark.parametrize("metric", ["auprc", "fmax", "fmax_bench"])
def test_bootstrap_replicates_equal_the_metric_on_resampled_rows(metric: str) -> None:
    """The weighted (record-multiplicity) replicate equals the metric recomputed on the
    resampled rows, and the interval brackets the estimate."""
    from sklearn.metrics import average_precision_score

    from ecgcli.scoring.metrics import sample_f_curve
    from ecgcli.scoring.stats import (
        _fmax_at,
        _fmax_best,
        _macro_auprc_weighted,
        _replicate_counts,
        bootstrap_ci,
    )

    rng = np.random.default_rng(5)
    y = rng.random((300, 6)) < 0.2
    s = np.round(np.clip(0.4 * y + 0.6 * rng.random((300, 6)), 0, 1), 2)  # rounded: ties too
    idx = rng.integers(0, 300, size=(1, 300))
    counts = _replicate_counts(idx, 300)
    ys, ss = y[idx[0]], s[idx[0]]
    if metric == "auprc":
        want = np.mean([average_precision_score(ys[:, c], ss[:, c]) for c in range(6)])
        got = _macro_auprc_weighted(counts, y, s)[0]
    elif metric == "fmax":
        want = sample_f_curve(ys, ss, np.array([0.3]))[0]
        got = _fmax_at(0.3)(counts, y, s)[0]
    else:
        want = sample_f_curve(ys, ss).max()
        got = _fmax_best(counts, y, s)[0]
    assert got == pytest.approx(want, abs=1e-12)
    ci = bootstrap_ci(y, s, metric, n_boot=200, threshold=0.3)
    assert ci.ci_low <= ci.estimate <= ci.ci_high and ci.n_boot == 200
