"""Turning a finished run into a shipped model: files, reference probabilities, card, manifest.

``scripts/build_pretrained.py`` calls :func:`build_shipped_model` once per model, from the run
that trained it on real PTB-XL; the tests call it on a tiny synthetic run to check the whole
path (names, checksums, cards, reference probabilities) without PTB-XL.

What a model folder receives, and why:

- ``model.safetensors`` + ``model.json``: the run's best checkpoint, byte for byte (its
  ``save_id`` pairs them), so the shipped model *is* the one the run scored.
- ``model.onnx`` (classifiers): ``ecg export``'s file, so ``ecg predict`` starts without torch.
- ``reference.json``: what the model gave the example records when it was built (probabilities
  for a classifier, pooled features for an encoder), for the tests' reproduction check.
- ``MODEL_CARD.md``: written from the run's own files (config, metrics, timing), never typed.
"""

from __future__ import annotations

import json
import platform
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecgcli.errors import ConfigError
from ecgcli.experiments.results import test_set_id
from ecgcli.files import write_json_atomic
from ecgcli.pretrained import FILE_NAMES, MANIFEST_FORMAT, MANIFEST_VERSION, sha256_file


@dataclass(frozen=True)
class Provenance:
    """How the run was made, as its maintainer states it (the run folder cannot know)."""

    command: str
    commit: str
    data: str = "PTB-XL 1.0.1 (Wagner et al. 2020, PhysioNet, CC BY 4.0), records100 (100 Hz)"
    hardware: str = ""
    population: str = ""


def population(data_root: Path) -> str:
    """Who is in the PTB-XL folder the model was trained from, counted from its table."""
    import pandas as pd

    db = pd.read_csv(Path(data_root) / "ptbxl_database.csv")
    dates = pd.to_datetime(db["recording_date"], errors="coerce")
    devices = db["device"].astype(str).str.split().str[0].value_counts()
    return (
        f"{len(db):,} records of {db['patient_id'].nunique():,} patients, recorded between "
        f"{dates.min().year} and {dates.max().year}; {(db['sex'] == 0).mean():.0%} of records from men "
        f"(PTB-XL's sex code 0); median age {db['age'].median():g} (range {db['age'].min():g} to "
        f"{db['age'].max():g}); devices {', '.join(devices.index[:3])} and others"
    )


def cpu_name() -> str:
    """The CPU model, from /proc/cpuinfo where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def example_stems(folder: Path) -> list[Path]:
    """The example records (``*.hea`` under ``folder``), in name order, without suffix."""
    return sorted(p.with_suffix("") for p in Path(folder).glob("*.hea"))


def _fold10(metrics: dict[str, Any]) -> dict[str, Any]:
    """The card's headline numbers from a run's metrics.json, unrounded: the card prints them to
    3 decimals and ``ecg models --check`` compares at that precision (rounding twice would not
    agree)."""
    boot = metrics.get("bootstrap") or {}
    cal = metrics.get("calibration") or {}

    def ci(name: str) -> list[float] | None:
        b = boot.get(name)
        return [b["ci_low"], b["ci_high"]] if b else None

    test, tuned = metrics["test"], metrics["test_tuned"]
    out = {
        "macro_auroc": test["macro_auroc"],
        "auroc_ci": ci("auroc"),
        "macro_auprc": boot["auprc"]["estimate"] if "auprc" in boot else None,
        "auprc_ci": ci("auprc"),
        "fmax": boot["fmax"]["estimate"] if "fmax" in boot else None,
        "fmax_ci": ci("fmax"),
        "fmax_threshold": tuned.get("sample_threshold"),
        "macro_f1_tuned": tuned["macro_f1"],
        "n": int(test["n"]),
        "ece": cal["test"]["macro_ece"] if cal.get("test") else None,
        "ece_uncalibrated": cal["test_uncalibrated"]["macro_ece"] if cal.get("test_uncalibrated") else None,
    }
    return out


@dataclass(frozen=True)
class Fold10:
    """A classifier's fold-10 probabilities, with the records and labels they belong to."""

    class_names: list[str]
    ecg_ids: np.ndarray
    y: np.ndarray
    prob: np.ndarray


def run_fold10(run_dir: Path) -> Fold10:
    """A finished run's fold-10 predictions (its predictions.npz and sidecar's classes)."""
    path = Path(run_dir) / "predictions.npz"
    try:
        sidecar = json.loads((Path(run_dir) / FILE_NAMES["sidecar"]).read_text())
        with np.load(path, allow_pickle=False) as npz:
            ids, y, p = npz["test_ecg_id"], npz["test_y"], npz["test_prob"]
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{run_dir}: not a finished classifier run ({exc})") from None
    return Fold10(list(sidecar.get("class_names") or []), ids, y, p)


def paired_difference(run_dir: Path, baseline: Fold10, label: str) -> dict[str, Any]:
    """``run_dir``'s fold-10 macro AUROC minus ``baseline``'s, by paired bootstrap on the same
    records (what a reduced-lead model costs against its 12-lead twin, say). Both are one
    training seed each: the interval covers the test records' variation, not the seeds'."""
    from sklearn.metrics import roc_auc_score

    from ecgcli.scoring.stats import macro_auroc, paired_bootstrap_auroc

    mine = run_fold10(run_dir)
    names = mine.class_names
    if names != baseline.class_names:
        raise ConfigError(f"{label}: predicts {baseline.class_names}, not this model's classes {names}")
    if set(mine.ecg_ids.tolist()) != set(baseline.ecg_ids.tolist()):
        raise ConfigError(f"{label}: scored other fold-10 records than {run_dir}")
    order, base_order = np.argsort(mine.ecg_ids), np.argsort(baseline.ecg_ids)
    y, p, base_p = mine.y[order], mine.prob[order], baseline.prob[base_order]
    if not np.array_equal(y, baseline.y[base_order]):
        raise ConfigError(f"{label}: its fold-10 labels differ from {run_dir}'s")
    test = paired_bootstrap_auroc(y, p, base_p)
    per_class = {
        c: [float(roc_auc_score(y[:, k], p[:, k])), float(roc_auc_score(y[:, k], base_p[:, k]))]
        for k, c in enumerate(names)
        if 0 < y[:, k].sum() < len(y)
    }
    return {
        "against": label,
        "n": len(y),
        "macro_auroc": macro_auroc(y, p),
        "baseline_macro_auroc": macro_auroc(y, base_p),
        "delta": test["delta"],
        "ci": [test["lo"], test["hi"]],
        "p_not_better": test["p_not_better"],
        "n_boot": test["n_boot"],
        "per_class": per_class,
    }


def _classifier_reference(weights: Path, stems: Sequence[Path]) -> dict[str, Any]:
    """Probabilities of ``stems`` by the torch runtime, and by the ONNX file beside it."""
    from ecgcli.inference.onnx_runtime import OnnxPredictor
    from ecgcli.inference.predict import Failure, Predictor

    torch_p = Predictor.from_checkpoint(weights, threads=1)
    results = list(torch_p.predict(stems))
    failed = [r for r in results if isinstance(r, Failure)]
    if failed:
        raise ConfigError(f"an example record cannot be scored: {failed[0].message}")
    probs = np.array([[r.probabilities[c] for c in torch_p.class_names] for r in results])
    onnx = OnnxPredictor.from_file(weights.with_name(FILE_NAMES["onnx"]))
    onnx_probs = np.array(
        [[r.probabilities[c] for c in torch_p.class_names] for r in onnx.predict(stems)]  # type: ignore[union-attr]
    )
    return {
        "what": "probabilities (torch runtime) of the example records, as ecg predict gives them",
        "class_names": list(torch_p.class_names),
        "records": {Path(s).name: p.tolist() for s, p in zip(stems, probs, strict=True)},
        "onnx_max_abs_delta": float(np.abs(onnx_probs - probs).max()),
    }


def _encoder_reference(weights: Path, stems: Sequence[Path]) -> dict[str, Any]:
    """Pooled features of the first window of each example record (normalised as the
    encoder's sidecar says, when it says)."""
    import torch

    from ecgcli.data.records import prepare_record
    from ecgcli.storage.checkpoint import load_encoder

    encoder, meta = load_encoder(weights)
    window = int(meta.get("signal_length") or 250)
    x = np.stack([prepare_record(s, int(meta.get("sampling_rate") or 100), window).windows[0] for s in stems])
    norm = meta.get("normalisation")
    if norm:
        x = (x - np.asarray(norm["mean"], np.float32)[:, None]) / np.asarray(norm["std"], np.float32)[:, None]
    torch.set_num_threads(1)
    with torch.inference_mode():
        feats = encoder(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).float()
    return {
        "what": "encoder output of the first window of each example record",
        "window": window,
        "records": {Path(s).name: f.tolist() for s, f in zip(stems, feats.numpy(), strict=True)},
    }


def retuned(run_dir: Path, metrics: dict[str, Any], sidecar: dict[str, Any]) -> tuple[dict, dict]:
    """``metrics`` and ``sidecar`` with the per-class thresholds tuned again on the run's fold-9
    predictions by this version's :func:`~ecgcli.scoring.metrics.tune_thresholds`, and the
    tuned-threshold scores recomputed; unchanged when the thresholds are the same. A run trained
    before a tuning rule was fixed ships with the fixed rule's thresholds; nothing is chosen on
    fold 10 (``thresholds_retuned`` in the metrics lists the classes that changed)."""
    from ecgcli.scoring.evaluate import evaluate_split_pair, headline

    with np.load(run_dir / "predictions.npz") as npz:
        val_y, val_p, test_y, test_p = (npz[k] for k in ("val_y", "val_prob", "test_y", "test_prob"))
    names = tuple(sidecar["class_names"])
    fresh = evaluate_split_pair(val_y, val_p, test_y, test_p, names)
    pairs = zip(names, fresh.thresholds, metrics["thresholds"], strict=True)
    changed = [n for n, a, b in pairs if abs(a - b) > 1e-9]
    if not changed:
        return metrics, sidecar
    scores = fresh.to_dict()  # its "thresholds" replace the run's
    brief = {**(sidecar.get("metrics") or {}), "test_tuned": headline(fresh.test_tuned)}
    return {**metrics, **scores, "thresholds_retuned": changed}, {
        **sidecar,
        "thresholds": scores["thresholds"],
        "metrics": brief,
    }


def build_shipped_model(
    run_dir: Path,
    name: str,
    zoo: Path,
    examples: Path,
    provenance: Provenance,
    summary: str,
    default: bool = False,
    against: tuple[Fold10, str] | None = None,
) -> dict[str, Any]:
    """Copy ``run_dir``'s model into ``zoo/name``, add its ONNX file, reference and card, and
    record it in ``zoo/manifest.json``. Returns the manifest entry. ``against`` (another model's
    fold-10 predictions on the same task, and its label) adds the paired comparison to the card."""
    from ecgcli.experiments.cards import render_card

    run_dir, zoo = Path(run_dir), Path(zoo)
    weights = run_dir / FILE_NAMES["weights"]
    sidecar = json.loads((run_dir / FILE_NAMES["sidecar"]).read_text())
    kind = sidecar.get("kind")
    if kind not in ("classifier", "encoder"):
        raise ConfigError(f"{run_dir}: holds {kind!r}, not a classifier or encoder checkpoint")
    dest = zoo / name
    dest.mkdir(parents=True, exist_ok=True)
    config = json.loads((run_dir / "config.json").read_text())
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    if kind == "classifier":
        metrics, sidecar = retuned(run_dir, metrics, sidecar)
    shutil.copyfile(weights, dest / FILE_NAMES["weights"])
    write_json_atomic(dest / FILE_NAMES["sidecar"], sidecar)
    stems = example_stems(examples)
    if kind == "classifier":
        from ecgcli.inference.export import export_model

        export_model(dest / FILE_NAMES["weights"], "onnx", dest / FILE_NAMES["onnx"])
        ref = _classifier_reference(dest / FILE_NAMES["weights"], stems)
        fold10 = {**_fold10(metrics), "test_set": test_set_id(run_fold10(run_dir).ecg_ids)}
        comparison = paired_difference(run_dir, against[0], against[1]) if against else None
    else:
        ref = _encoder_reference(dest / FILE_NAMES["weights"], stems)
        fold10, comparison = {}, None
    write_json_atomic(dest / FILE_NAMES["reference"], ref)
    hardware = (
        provenance.hardware or f"{cpu_name()}, {(metrics.get('timing') or {}).get('threads', '?')} thread(s)"
    )
    card = render_card(
        name,
        sidecar,
        config,
        metrics,
        fold10,
        ref,
        Provenance(**{**provenance.__dict__, "hardware": hardware}),
        summary,
        comparison,
    )
    (dest / FILE_NAMES["card"]).write_text(card, encoding="utf-8")
    files = {
        role: {
            "path": f"{name}/{fname}",
            "sha256": sha256_file(dest / fname),
            "bytes": (dest / fname).stat().st_size,
        }
        for role, fname in FILE_NAMES.items()
        if (dest / fname).exists()
    }
    entry = {
        "kind": kind,
        "task": sidecar.get("task") or config.get("task", ""),
        "summary": summary,
        "classes": list(sidecar.get("class_names") or []),
        "leads": list(sidecar.get("leads") or []),
        "sampling_rate": int(sidecar.get("sampling_rate") or 100),
        "files": files,
        "fold10": fold10,
        "extra": {
            "encoder": (sidecar.get("architecture") or {}).get("encoder"),
            "command": provenance.command,
            **({"compared_to": comparison} if comparison else {}),
        },
    }
    manifest_path = zoo / "manifest.json"
    doc = (
        json.loads(manifest_path.read_text())
        if manifest_path.exists()
        else {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "default": None, "models": {}}
    )
    doc["models"][name] = entry
    if default:
        doc["default"] = name
    write_json_atomic(manifest_path, doc)
    return entry
