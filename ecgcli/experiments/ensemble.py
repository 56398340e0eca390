"""Ensembles of trained classifiers (``ecg ensemble RUN_OR_CKPT... --out DIR``).

Averages the *calibrated* probabilities of several classifiers of the same task (different
encoders or seeds): each member's stored fold-9 and fold-10 probabilities (its run folder's
``predictions.npz``, already temperature-scaled when the run was calibrated) are averaged
record by record. Nothing is selected on fold 10: the per-class thresholds and the global
Fmax threshold are re-tuned on fold 9 from the averaged fold-9 probabilities, and the "best
member" the ensemble is compared with is the one with the highest fold-9 macro AUROC.

``DIR`` becomes a run-like folder that ``ecg compare`` reads: ``metrics.json`` (the usual
val/test scores, bootstrap CIs of fold-10 macro AUROC, AUPRC and Fmax, the members, and a
paired bootstrap of ensemble minus best member on the same fold-10 records), ``config.json``,
``predictions.npz`` and the checkpoint ``model.safetensors`` + ``model.json`` (kind
``ensemble``, see :mod:`ecgcli.models.ensemble`) that predict, explain and export load.

Members must agree on task, classes (and their order), leads, sampling rate, window, window
stride and aggregation, and have scored the same fold-9 and fold-10 records; anything else
is refused in one line. With ``aggregate=max`` a record's stored probability is the mean over
members of each member's max over windows, while the checkpoint scores a record as the max
over windows of the members' mean: the two differ slightly (they are equal for ``mean``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecgcli import LEADS
from ecgcli.errors import CheckpointError, ConfigError
from ecgcli.events import Callback, Message, ignore

#: Sidecar fields every member must share for their probabilities to be averaged.
SHARED = ("task", "class_names", "leads", "sampling_rate", "signal_length", "window_stride", "aggregate")
_WORDS = {
    "task": "tasks",
    "class_names": "classes",
    "leads": "leads",
    "sampling_rate": "sampling rates",
    "signal_length": "windows",
    "window_stride": "window strides",
    "aggregate": "window aggregations",
}


@dataclass
class Member:
    """One trained classifier: its checkpoint (tensors, sidecar) and stored predictions."""

    source: Path
    checkpoint: Path
    meta: dict[str, Any]
    tensors: dict[str, Any]
    preds: dict[str, np.ndarray]

    @property
    def name(self) -> str:
        return self.source.name if self.source.is_dir() else self.source.stem


@dataclass(frozen=True)
class EnsembleResult:
    out: Path
    metrics: dict[str, Any]


def load_member(arg: str | Path) -> Member:
    """A run folder, or a ``model.safetensors`` with its run's ``predictions.npz`` beside it."""
    from ecgcli.storage.checkpoint import load_tensors

    source = Path(arg)
    if not source.exists():
        raise ConfigError(f"{source}: no such run folder or checkpoint")
    ckpt = source / "model.safetensors" if source.is_dir() else source
    tensors, meta = load_tensors(ckpt)
    if meta.get("kind") != "classifier":
        raise ConfigError(
            f"{source}: is {meta.get('kind')!r}, not a trained classifier (ensembles take classifiers)"
        )
    preds_path = ckpt.parent / "predictions.npz"
    if not preds_path.is_file():
        raise ConfigError(
            f"{source}: no predictions.npz beside the checkpoint; "
            "give the run folder the checkpoint was trained in"
        )
    try:
        with np.load(preds_path, allow_pickle=False) as npz:
            preds = {
                k: npz[k] for k in ("val_ecg_id", "val_y", "val_prob", "test_ecg_id", "test_y", "test_prob")
            }
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{preds_path}: unreadable predictions ({exc})") from None
    return Member(source, ckpt, meta, tensors, preds)


def check_members(members: list[Member]) -> None:
    """Refuse, in one line, members whose probabilities cannot be averaged."""
    if len(members) < 2:
        raise ConfigError(f"an ensemble needs at least 2 members, got {len(members)}")
    first = members[0]
    for m in members[1:]:
        for key in SHARED:
            a, b = first.meta.get(key), m.meta.get(key)
            if key == "task":
                a, b = a or "superdiagnostic", b or "superdiagnostic"
            if key == "aggregate":
                a, b = a or "mean", b or "mean"
            if a != b:
                raise ConfigError(
                    f"members of different {_WORDS[key]} cannot be ensembled: {first.name} has "
                    f"{key} {a!r}, {m.name} has {b!r}"
                )
        for split in ("val", "test"):
            if not np.array_equal(first.preds[f"{split}_ecg_id"], m.preds[f"{split}_ecg_id"]):
                raise ConfigError(
                    f"{first.name} and {m.name} scored different {'fold-9' if split == 'val' else 'fold-10'} "
                    "records (another data set or split); ensemble runs of the same data"
                )


def _check_out(out: Path) -> None:
    """DIR must be new, empty, or an earlier ensemble (replaced)."""
    if out.is_file():
        raise ConfigError(f"--out {out}: is a file; give a folder for the ensemble")
    if out.is_dir() and any(out.iterdir()):
        try:
            earlier = json.loads((out / "metrics.json").read_text()).get("kind") == "ensemble"
        except (OSError, ValueError, AttributeError):
            earlier = False
        if not earlier:
            raise ConfigError(f"--out {out}: a folder with other files in it; give a new or empty folder")


def build_ensemble(
    sources: list[str | Path], out: Path, n_boot: int | None = None, callback: Callback = ignore
) -> EnsembleResult:
    """Average the members, score, and write ``out`` (see the module docstring)."""
    from ecgcli.scoring.calibration import calibration_report
    from ecgcli.scoring.evaluate import evaluate_split_pair
    from ecgcli.scoring.stats import (
        BOOTSTRAP_REPLICATES,
        macro_auroc,
        paired_bootstrap_auroc,
        test_bootstraps,
    )

    out = Path(out)
    _check_out(out)
    members = [load_member(s) for s in sources]
    check_members(members)
    n_boot = BOOTSTRAP_REPLICATES if n_boot is None else int(n_boot)
    if n_boot < 1:
        raise ConfigError(f"--bootstrap must be at least 1, got {n_boot}")
    names = tuple(members[0].meta["class_names"])
    y_val, y_test = members[0].preds["val_y"], members[0].preds["test_y"]
    p_val = np.mean([m.preds["val_prob"] for m in members], axis=0)
    p_test = np.mean([m.preds["test_prob"] for m in members], axis=0)
    callback(
        Message(f"averaging {len(members)} members on {len(y_val)} fold-9 and {len(y_test)} fold-10 records")
    )
    evaluation = evaluate_split_pair(y_val, p_val, y_test, p_test, class_names=names)
    val_aurocs = [macro_auroc(y_val, m.preds["val_prob"]) for m in members]
    best = int(np.nanargmax(val_aurocs))
    member_rows = [
        {
            "source": str(m.source),
            "encoder": (m.meta.get("architecture") or {}).get("encoder"),
            "calibrated": m.meta.get("temperature") is not None,
            "val_auroc": val_aurocs[i],
            "test_auroc": macro_auroc(y_test, m.preds["test_prob"]),
        }
        for i, m in enumerate(members)
    ]
    metrics = {
        "kind": "ensemble",
        "task": members[0].meta.get("task") or "superdiagnostic",
        "class_names": list(names),
        "combine": "mean of the members' calibrated probabilities; thresholds re-tuned on fold 9",
        "members": member_rows,
        "best_member": {
            "index": best,
            "source": str(members[best].source),
            "chosen_by": "fold-9 macro AUROC",
        },
        **evaluation.to_dict(),
        "bootstrap": test_bootstraps(y_test, p_test, evaluation.test_tuned.sample_threshold, n_boot=n_boot),
        "vs_best_member": {
            "metric": "fold-10 macro AUROC, ensemble minus best member, paired bootstrap (same records)",
            **paired_bootstrap_auroc(y_test, p_test, members[best].preds["test_prob"], n_boot=n_boot),
        },
        "calibration": {"method": "members' own", "test": calibration_report(y_test, p_test, list(names))},
    }
    _write(out, members, metrics, evaluation, (p_val, p_test))
    return EnsembleResult(out, metrics)


def _config(members: list[Member]) -> dict[str, Any]:
    """``config.json``: what ``ecg compare`` reads to name the method, and the members."""
    first = members[0].meta
    encoders = [(m.meta.get("architecture") or {}).get("encoder", "?") for m in members]
    cfg = dict(first.get("config") or {})
    return {
        **{k: cfg.get(k) for k in ("task", "leads", "label_fraction", "sampling_rate", "signal_length")},
        "kind": "ensemble",
        "ensemble": [str(m.source) for m in members],
        "encoders": encoders,
        "seed": -1,
    }


def _write(out: Path, members: list[Member], metrics: dict[str, Any], evaluation: Any, probs: tuple) -> None:
    from ecgcli.files import write_json_atomic
    from ecgcli.storage.checkpoint import checkpoint_meta, save_tensors
    from ecgcli.storage.runs import RunDir

    first = members[0].meta
    tensors: dict[str, Any] = {}
    for i, m in enumerate(members):
        for key, value in m.tensors.items():
            tensors[f"member{i}.model.{key}"] = value
        norm, temp = m.meta["normalisation"], m.meta.get("temperature")
        n = len(first["class_names"])
        tensors[f"member{i}.mean"] = _tensor(norm["mean"])[:, None]
        tensors[f"member{i}.std"] = _tensor(norm["std"])[:, None]
        tensors[f"member{i}.inv_temperature"] = 1.0 / _tensor(temp if temp is not None else [1.0] * n)
    leads = first.get("leads") or list(LEADS)
    meta = checkpoint_meta(
        "ensemble",
        architecture={"ensemble": len(members), "n_classes": len(first["class_names"])},
        class_names=list(first["class_names"]),
        task=first.get("task"),
        leads=list(leads),
        sampling_rate=first["sampling_rate"],
        signal_length=first["signal_length"],
        window_stride=first.get("window_stride"),
        aggregate=first.get("aggregate") or "mean",
        thresholds=evaluation.thresholds.tolist(),
        # members normalise and calibrate themselves inside the module: identity here, no temperature
        normalisation={"mean": [0.0] * len(leads), "std": [1.0] * len(leads)},
        members=[{k: v for k, v in m.meta.items() if k not in ("save_id",)} for m in members],
        metrics={"test_tuned": {"auroc": metrics["test_tuned"]["macro_auroc"]}},
        data=first.get("data"),
    )
    out.mkdir(parents=True, exist_ok=True)
    run = RunDir(out)
    save_tensors(run.model, tensors, meta)
    p_val, p_test = probs
    pr = members[0].preds
    run.write_predictions(
        val_ecg_id=pr["val_ecg_id"],
        val_y=pr["val_y"],
        val_prob=p_val,
        test_ecg_id=pr["test_ecg_id"],
        test_y=pr["test_y"],
        test_prob=p_test,
    )
    write_json_atomic(run.config, _config(members))
    write_json_atomic(run.metrics, metrics)


def _tensor(values: Any) -> Any:
    import torch

    try:
        return torch.as_tensor(np.asarray(values, dtype=np.float32))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"a member's sidecar normalisation or temperature is malformed ({exc})"
        ) from None
