"""The two figures of one classifier run on test fold 10: ROC and reliability, per class.

What an experiment tracker keeps beside a run's numbers (the MLflow tracker logs them as
artifacts), drawn from the run's own ``predictions.npz`` so they show exactly the probabilities
``metrics.json`` was computed from (calibrated, where the run was). Comparing several methods or
seeds is ``ecg compare --plots`` (:mod:`ecgcli.experiments.plots`), which averages seeds; this
module draws one run and needs nothing above the scoring layer.

matplotlib is the ``plots`` extra: without it :func:`run_figures` draws nothing and says so by
returning no paths.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ecgcli.scoring.calibration import N_BINS, reliability

#: File names of the figures in the folder given to :func:`run_figures`.
ROC_PNG, RELIABILITY_PNG = "roc_test.png", "reliability_test.png"


def run_figures(run_dir: Path, out_dir: Path) -> list[Path]:
    """Write ``roc_test.png`` and ``reliability_test.png`` of ``run_dir`` into ``out_dir``;
    the paths written (none without matplotlib or without the run's test predictions)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    predictions = Path(run_dir) / "predictions.npz"
    if not predictions.is_file():
        return []
    with np.load(predictions, allow_pickle=False) as d:
        if "test_y" not in d.files or "test_prob" not in d.files:
            return []
        y, p = d["test_y"].astype(np.float64), d["test_prob"].astype(np.float64)
    names = _class_names(Path(run_dir), p.shape[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        _roc(plt, y, p, names, out_dir / ROC_PNG),
        _reliability(plt, y, p, names, out_dir / RELIABILITY_PNG),
    ]


def _class_names(run_dir: Path, n: int) -> list[str]:
    try:
        names = json.loads((run_dir / "metrics.json").read_text())["class_names"]
    except (OSError, ValueError, KeyError):
        names = []
    return list(names) if len(names) == n else [f"class {i}" for i in range(n)]


def _roc(plt: Any, y: np.ndarray, p: np.ndarray, names: list[str], path: Path) -> Path:
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for c, name in enumerate(names):
        if 0 < y[:, c].sum() < len(y):  # a class without positives or negatives has no curve
            fpr, tpr, _ = roc_curve(y[:, c], p[:, c])
            ax.plot(fpr, tpr, lw=1.2, label=f"{name} ({roc_auc_score(y[:, c], p[:, c]):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    _finish(ax, "false positive rate", "true positive rate", "class (AUROC)", len(names))
    ax.set_title("Test fold 10 ROC per class", fontsize=10)
    return _save(plt, fig, path)


def _reliability(plt: Any, y: np.ndarray, p: np.ndarray, names: list[str], path: Path) -> Path:
    count, conf, frac = reliability(y, p, N_BINS)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for c, name in enumerate(names):
        kept = count[c] > 0
        ax.plot(conf[c][kept], frac[c][kept], marker=".", lw=1.0, label=name)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    _finish(ax, "mean predicted probability", "fraction positive", "class", len(names))
    ax.set_title(f"Test fold 10 reliability per class ({N_BINS} bins)", fontsize=10)
    return _save(plt, fig, path)


def _finish(ax: Any, xlabel: str, ylabel: str, title: str, n: int) -> None:
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if n <= 25:  # 71 statements make a legend larger than the plot
        ax.legend(fontsize=6, title=title, title_fontsize=6, loc="lower right")


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
