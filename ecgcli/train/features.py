"""The handcrafted-feature baseline: ``features:logreg`` and ``features:forest`` in a grid.

Features of every record (:mod:`ecgcli.data.features`: per-lead statistics, heart rate and
RR variability, db4 wavelet energies; after the PTB-XL benchmark's Wavelet+NN model, Strodthoff
et al. 2021, itself after Sharma et al. 2018), then a scikit-learn classifier on the labelled
fraction of folds 1-8: one-vs-rest logistic regression on standardised features, or a random
forest (multi-label natively). Missing rhythm features (too few beats found) are imputed with
the training median.

The protocol is the supervised runs', so a grid pairs it with them by seed: the labelled
subset is the same split (``PTBXL.split(label_fraction, seed)``); the one hyperparameter (C of
the regression, the forest's minimum leaf size) is chosen on fold 9 by ``select_metric``
(unless given), as a network's best epoch is; per-class thresholds are tuned on fold 9 and
fold 10 is scored by the same functions (:func:`ecgcli.scoring.evaluate.evaluate_split_pair`,
the bootstrap, calibration), written to an ordinary run directory with the same metrics.json.
``model.safetensors`` holds the fitted classifier's arrays (imputer, scaler, coefficients, or
the forest's trees) with a ``features`` sidecar; ``ecg predict`` does not run it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ecgcli.data.cache import SignalStore
from ecgcli.data.features import FEATURES_VERSION, extract_features, feature_names
from ecgcli.data.leads import lead_indices, parse_leads
from ecgcli.events import Callback, Message, ignore
from ecgcli.scoring.calibration import calibration_report
from ecgcli.scoring.evaluate import evaluate_split_pair, headline
from ecgcli.scoring.metrics import compute_metrics
from ecgcli.scoring.stats import test_bootstraps
from ecgcli.storage.checkpoint import checkpoint_meta, save_tensors
from ecgcli.storage.runs import RunDir
from ecgcli.train.config import FOREST_LEAF_GRID, LOGREG_C_GRID, FeaturesConfig
from ecgcli.train.data import TrainingData, load_training_data
from ecgcli.train.run import RunResult, data_summary

# Samples per feature batch (32 12-lead records at 100 Hz): the temporaries then stay small
# enough to be reused by the allocator; 256 records at a time measured 1.5x slower, 600 3.7x.
_CHUNK_SAMPLES = 32 * 12 * 1000
# per process: (cache_id, leads, rate, version) -> (features of every cache row, rows computed)
_FEATURES: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = {}


def record_features(
    store: SignalStore, rows: np.ndarray, leads: list[int], sampling_rate: int, callback: Callback = ignore
) -> np.ndarray:
    """Features of the cache ``rows`` (N, F); computed once per process and record, so the
    cells of a grid (other seeds, other classifiers) reuse them."""
    key = (store.cache_id, tuple(leads), sampling_rate, FEATURES_VERSION)
    n_total = store.signals.shape[0]
    if key not in _FEATURES:
        n_feat = len(feature_names([str(i) for i in leads], sampling_rate))
        _FEATURES[key] = (np.full((n_total, n_feat), np.nan), np.zeros(n_total, dtype=bool))
    table, done = _FEATURES[key]
    rows = np.asarray(rows)
    todo = np.unique(rows[~done[rows]])
    if len(todo):
        t0 = time.perf_counter()
        chunk = max(1, _CHUNK_SAMPLES // (len(leads) * store.length))
        for s in range(0, len(todo), chunk):
            part = todo[s : s + chunk]
            table[part] = extract_features(store.get(part)[:, leads], sampling_rate)
        done[todo] = True
        callback(Message(f"handcrafted features of {len(todo)} records in {time.perf_counter() - t0:.1f}s"))
    return table[rows]


def _logreg(c: float, seed: int) -> Any:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        SimpleImputer(strategy="median"),
        StandardScaler(),
        OneVsRestClassifier(LogisticRegression(C=c, max_iter=2000, random_state=seed)),
    )


def _forest(trees: int, min_leaf: int, seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    from ecgcli.settings import usable_cores

    return make_pipeline(
        SimpleImputer(strategy="median"),
        RandomForestClassifier(
            n_estimators=trees, min_samples_leaf=min_leaf, random_state=seed, n_jobs=usable_cores()
        ),
    )


def _candidates(cfg: FeaturesConfig) -> list[tuple[dict[str, Any], Any]]:
    """The hyperparameter settings to choose from on fold 9 (one when the user fixed it)."""
    if cfg.classifier == "logreg":
        grid = [cfg.logreg_c] if cfg.logreg_c is not None else list(LOGREG_C_GRID)
        return [({"C": c}, _logreg(c, cfg.seed)) for c in grid]
    leaves = [cfg.forest_min_leaf] if cfg.forest_min_leaf is not None else list(FOREST_LEAF_GRID)
    return [
        ({"trees": cfg.forest_trees, "min_leaf": m}, _forest(cfg.forest_trees, m, cfg.seed)) for m in leaves
    ]


def predict_proba(model: Any, x: np.ndarray) -> np.ndarray:
    """(N, classes) positive-class probabilities of a fitted pipeline (a forest returns one
    (N, 2) array per class)."""
    p = model.predict_proba(x)
    if isinstance(p, list):
        return np.stack([q[:, 1] if q.shape[1] == 2 else np.zeros(len(q)) for q in p], axis=1)
    return np.asarray(p)


def train_features(
    cfg: FeaturesConfig, callback: Callback = ignore, data: TrainingData | None = None
) -> RunResult:
    """Fit, select on fold 9, evaluate on fold 10 and write the run directory."""
    cfg.check()
    t_start = time.perf_counter()
    data = data or load_training_data(cfg, cfg.label_fraction, callback)
    ds, split, store = data.dataset, data.split, data.store
    run = RunDir.create(
        Path(cfg.runs_dir), cfg.name or cfg.default_name(), Path(cfg.run_dir) if cfg.run_dir else None
    )
    run.write_config(cfg.to_dict())
    leads = parse_leads(cfg.leads)
    rows = lead_indices(leads)
    names = feature_names(leads, cfg.sampling_rate)
    x_train, x_val, x_test = (
        record_features(store, r, rows, cfg.sampling_rate, callback)
        for r in (split.train, split.val, split.test)
    )
    y_train, y_val, y_test = (ds.labels[r] for r in (split.train, split.val, split.test))
    callback(
        Message(
            f"{len(split.train)} training records ({100 * cfg.label_fraction:g}% of folds 1-8), {len(names)} "
            f"features, {cfg.classifier}"
        )
    )
    t_fit = time.perf_counter()
    history, best, best_score = [], None, -np.inf
    for i, (params, model) in enumerate(_candidates(cfg), start=1):
        model.fit(x_train, y_train)
        p_val = predict_proba(model, x_val)
        scores = headline(compute_metrics(y_val, p_val, class_names=ds.class_names))
        history.append({"candidate": i, "params": params, **{f"val_{k}": v for k, v in scores.items()}})
        score = scores[cfg.select_metric]
        if best is None or (np.isfinite(score) and score > best_score):
            best, best_score = (i, params, model, p_val), score if np.isfinite(score) else best_score
        run.log(f"candidate {i} {params}: val {cfg.select_metric} {score:.4f}")
    assert best is not None
    chosen, params, model, p_val = best
    train_seconds = time.perf_counter() - t_fit
    t_eval = time.perf_counter()
    p_test = predict_proba(model, x_test)
    evaluation = evaluate_split_pair(y_val, p_val, y_test, p_test, class_names=ds.class_names)
    metrics = {
        "kind": "features",
        "task": cfg.task,
        "class_names": list(ds.class_names),
        "select_metric": cfg.select_metric,
        "classifier": cfg.classifier,
        "chosen": {"candidate": chosen, "params": params},
        "n_features": len(names),
        "best_epoch": None,
        "epochs_run": None,
        "stopped_early": False,
        "history": history,
        **evaluation.to_dict(),
        "bootstrap": test_bootstraps(y_test, p_test, evaluation.test_tuned.sample_threshold),
        "calibration": {"method": None, "test": calibration_report(y_test, p_test, list(ds.class_names))},
        "data": data_summary(data),
        "timing": {
            "train_seconds": round(train_seconds, 2),
            "eval_seconds": round(time.perf_counter() - t_eval, 2),
            "total_seconds": round(time.perf_counter() - t_start, 2),
            "device": "cpu",
        },
    }
    meta = checkpoint_meta(
        "features",
        classifier=cfg.classifier,
        params=params,
        feature_names=names,
        features_version=FEATURES_VERSION,
        class_names=list(ds.class_names),
        task=cfg.task,
        leads=list(leads),
        sampling_rate=cfg.sampling_rate,
        thresholds=evaluation.thresholds.tolist(),
        config=cfg.to_dict(),
        metrics={"val": headline(evaluation.val), "test": headline(evaluation.test)},
        data={"cache_id": store.cache_id, "data_root": str(ds.root)},
    )
    tensors = model_tensors(model)
    save_tensors(run.model, tensors, meta)
    if cfg.out:
        save_tensors(Path(cfg.out), tensors, meta)
    run.write_predictions(
        val_ecg_id=ds.ecg_ids[split.val],
        val_y=y_val,
        val_prob=p_val,
        test_ecg_id=ds.ecg_ids[split.test],
        test_y=y_test,
        test_prob=p_test,
    )
    run.write_metrics(metrics)
    t = evaluation.test
    run.log(
        f"test (fold 10): AUROC {t.macro_auroc:.4f} F1 {t.macro_f1:.4f} "
        f"F1@tuned {evaluation.test_tuned.macro_f1:.4f} candidate {chosen} {params}"
    )
    return RunResult(run.path, run.model, evaluation, metrics)


def clear_unfinished(path: Path) -> None:
    """Remove the outputs a feature run killed before its metrics.json left (it has no
    epochs to resume: it starts again, and its directory must look unstarted for that)."""
    run = RunDir(Path(path))
    if run.path.is_dir() and not run.metrics.is_file():
        for name in ("model.safetensors", "model.json", "predictions.npz"):
            (run.path / name).unlink(missing_ok=True)


def model_tensors(model: Any) -> dict[str, Any]:
    """The fitted pipeline as named arrays (no pickle): the imputer's medians, then the
    scaler and one-vs-rest coefficients, or every tree of the forest, concatenated (node
    arrays; ``tree_offsets`` marks where each tree starts)."""
    import torch

    steps = dict(model.named_steps)
    out = {"impute_median": steps["simpleimputer"].statistics_}
    if "standardscaler" in steps:
        scaler, ovr = steps["standardscaler"], steps["onevsrestclassifier"]
        out |= {
            "scale_mean": scaler.mean_,
            "scale_std": scaler.scale_,
            "coef": np.concatenate([e.coef_ for e in ovr.estimators_]),
            "intercept": np.concatenate([e.intercept_ for e in ovr.estimators_]),
        }
    else:
        trees = [e.tree_ for e in steps["randomforestclassifier"].estimators_]
        out |= {
            "tree_offsets": np.cumsum([0] + [t.node_count for t in trees]),
            "children_left": np.concatenate([t.children_left for t in trees]),
            "children_right": np.concatenate([t.children_right for t in trees]),
            "feature": np.concatenate([t.feature for t in trees]),
            "threshold": np.concatenate([t.threshold for t in trees]),
            "value": np.concatenate([t.value for t in trees]),
        }
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in out.items()}
