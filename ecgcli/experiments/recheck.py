"""``ecg models --check NAME``: recompute a shipped model's card numbers on the user's PTB-XL.

The model scores fold 10 through the same code ``ecg predict`` uses (the shipped checkpoint,
its normalisation, windows, temperature and aggregation), from the signal cache rather than
WFDB files; the metrics and bootstrap intervals are the ones training computed
(:func:`ecgcli.scoring.stats.test_bootstraps`, seed 0, 1,000 replicates). So a faithful copy
of PTB-XL reproduces the card to its printed precision, and a difference points at the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecgcli import pretrained
from ecgcli.errors import ConfigError, DataError
from ecgcli.events import Callback, ignore
from ecgcli.experiments.shipping import Fold10

#: (key in the card's fold10 block, label, digits printed)
CHECKED = (
    ("macro_auroc", "macro AUROC", 3),
    ("macro_auprc", "macro AUPRC", 3),
    ("fmax", "Fmax (fold-9 threshold)", 3),
    ("macro_f1_tuned", "macro F1 (fold-9 thresholds)", 3),
    ("ece", "macro ECE", 3),
)


@dataclass
class Recheck:
    """The card's numbers beside the ones recomputed here."""

    name: str
    card: dict[str, Any]
    yours: dict[str, Any]

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for key, label, digits in CHECKED:
            a, b = self.card.get(key), self.yours.get(key)
            agree = a is not None and b is not None and f"{a:.{digits}f}" == f"{b:.{digits}f}"
            out.append({"metric": label, "key": key, "card": a, "yours": b, "digits": digits, "agree": agree})
        return out

    @property
    def agrees(self) -> bool:
        return all(r["agree"] for r in self.rows() if r["card"] is not None)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.name, "agrees": self.agrees, "rows": self.rows(), "yours": self.yours}


def recheck(
    name: str, data_root: Path, cache_dir: Path, workers: int = 1, callback: Callback = ignore
) -> Recheck:
    """Score shipped classifier ``name`` on fold 10 of the PTB-XL folder ``data_root``."""
    from ecgcli.scoring.calibration import calibration_report
    from ecgcli.scoring.metrics import compute_metrics
    from ecgcli.scoring.stats import test_bootstraps

    model, predictor = _classifier(name)
    scored = shipped_fold10(name, data_root, cache_dir, workers, callback, predictor)
    y, p = scored.y, scored.prob
    fmax_t = model.fold10.get("fmax_threshold")
    boots = test_bootstraps(y, p, fmax_t if fmax_t is not None else 0.5)
    tuned = compute_metrics(y, p, predictor.thresholds, predictor.class_names)
    cal = calibration_report(y, p, list(predictor.class_names))
    yours = {
        "macro_auroc": boots["auroc"]["estimate"],
        "auroc_ci": [boots["auroc"]["ci_low"], boots["auroc"]["ci_high"]],
        "macro_auprc": boots["auprc"]["estimate"],
        "auprc_ci": [boots["auprc"]["ci_low"], boots["auprc"]["ci_high"]],
        "fmax": boots["fmax"]["estimate"],
        "fmax_ci": [boots["fmax"]["ci_low"], boots["fmax"]["ci_high"]],
        "macro_f1_tuned": tuned.macro_f1,
        "ece": cal["macro_ece"],
        "n": int(len(y)),
    }
    return Recheck(name, model.fold10, yours)


def _classifier(name: str) -> tuple[pretrained.ShippedModel, Any]:
    """Shipped classifier ``name`` and its loaded predictor (an encoder is one line)."""
    from ecgcli.inference.predict import Predictor

    model = pretrained.get(name)
    if model.kind != "classifier":
        raise ConfigError(f"{name} is a pretrained encoder: it has no fold-10 scores to check")
    return model, Predictor.from_checkpoint(pretrained.resolve(name), device="cpu")


def shipped_fold10(
    name: str,
    data_root: Path,
    cache_dir: Path,
    workers: int = 1,
    callback: Callback = ignore,
    predictor: Any = None,
) -> Fold10:
    """Shipped classifier ``name``'s probabilities of every fold-10 record of ``data_root``, as
    ``ecg predict`` computes them (from the signal cache); ``predictor``: its loaded predictor,
    when the caller has one already."""
    import torch

    from ecgcli.data.cache import ensure_cache
    from ecgcli.data.leads import lead_indices
    from ecgcli.data.ptbxl import TEST_FOLD, load_ptbxl
    from ecgcli.scoring.evaluate import to_windows

    model, predictor = _classifier(name) if predictor is None else (pretrained.get(name), predictor)
    ds = load_ptbxl(Path(data_root), predictor.fs, task=model.task)
    if tuple(ds.class_names) != tuple(predictor.class_names):
        raise DataError(
            f"{data_root}: the {model.task} task has other classes here than {name} was trained on "
            f"({len(ds.class_names)} against {len(predictor.class_names)})"
        )
    rows = ds.fold_rows(TEST_FOLD)
    store = ensure_cache(ds, Path(cache_dir), workers, callback)
    y = ds.labels[rows]
    leads = lead_indices(predictor.leads)
    probs = []
    for s in range(0, len(rows), 256):  # bounded memory: a chunk of records at a time
        x = torch.from_numpy(np.ascontiguousarray(store.get(rows[s : s + 256])[:, leads]))
        windows, k = to_windows(x, predictor.window, predictor.stride)
        counts = np.full(x.shape[0], k)
        probs.append(predictor.score_windows(windows.numpy().copy(), counts, predictor.aggregate))
    p = np.concatenate(probs).astype(np.float64)
    return Fold10(list(predictor.class_names), ds.ecg_ids[rows], y, p)
