"""Figures for ``ecg compare --plots DIR`` (matplotlib, the ``plots`` extra).

``roc_test.png`` (``roc_test_lf<fraction>.png`` per label fraction when there are several):
one panel per class, one ROC curve per method on the test fold (10). A method with several
seeds is drawn as the *vertical average* of its seeds' curves (mean true-positive rate at each
false-positive rate, Fawcett 2006) with a ±1 sd band; the legend gives the mean of the seeds'
per-class AUROCs. Curves come from each run's ``predictions.npz``.

``reliability_test.png`` (``reliability_test_lf<fraction>.png`` per label fraction when there
are several): the reliability diagram per class on the test fold, one line per method: the
fraction of positive records against the mean predicted probability in each of 15
equal-width bins, the seeds' predictions pooled; the legend gives the method's mean ECE for
the class. The diagonal is perfect calibration.

``label_efficiency.png``, only when some method was run at more than one label fraction:
mean test macro AUROC (left) and macro AUPRC (right) against the labelled fraction (log axis),
one line per method, with the Student's t 95% interval of the mean over seeds as a band. The
label-efficiency factor (:mod:`ecgcli.experiments.efficiency`) is read off these mean curves.

matplotlib is imported lazily with the Agg backend (:func:`ecgcli.inference.ecgpaper.pyplot`);
without it the error says how to get it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ecgcli.errors import ConfigError
from ecgcli.events import Callback, Message, ignore
from ecgcli.inference.ecgpaper import pyplot

if TYPE_CHECKING:
    from ecgcli.experiments.inputs import Method

_FPR = np.linspace(0.0, 1.0, 201)


def _roc(y: np.ndarray, score: np.ndarray) -> np.ndarray | None:
    """TPR interpolated at ``_FPR``; None when the class lacks positives or negatives."""
    from sklearn.metrics import roc_curve

    if y.all() or not y.any():
        return None
    fpr, tpr, _ = roc_curve(y, score)
    return np.interp(_FPR, fpr, tpr)


def _load_predictions(run_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        with np.load(Path(run_dir) / "predictions.npz", allow_pickle=False) as npz:
            return npz["test_y"].astype(bool), npz["test_prob"].astype(np.float64)
    except (OSError, ValueError, KeyError):
        return None


def _class_panels(plt: Any, n: int) -> tuple[Any, Any, int]:
    """A figure with one square panel per class, three to a row: ``(fig, axes, columns)``."""
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.0 * rows), squeeze=False)
    return fig, axes, cols


def _finish_panels(
    axes: Any, class_names: Sequence[str], labels: tuple[str, str], legend: dict[str, Any]
) -> None:
    """Per class panel: the diagonal, unit axes, its title and labels, and a legend when a
    method drew in it; panels past the last class are hidden."""
    cols = len(axes[0])
    for c in range(len(axes) * cols):
        ax = axes[c // cols][c % cols]
        if c >= len(class_names):
            ax.axis("off")
            continue
        drew = bool(ax.lines)
        ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--")
        ax.set(xlim=(0, 1), ylim=(0, 1.01), title=class_names[c], xlabel=labels[0])
        if c % cols == 0:
            ax.set_ylabel(labels[1])
        ax.set_aspect("equal")
        if drew:
            ax.legend(**legend)


def _save(plt: Any, fig: Any, path: Path, drawn: int) -> Path | None:
    """Write ``fig`` to ``path`` if any method was drawn (None otherwise), then close it."""
    fig.tight_layout()
    if drawn == 0:
        plt.close(fig)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def roc_figure(
    methods: Sequence[Method], class_names: Sequence[str], path: Path, callback: Callback = ignore
):
    """Write one ROC figure (a panel per class) for ``methods``; returns the path or None."""
    plt = pyplot()
    n = len(class_names)
    fig, axes, cols = _class_panels(plt, n)
    drawn = 0
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, m in enumerate(methods):
        preds = [p for p in (_load_predictions(d) for d in m.run_dirs) if p is not None]
        if len(preds) < len(m.run_dirs):
            callback(
                Message(
                    f"{m.name}: {len(m.run_dirs) - len(preds)} of {len(m.run_dirs)} runs have no "
                    "readable predictions.npz; ROC curves use the others",
                    "warning",
                )
            )
        if not preds:
            continue
        drawn += 1
        colour = colours[i % len(colours)]
        for c, cls in enumerate(class_names):
            ax = axes[c // cols][c % cols]
            curves = [t for t in (_roc(y[:, c], p[:, c]) for y, p in preds) if t is not None]
            if not curves:
                continue
            tpr = np.vstack(curves)
            mean = tpr.mean(axis=0)
            s = m.class_summary(cls, "auroc")
            auc = f"{s.mean:.3f}" if s is not None else "?"
            label = f"{m.name} ({auc})" + (f", {len(curves)} seeds" if len(curves) > 1 else "")
            ax.plot(_FPR, mean, color=colour, lw=1.6, label=label)
            if len(curves) > 1:
                sd = tpr.std(axis=0, ddof=1)
                ax.fill_between(
                    _FPR, np.clip(mean - sd, 0, 1), np.clip(mean + sd, 0, 1), color=colour, alpha=0.15
                )
    _finish_panels(
        axes,
        class_names,
        ("false positive rate", "true positive rate"),
        {"loc": "lower right", "fontsize": 7, "title": "method (AUROC)", "title_fontsize": 7},
    )
    fig.suptitle("Test fold 10 ROC per class (several seeds: mean curve ± 1 sd)", fontsize=11)
    return _save(plt, fig, path, drawn)


def reliability_figure(methods: Sequence[Method], class_names: Sequence[str], path: Path):
    """Reliability diagram per class (a panel each) for ``methods``; returns the path or None."""
    from ecgcli.scoring.calibration import expected_calibration_error, reliability

    plt = pyplot()
    n = len(class_names)
    fig, axes, cols = _class_panels(plt, n)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn = 0
    for i, m in enumerate(methods):
        preds = [p for p in (_load_predictions(d) for d in m.run_dirs) if p is not None]
        if not preds:
            continue
        drawn += 1
        y = np.concatenate([p[0] for p in preds])
        prob = np.concatenate([p[1] for p in preds])
        _, conf, frac = reliability(y, prob)
        ece = np.mean([expected_calibration_error(yy, pp) for yy, pp in preds], axis=0)
        for c in range(n):
            ax = axes[c // cols][c % cols]
            ok = np.isfinite(conf[c])
            label = f"{m.name} (ECE {ece[c]:.3f})"
            ax.plot(
                conf[c][ok],
                frac[c][ok],
                marker="o",
                ms=3,
                lw=1.4,
                color=colours[i % len(colours)],
                label=label,
            )
    _finish_panels(
        axes,
        class_names,
        ("mean predicted probability", "fraction positive"),
        {"loc": "upper left", "fontsize": 7},
    )
    fig.suptitle("Test fold 10 reliability per class (15 equal-width bins, seeds pooled)", fontsize=11)
    return _save(plt, fig, path, drawn)


def label_efficiency_figure(methods: Sequence[Method], path: Path, baseline: str | None = None):
    """AUROC and AUPRC against label fraction per method name; None if no method has 2 fractions."""
    plt = pyplot()
    by_name: dict[str, list[Method]] = {}
    for m in methods:
        by_name.setdefault(m.name, []).append(m)
    sweeps = {k: sorted(v, key=lambda m: m.label_fraction) for k, v in by_name.items() if len(v) > 1}
    if not sweeps:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    for ax, metric, label in ((axes[0], "auroc", "test macro AUROC"), (axes[1], "auprc", "test macro AUPRC")):
        for name, ms in sweeps.items():
            pts = [(m.label_fraction, m.summary(metric)) for m in ms]
            pts = [(x, s) for x, s in pts if s is not None]
            if not pts:
                continue
            x = np.array([p[0] for p in pts])
            y = np.array([p[1].mean for p in pts])
            label_text = f"{name} (baseline)" if name == baseline else name
            (line,) = ax.plot(
                x, y, marker="o", lw=1.6, label=label_text, ls="--" if name == baseline else "-"
            )
            lo = np.array([p[1].ci_low for p in pts], dtype=float)
            hi = np.array([p[1].ci_high for p in pts], dtype=float)
            ok = np.isfinite(lo) & np.isfinite(hi)
            if ok.any():
                ax.fill_between(x[ok], lo[ok], hi[ok], color=line.get_color(), alpha=0.18)
        ax.set_xscale("log")
        ticks = sorted({m.label_fraction for ms in sweeps.values() for m in ms})
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{100 * t:g}%" for t in ticks])
        ax.minorticks_off()
        ax.set(xlabel="labelled fraction of folds 1-8", ylabel=label)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
        else:  # runs made before AUPRC was recorded
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle("Label efficiency: mean over seeds with Student-t 95% CI band", fontsize=11)
    return _save(plt, fig, path, drawn=1)


def write_plots(
    methods: Sequence[Method], out_dir: Path, callback: Callback = ignore, baseline: str | None = None
) -> list[Path]:
    """Every figure that applies to ``methods``; returns the files written. ``baseline`` is
    drawn dashed and labelled in the label-efficiency figure."""
    pyplot()  # fail before doing anything when matplotlib is missing
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot write --plots {out_dir}: {exc.strerror or exc}") from None
    class_names = methods[0].class_names
    written: list[Path] = []
    fractions = sorted({m.label_fraction for m in methods})
    for lf in fractions:
        name = "roc_test.png" if len(fractions) == 1 else f"roc_test_lf{lf:g}.png"
        group = [m for m in methods if m.label_fraction == lf]
        path = roc_figure(group, class_names, out_dir / name, callback)
        if path is not None:
            written.append(path)
        name = "reliability_test.png" if len(fractions) == 1 else f"reliability_test_lf{lf:g}.png"
        path = reliability_figure(group, class_names, out_dir / name)
        if path is not None:
            written.append(path)
    path = label_efficiency_figure(methods, out_dir / "label_efficiency.png", baseline)
    if path is not None:
        written.append(path)
    return written
