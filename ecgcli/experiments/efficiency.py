"""The label-efficiency factor: how many times fewer labels a method needs to match the baseline.

Researchers quote label efficiency as "method M reaches the supervised baseline's score at 10%
of the labels with 2.5x fewer labels". This module turns a label-fraction sweep into that number.

*Definition.* For a method M, the baseline B and each label fraction f at which B was run, the
target is B's mean test score at f. f_M is the fraction at which M's curve reaches the target,
and the factor is ``f / f_M``: above 1, M needs ``f / f_M`` times fewer labels than B; below 1,
more.

*The curve and the crossing rule.* M's curve is its mean score over seeds at each fraction it
was run at, joined by straight lines in **log fraction** (the axes of ``label_efficiency.png``).
f_M is the **first crossing**: walking up from M's lowest fraction, the first point where that
piecewise-linear curve reaches the target (score >= target). The curve is not made monotone: a
later dip below the target does not move f_M; a non-monotone curve only ever matters after it
has first reached the target.

*Ends, never extrapolated.*

* M's lowest fraction f_min already scores *above* the target: M reaches it somewhere below
  f_min, which was not measured, so the factor is only a **lower bound**, ``> f / f_min``
  (``bound = "lower"``). Exactly equal at f_min is an exact crossing at f_min.
* M stays below the target up to its highest fraction f_max: if M reaches it at all it is
  beyond f_max, so the factor is at most ``f / f_max`` (and undefined if M never does): an
  **upper bound**, ``< f / f_max`` (``bound = "upper"``).

*Uncertainty.* A seed fixes the labelled subset at every fraction and is shared by every
configuration of a grid, so seeds are paired: the factor is also computed per seed, from the
baseline's score of that seed at f and M's curve of the same seed (its scores at each fraction).
Over the seeds: the geometric mean and median of the per-seed factors and the **Student's t
95% interval of the mean log factor**, exponentiated (the factor is a ratio, so it is averaged
on the log scale). When any seed's factor is only a bound, the per-seed statistics are not
given (``censored`` says how many seeds gave bounds): averaging a bound as if it were a value
would be silently extrapolating. The headline factor is the one from the mean curves (what the
plot shows); the interval is the per-seed one, so the two are different estimates and the
headline need not sit in the middle of the interval.

Pure numpy/scipy: no torch, imported by ``ecg compare`` and by the multiseed results writer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ecgcli.errors import ConfigError
from ecgcli.files import json_safe
from ecgcli.scoring.stats import summarize

#: Metrics a label-efficiency factor can be computed for (keys of ``results.METRICS``).
EFFICIENCY_METRICS = ("auroc", "auprc")
DEFAULT_METRIC = "auroc"

#: fraction -> seed -> score: one method's sweep of one metric.
Curve = Mapping[float, Mapping[int, float]]

RULE = (
    "f_M = first fraction where M's mean-over-seeds curve, linear between neighbouring fractions in "
    "log fraction, reaches B's mean at f (score >= target; not made monotone, no extrapolation); "
    "factor = f / f_M. Target above M's lowest-fraction score: lower bound > f/f_min; never reached "
    "up to M's highest fraction: upper bound < f/f_max."
)
UNCERTAINTY = (
    "per seed (paired: the seed's own baseline score at f and the seed's own curve of M): geometric "
    "mean, median and the Student's t 95% CI of the mean log factor, exponentiated; not given when "
    "any seed's factor is only a bound (censored)."
)


@dataclass(frozen=True)
class Crossing:
    """Where a curve first reaches a target: ``factor = at / fraction``, or a bound of it."""

    factor: float  # the factor, or the value of the bound
    bound: str  # "exact", "lower" (factor > value) or "upper" (factor < value)
    fraction: float | None  # f_M; None when only bounded

    def text(self, digits: int = 2) -> str:
        sign = {"exact": "", "lower": ">", "upper": "<"}[self.bound]
        return f"{sign}{self.factor:.{digits}f}×"


def crossing(fractions: Sequence[float], scores: Sequence[float], target: float, at: float) -> Crossing:
    """The first crossing of ``target`` by the curve through ``(fractions, scores)``, linear in
    log fraction, as the factor ``at / f_M`` (see the module docstring for the bounds).

    ``fractions`` must be increasing, positive and as many as ``scores`` (at least one).
    """
    f = np.asarray(fractions, dtype=np.float64)
    y = np.asarray(scores, dtype=np.float64)
    if f.ndim != 1 or f.size == 0 or f.size != y.size:
        raise ConfigError(f"a curve needs as many fractions as scores (got {f.size} and {y.size})")
    if not (np.all(f > 0) and np.all(np.diff(f) > 0)):
        raise ConfigError(f"curve fractions must be positive and increasing, got {f.tolist()}")
    if not (np.isfinite(y).all() and math.isfinite(target) and at > 0):
        raise ConfigError("a curve's scores, the target and its fraction must be finite numbers")
    reached = np.flatnonzero(y >= target)
    if reached.size == 0:
        return Crossing(at / float(f[-1]), "upper", None)
    k = int(reached[0])
    if k == 0:
        if y[0] == target:
            return Crossing(at / float(f[0]), "exact", float(f[0]))
        return Crossing(at / float(f[0]), "lower", None)
    x0, x1 = math.log(f[k - 1]), math.log(f[k])
    w = (target - y[k - 1]) / (y[k] - y[k - 1])  # y[k-1] < target <= y[k]
    f_m = math.exp(x0 + w * (x1 - x0))
    return Crossing(at / f_m, "exact", f_m)


@dataclass(frozen=True)
class SeedFactors:
    """The per-seed factors at one baseline fraction, and their summary when none is a bound."""

    seeds: list[int]
    crossings: list[Crossing]
    geo_mean: float = math.nan
    median: float = math.nan
    ci_low: float = math.nan  # exp of the t interval of the mean log factor
    ci_high: float = math.nan
    censored: int = 0  # seeds whose factor is only a bound

    @property
    def n(self) -> int:
        return len(self.seeds)

    def to_dict(self) -> dict[str, Any]:
        return json_safe(
            {
                "n": self.n,
                "censored": self.censored,
                "geo_mean": self.geo_mean,
                "median": self.median,
                "ci_low": self.ci_low,
                "ci_high": self.ci_high,
                "per_seed": [
                    {"seed": s, **asdict(c)} for s, c in zip(self.seeds, self.crossings, strict=True)
                ],
            }
        )


def seed_factors(
    seeds: Sequence[int], crossings: Sequence[Crossing], confidence: float = 0.95
) -> SeedFactors:
    """Geometric mean, median and t-CI (on the log scale) of per-seed factors; with any bound
    among them only the crossings and the count of bounds."""
    seeds, crossings = list(seeds), list(crossings)
    censored = sum(c.bound != "exact" for c in crossings)
    if not crossings or censored:
        return SeedFactors(seeds, crossings, censored=censored)
    logs = np.log([c.factor for c in crossings])
    s = summarize(logs, confidence)
    return SeedFactors(
        seeds,
        crossings,
        geo_mean=math.exp(s.mean),
        median=float(np.median([c.factor for c in crossings])),
        ci_low=math.exp(s.ci_low) if math.isfinite(s.ci_low) else math.nan,
        ci_high=math.exp(s.ci_high) if math.isfinite(s.ci_high) else math.nan,
    )


@dataclass(frozen=True)
class Factor:
    """Method ``method`` against ``baseline`` at the baseline's label fraction ``label_fraction``."""

    method: str
    baseline: str
    metric: str
    label_fraction: float
    target: float  # the baseline's mean score at label_fraction
    crossing: Crossing  # from the mean curves
    seeds: SeedFactors = field(default_factory=lambda: SeedFactors([], []))

    def text(self, digits: int = 2) -> str:
        """``2.00× [1.62, 2.47]``, ``>4.00×``, ``<0.50×``, ``2.00× (1/3 seeds bounds)``."""
        text = self.crossing.text(digits)
        s = self.seeds
        if self.crossing.bound == "exact" and math.isfinite(s.ci_low):
            text += f" [{s.ci_low:.{digits}f}, {s.ci_high:.{digits}f}]"
        elif s.censored:
            text += f" ({s.censored}/{s.n} seeds bounds)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return json_safe(
            {
                "config": self.method,
                "baseline": self.baseline,
                "metric": self.metric,
                "label_fraction": self.label_fraction,
                "target": self.target,
                "factor": self.crossing.factor,
                "bound": self.crossing.bound,
                "fraction": self.crossing.fraction,
                "text": self.text(),
                "seeds": self.seeds.to_dict(),
            }
        )


def _points(curve: Curve) -> list[tuple[float, dict[int, float]]]:
    """The curve's fractions (finite, positive, sorted) with their finite per-seed scores."""
    out = []
    for lf in sorted(curve):
        if not (math.isfinite(lf) and lf > 0):
            continue
        values = {int(s): float(v) for s, v in curve[lf].items() if v is not None and math.isfinite(v)}
        if values:
            out.append((float(lf), values))
    return out


def label_efficiency(
    curves: Mapping[str, Curve], baseline: str, metric: str = DEFAULT_METRIC, confidence: float = 0.95
) -> list[Factor]:
    """The factor of every method but the baseline at every fraction the baseline has, for the
    ``metric`` the ``curves`` hold. Methods with fewer than two fractions have no curve to read
    and are left out; so is everything when the baseline has no scores."""
    if baseline not in curves:
        raise ConfigError(f"baseline {baseline!r} is not among the methods: {', '.join(curves)}")
    if metric not in EFFICIENCY_METRICS:
        raise ConfigError(f"label efficiency is computed for {', '.join(EFFICIENCY_METRICS)}, not {metric!r}")
    base = _points(curves[baseline])
    factors = []
    for name, curve in curves.items():
        pts = _points(curve)
        if name == baseline or len(pts) < 2:
            continue
        fractions = [lf for lf, _ in pts]
        means = [float(np.mean(list(v.values()))) for _, v in pts]
        for lf, base_scores in base:
            target = float(np.mean(list(base_scores.values())))
            seeds, per_seed = [], []
            for seed in sorted(base_scores):
                own = [(g, v[seed]) for g, v in pts if seed in v]
                if len(own) < 2:
                    continue
                seeds.append(seed)
                per_seed.append(crossing([g for g, _ in own], [y for _, y in own], base_scores[seed], lf))
            factors.append(
                Factor(
                    name,
                    baseline,
                    metric,
                    lf,
                    target,
                    crossing(fractions, means, target, lf),
                    seed_factors(seeds, per_seed, confidence),
                )
            )
    return factors


def describe(factors: Mapping[str, Sequence[Factor]], baseline: str) -> dict[str, Any]:
    """The ``label_efficiency`` section of multiseed.json and of ``ecg compare --format json``."""
    return {
        "baseline": baseline,
        "rule": RULE,
        "uncertainty": UNCERTAINTY,
        "metrics": {k: [f.to_dict() for f in fs] for k, fs in factors.items()},
    }
