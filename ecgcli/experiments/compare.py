"""Compare runs and multi-seed results side by side (``ecg compare``).

Inputs are run directories (``ecg train supervised``, ``ecg finetune``, or one cell of a
multiseed grid) and multiseed results (``multiseed.json`` or the folder holding it).

*Methods.* A multiseed file gives one method per (configuration, label fraction), named after
the configuration. Single runs are named ``LOSS+STRATEGY``, ``finetune:<checkpoint folder>`` or
``probe:<checkpoint folder>``; runs with the same name, label fraction and training options
(everything but the seed and paths) are grouped as seeds of one method, so a handful of
``ecg train supervised --seed ...`` runs get confidence intervals too. When two inputs give
the same name, the name gets the input's folder name in brackets.

*Numbers.* Test fold 10. AUROC is macro-averaged; macro F1 and the micro-averaged
sensitivity and specificity use per-class thresholds tuned on fold 9. With several seeds a
cell is ``mean ± sd [95% CI]``: sample sd (ddof 1) and Student's t interval of the mean
(:func:`ecgcli.scoring.stats.summarize`); one run is just its value. Δ F1 and Δ AUROC are relative to
the baseline at the same label fraction, in percent as the reference study reports them:
``100 * (mean - baseline mean) / baseline mean``. The baseline is ``--baseline NAME``, by
default the first supervised method. The best mean per column (within a label fraction) is
highlighted.

*Paired tests.* Seeds fix the labelled subset, so a method and the baseline at the same label
fraction are paired by seed: on the seeds both finished (at least two), the mean difference
``method - baseline`` of test macro AUROC and AUPRC with its Student's t 95% interval and the
paired t-test's two-sided p (:func:`ecgcli.scoring.stats.paired_tests`). This is the test the
tables report; an arm of ``--arm`` is paired with the baseline arm the same way.

*Label efficiency.* When a method was run at several label fractions, two more tables: each
method's mean test macro AUROC and macro AUPRC with the 95% t-CI over seeds (rows = methods,
columns = fractions), and the label-efficiency factor of each method against the baseline at
each of the baseline's fractions (:mod:`ecgcli.experiments.efficiency`: the rule, the bounds
and the per-seed interval), for ``efficiency_metric`` (AUROC by default; JSON holds both).

*Formats.* This module returns data (:class:`Comparison`, :func:`to_dict`, :func:`caption`,
:func:`curve_rows`, :func:`factor_rows`); text, Markdown, CSV and JSON are in
:mod:`ecgcli.cli.formats`.

*Refusals.* Every input must share the class order (``model.json`` ``class_names``) and the
test set (the test ``ecg_id``s of ``predictions.npz``, hashed; the data cache id and size when
predictions are missing); otherwise the comparison is refused, naming what differs and where.

Pure numpy/scipy and JSON: no torch, so comparing is quick.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ecgcli.errors import ConfigError
from ecgcli.experiments.arms import Choice, parse_arms, select_arms
from ecgcli.experiments.efficiency import (
    DEFAULT_METRIC,
    EFFICIENCY_METRICS,
    Factor,
    describe,
    label_efficiency,
)
from ecgcli.experiments.inputs import Method
from ecgcli.experiments.results import (
    CALIBRATION,
    HEADLINE,
    PER_CLASS,
)
from ecgcli.scoring.stats import PairedComparison, Summary, paired_tests

FORMATS = ("table", "markdown", "csv", "json")
DELTAS = ("f1", "auroc")
#: Metrics tested on paired seeds against the baseline.
PAIRED = ("auroc", "auprc")


# --- the comparison ------------------------------------------------------------------------


@dataclass
class Row:
    method: Method
    summaries: dict[str, Summary | None]
    delta_pct: dict[str, float | None]
    is_baseline: bool
    best: set[str]
    #: metric -> the paired test against the baseline (None: the baseline, or under two shared seeds)
    paired: dict[str, PairedComparison | None] = field(default_factory=dict)


@dataclass
class ClassRow:
    method: Method
    cls: str
    summaries: dict[str, Summary | None]
    delta_pct: dict[str, float | None]
    best: set[str]


@dataclass
class Comparison:
    methods: list[Method]
    baseline: str
    rows: list[Row]
    class_rows: list[ClassRow]
    class_names: list[str]
    test_set: dict[str, Any]
    #: metric -> factors against the baseline; empty unless some method has several fractions
    efficiency: dict[str, list[Factor]] = field(default_factory=dict)
    efficiency_metric: str = DEFAULT_METRIC
    #: ``--arm``: what each arm is at each label fraction, chosen on fold 9
    selection: list[Choice] = field(default_factory=list)

    @property
    def fractions(self) -> list[float]:
        return sorted({m.label_fraction for m in self.methods})

    @property
    def sweep(self) -> bool:
        """Some method was run at more than one (known) label fraction."""
        return bool(sweep_names(self.methods))

    @property
    def has_paired(self) -> bool:
        return any(p is not None for r in self.rows for p in r.paired.values())


def pick_baseline(methods: Sequence[Method], baseline: str | None) -> str:
    names = list(dict.fromkeys(m.name for m in methods))
    if baseline is None:
        return next((m.name for m in methods if m.kind == "supervised"), methods[0].name)
    if baseline not in names:
        raise ConfigError(f"--baseline {baseline!r} is not among the methods: {', '.join(names)}")
    return baseline


def delta_pct(value: float | None, base: float | None) -> float | None:
    """``100 * (value - base) / base``; None when either is missing or the base is 0."""
    if value is None or base is None or base == 0 or not (math.isfinite(value) and math.isfinite(base)):
        return None
    return 100.0 * (value - base) / base


def paired_against(method: Method, base: Method | None, metric: str) -> PairedComparison | None:
    """``metric`` of ``method`` minus ``base`` on the seeds both have (None: no base, the base
    itself, or fewer than two shared seeds)."""
    if base is None or base is method:
        return None
    mine = {seed: s.get(metric) for seed, s in zip(method.seeds, method.scores, strict=True)}
    theirs = {seed: s.get(metric) for seed, s in zip(base.seeds, base.scores, strict=True)}
    seeds = [k for k in mine if mine[k] is not None and theirs.get(k) is not None]
    if len(seeds) < 2:
        return None
    return paired_tests([theirs[k] for k in seeds], [mine[k] for k in seeds])


def _mean(s: Summary | None) -> float | None:
    return None if s is None or not math.isfinite(s.mean) else s.mean


def _mark_best(rows: Sequence[Any], keys: Sequence[str], group, lowest: bool = False) -> None:
    """Flag the highest (``lowest``: the lowest) mean per column among rows with the same
    ``group(row)``."""
    buckets: dict[Any, list[Any]] = {}
    for r in rows:
        buckets.setdefault(group(r), []).append(r)
    for bucket in buckets.values():
        if len(bucket) < 2:
            continue
        for k in keys:
            means = [_mean(r.summaries[k]) for r in bucket]
            valid = [m for m in means if m is not None]
            if not valid:
                continue
            top = min(valid) if lowest else max(valid)
            for r, m in zip(bucket, means, strict=True):
                if m is not None and m == top:
                    r.best.add(k)


def sweep_names(methods: Sequence[Method]) -> list[str]:
    """Names of the methods run at two or more finite label fractions, in order of appearance."""
    fractions: dict[str, set[float]] = {}
    for m in methods:
        if math.isfinite(m.label_fraction):
            fractions.setdefault(m.name, set()).add(m.label_fraction)
    return [name for name, fs in fractions.items() if len(fs) > 1]


def efficiency_curves(methods: Sequence[Method], metric: str) -> dict[str, dict[float, dict[int, float]]]:
    """name -> label fraction -> seed -> test ``metric``: the input of
    :func:`ecgcli.experiments.efficiency.label_efficiency`."""
    curves: dict[str, dict[float, dict[int, float]]] = {}
    for m in methods:
        curve = curves.setdefault(m.name, {})
        curve[m.label_fraction] = {
            seed: s[metric] for seed, s in zip(m.seeds, m.scores, strict=True) if s.get(metric) is not None
        }
    return curves


def check_efficiency_metric(metric: str) -> None:
    if metric not in EFFICIENCY_METRICS:
        raise ConfigError(
            f"--efficiency-metric must be one of {', '.join(EFFICIENCY_METRICS)}, got {metric!r}"
        )


def compare(
    methods: list[Method],
    baseline: str | None = None,
    per_class: bool = False,
    efficiency_metric: str = DEFAULT_METRIC,
    arms: Sequence[str] = (),
) -> Comparison:
    """Summaries, deltas against the baseline, best-per-column flags and, for a label-fraction
    sweep, the label-efficiency factors against the baseline. ``arms`` (``ARM=CONFIG``, see
    :mod:`ecgcli.experiments.arms`) first replaces the methods by each arm's configuration
    chosen on fold 9 at each label fraction."""
    if not methods:
        raise ConfigError("nothing to compare")
    check_efficiency_metric(efficiency_metric)
    selection: list[Choice] = []
    if arms:
        names = list(dict.fromkeys(m.name for m in methods))
        methods, selection = select_arms(methods, parse_arms(arms, names))
    base_name = pick_baseline(methods, baseline)
    order = sorted(range(len(methods)), key=lambda i: (methods[i].label_fraction, i))
    methods = [methods[i] for i in order]
    base = {m.label_fraction: m for m in methods if m.name == base_name}
    rows = []
    for m in methods:
        summaries = {k: m.summary(k) for k in (*HEADLINE, *CALIBRATION, "f1@0.5")}
        b = base.get(m.label_fraction)
        deltas = {
            k: (None if b is None or b is m else delta_pct(_mean(summaries[k]), _mean(b.summary(k))))
            for k in DELTAS
        }
        paired = {k: paired_against(m, b, k) for k in PAIRED}
        rows.append(Row(m, summaries, deltas, b is m, set(), paired))
    _mark_best(rows, HEADLINE, lambda r: r.method.label_fraction)
    _mark_best(rows, CALIBRATION, lambda r: r.method.label_fraction, lowest=True)
    class_rows = []
    if per_class:
        for cls in methods[0].class_names:
            for m in methods:
                summaries = {k: m.class_summary(cls, k) for k in PER_CLASS}
                b = base.get(m.label_fraction)
                deltas = {
                    k: (
                        None
                        if b is None or b is m
                        else delta_pct(_mean(summaries[k]), _mean(b.class_summary(cls, k)))
                    )
                    for k in DELTAS
                }
                class_rows.append(ClassRow(m, cls, summaries, deltas, set()))
        _mark_best(class_rows, PER_CLASS, lambda r: (r.cls, r.method.label_fraction))
    efficiency = {}
    if sweep_names(methods):
        efficiency = {
            k: label_efficiency(efficiency_curves(methods, k), base_name, k) for k in EFFICIENCY_METRICS
        }
    return Comparison(
        methods,
        base_name,
        rows,
        class_rows,
        methods[0].class_names,
        methods[0].test_set,
        efficiency,
        efficiency_metric,
        selection,
    )


# --- captions and tables as data (text, Markdown and CSV: ecgcli.cli.formats) -----------------


#: Marks a t-CI that was clipped to [0, 1]; :func:`caption` explains it.
CLIPPED = "†"


def any_clipped(comp: Comparison) -> bool:
    rows = [*comp.rows, *comp.class_rows]
    return any(s is not None and s.clipped for r in rows for s in r.summaries.values())


def caption(comp: Comparison) -> str:
    return (
        "Test fold 10. Cells: mean ± sd [95% Student-t CI of the mean] over n seeds (one run: its value). "
        "AUROC macro; F1 macro, sensitivity and specificity micro, at per-class thresholds tuned on fold 9. "
        "ECE (15 equal-width bins) and Brier score: test calibration, macro over classes, lower is better. "
        f"Δ = 100·(method − baseline)/baseline at the same label fraction; baseline: {comp.baseline}. "
        "Best mean per column in bold."
        + (
            f" {CLIPPED} t-CI clipped to [0, 1], the metric's range: with this few seeds the interval "
            "is too wide to be informative."
            if any_clipped(comp)
            else ""
        )
    )


def curve_rows(
    comp: Comparison, metric: str
) -> tuple[list[float], list[tuple[str, bool, list[Summary | None]]]]:
    """The label-efficiency curves as a table: the (finite) fractions, and per method its name,
    whether it is the baseline and its summary of ``metric`` at each fraction (None: not run)."""
    fractions = [lf for lf in comp.fractions if math.isfinite(lf)]
    by_name: dict[str, dict[float, Summary | None]] = {}
    for r in comp.rows:
        if math.isfinite(r.method.label_fraction):
            by_name.setdefault(r.method.name, {})[r.method.label_fraction] = r.summaries.get(metric)
    rows = [
        (name, name == comp.baseline, [cells.get(lf) for lf in fractions]) for name, cells in by_name.items()
    ]
    return fractions, rows


def paired_rows(comp: Comparison) -> list[tuple[Row, int, list[PairedComparison | None]]]:
    """The paired tests as a table: every row with one, the number of seed pairs, and its test
    of each :data:`PAIRED` metric (None where it has none)."""
    out = []
    for r in comp.rows:
        tests = [r.paired.get(k) for k in PAIRED]
        pairs = [t.n for t in tests if t is not None]
        if pairs:
            out.append((r, max(pairs), tests))
    return out


def factor_rows(
    comp: Comparison, metric: str | None = None
) -> tuple[list[float], list[tuple[str, list[Factor | None]]]]:
    """The label-efficiency factors as a table: the baseline's fractions, and per method the
    factor at each of them (None where it has none)."""
    factors = comp.efficiency.get(metric or comp.efficiency_metric, [])
    fractions = sorted({f.label_fraction for f in factors})
    by_name: dict[str, dict[float, Factor]] = {}
    for f in factors:
        by_name.setdefault(f.method, {})[f.label_fraction] = f
    return fractions, [(name, [cells.get(lf) for lf in fractions]) for name, cells in by_name.items()]


def to_dict(comp: Comparison) -> dict[str, Any]:
    def summaries(r: Row | ClassRow) -> dict[str, Any]:
        return {k: (None if s is None else s.to_dict()) for k, s in r.summaries.items()}

    methods = []
    for r in comp.rows:
        entry = {
            "name": r.method.name,
            "kind": r.method.kind,
            "label_fraction": r.method.label_fraction,
            "n": r.method.n,
            "seeds": r.method.seeds,
            "source": r.method.source,
            "baseline": r.is_baseline,
            "metrics": summaries(r),
            "delta_pct": r.delta_pct,
            "paired": {k: (None if p is None else p.to_dict()) for k, p in r.paired.items()},
            "best": sorted(r.best),
        }
        if comp.class_rows:
            entry["per_class"] = {
                c.cls: {"metrics": summaries(c), "delta_pct": c.delta_pct, "best": sorted(c.best)}
                for c in comp.class_rows
                if c.method is r.method
            }
        methods.append(entry)
    doc = {
        "format": "ecgcli-compare",
        "version": 1,
        "baseline": comp.baseline,
        "caption": caption(comp),
        "class_names": comp.class_names,
        "test_set": comp.test_set,
        "methods": methods,
    }
    if comp.selection:
        doc["selection"] = {
            "rule": "each arm is its configuration with the highest mean fold-9 macro AUROC at each "
            "label fraction; fold 10 takes no part",
            "choices": [c.to_dict() for c in comp.selection],
        }
    if comp.sweep:
        curves = {}
        for metric in EFFICIENCY_METRICS:
            fractions, rows = curve_rows(comp, metric)
            curves[metric] = [
                {"method": name, "label_fraction": lf, **(s.to_dict() if s is not None else {"mean": None})}
                for name, _, cells in rows
                for lf, s in zip(fractions, cells, strict=True)
            ]
        doc["label_efficiency"] = {
            **describe(comp.efficiency, comp.baseline),
            "metric": comp.efficiency_metric,
            "curves": curves,
        }
    return doc
