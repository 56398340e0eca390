"""The results file of a grid, ``OUT/multiseed.json``: its schema, how a finished run
becomes a record, and the statistics over seeds.

Per (configuration, fraction) and metric: mean, sample standard deviation (ddof 1), the
Student's t 95% interval of the mean, min, max and n (:func:`ecgcli.scoring.stats.summarize`).
Between each configuration and the baseline at the same fraction, on the seeds both finished:
paired t-test (the one the tables report), Wilcoxon signed-rank, Welch's t, mean difference
with its t interval, Cohen's d_z and Hedges' g (:func:`ecgcli.scoring.stats.paired_tests`).
Each run's test AUROC, AUPRC and Fmax also get percentile bootstrap 95% intervals over test
records (1000 replicates, seed 0; :func:`ecgcli.scoring.stats.bootstrap_ci`). The file is
rewritten atomically after every finished cell.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ecgcli import __version__
from ecgcli.errors import CheckpointError, ConfigError, DataError, EcgError
from ecgcli.files import json_safe, write_json_atomic
from ecgcli.scoring.stats import BOOTSTRAP_REPLICATES, BOOTSTRAP_SEED

if TYPE_CHECKING:
    from ecgcli.experiments.grid import Cell, Grid

FORMAT = "ecgcli-multiseed"
VERSION = 1
RESULTS_FILE = "multiseed.json"


#: Summarised metrics: key -> (metrics.json section of the split, field, description). ``{}``
#: is ``test`` or ``val``; ``_tuned`` sections use the thresholds tuned on fold 9.
METRICS: dict[str, tuple[str, str, str]] = {
    "auroc": ("{}_tuned", "macro_auroc", "macro AUROC"),
    "f1": ("{}_tuned", "macro_f1", "macro F1 at per-class thresholds tuned on fold 9"),
    "sensitivity": ("{}_tuned", "sensitivity", "micro sensitivity at fold-9-tuned thresholds"),
    "specificity": ("{}_tuned", "specificity", "micro specificity at fold-9-tuned thresholds"),
    "f1@0.5": ("{}", "macro_f1", "macro F1 at threshold 0.5"),
    "auprc": ("{}_tuned", "macro_auprc", "macro AUPRC (average precision)"),
    "fmax": ("{}_tuned", "sample_f1", "sample-centric Fmax at the global threshold chosen on fold 9"),
    "fmax_bench": ("{}", "fmax", "Fmax as the PTB-XL benchmark takes it: best threshold on the scored fold"),
}
#: Metrics that runs of ecgcli before 0.2 did not record: None in their results, not an error.
_ADDED_LATER = {"auprc", "fmax", "fmax_bench"}
HEADLINE = ("auroc", "auprc", "fmax", "f1", "sensitivity", "specificity")
PER_CLASS = ("auroc", "auprc", "f1", "sensitivity", "specificity")
#: Calibration of the test probabilities (lower is better), from metrics.json ``calibration``.
CALIBRATION = ("ece", "brier")


def calibration_scores(metrics: dict[str, Any]) -> dict[str, float | None]:
    """Macro ECE and Brier score on the test fold (None for runs made before they were reported)."""
    test = ((metrics.get("calibration") or {}).get("test")) or {}
    return json_safe({"ece": test.get("macro_ece"), "brier": test.get("macro_brier")})


STATISTICS_NOTE = {
    "summary": "mean, sample sd (ddof 1), Student's t 95% CI of the mean over seeds, min, max, n",
    "tests": (
        "per metric, configuration minus baseline on the seeds both finished (paired): paired t-test "
        "(reported in tables), Wilcoxon signed-rank, Welch's unpaired t, mean difference with its "
        "t 95% CI, Cohen's d_z, Hedges' g"
    ),
    "table_p_value": "paired t-test",
    "bootstrap": (
        f"percentile bootstrap 95% CI of each run's test macro AUROC, macro AUPRC, Fmax (fold-9 "
        f"threshold) and the benchmark's Fmax over test records ({BOOTSTRAP_REPLICATES} replicates, "
        f"seed {BOOTSTRAP_SEED}, the same records for every metric)"
    ),
    "split": "test = fold 10; thresholds tuned on fold 9 (val)",
    "label_efficiency": (
        "per configuration, metric (test AUROC, AUPRC) and baseline fraction f: factor = f / f_M, f_M "
        "where the configuration's curve first reaches the baseline's mean at f; see "
        "label_efficiency.rule and .uncertainty"
    ),
}


def results_path(out: Path) -> Path:
    return Path(out) / RESULTS_FILE


def load_results(path: Path) -> dict[str, Any]:
    """Read and check a multiseed.json: format, version and the keys readers rely on."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the results file ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise ConfigError(
            f"{path}: not valid JSON (half-written or damaged); delete it and rerun `ecg multiseed` "
            "with the same --out to rebuild it from the finished runs"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{path}: not an ecgcli multiseed results file (format is not {FORMAT!r})")
    if data.get("version") != VERSION:
        raise ConfigError(
            f"{path}: results file version {data.get('version')!r} is not supported "
            f"(this ecgcli {__version__} reads version {VERSION})"
        )
    for key in ("grid", "results", "comparisons", "class_names", "test_set"):
        if key not in data:
            raise ConfigError(
                f"{path}: incomplete results file (no {key!r}); rerun `ecg multiseed` to rebuild it"
            )
    return data


def test_set_id(ecg_ids: np.ndarray) -> dict[str, Any]:
    """A fingerprint of a test set: its size and a hash of its sorted ecg_ids."""
    ids = np.sort(np.asarray(ecg_ids, dtype=np.int64))
    return {"n": int(ids.size), "sha256": hashlib.sha256(ids.tobytes()).hexdigest()[:16]}


def scores(metrics: dict[str, Any], split: str) -> dict[str, float | None]:
    """The summarised metrics of one split (``test`` or ``val``) from a metrics.json."""
    try:
        return json_safe(
            {
                k: metrics[sec.format(split)].get(f) if k in _ADDED_LATER else metrics[sec.format(split)][f]
                for k, (sec, f, _) in METRICS.items()
            }
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"metrics.json lacks {exc}") from None


def read_cell(
    path: Path, out: Path | None = None, seed: int | None = None, previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One finished run as a results record: scores, per-class test scores, bootstrap CIs.

    The bootstrap CIs of test AUROC, AUPRC and Fmax come from the run's metrics.json; for a
    run written before they were recorded, or drawn by an older resampling, they are computed
    from its predictions, unless
    ``previous`` (this run's record in the last multiseed.json) was built from the very same
    metrics.json (``metrics_sha256``), whose intervals are then reused.
    """
    from ecgcli.scoring.metrics import fmax_threshold
    from ecgcli.scoring.stats import current_bootstraps, test_bootstraps

    path = Path(path)
    try:
        raw = (path / "metrics.json").read_bytes()
        digest = hashlib.sha256(raw).hexdigest()[:16]
        metrics = json.loads(raw)
        side = json.loads((path / "model.json").read_text())
        with np.load(path / "predictions.npz", allow_pickle=False) as npz:
            test_y, test_prob, test_ids = npz["test_y"], npz["test_prob"], npz["test_ecg_id"]
            val_y, val_prob = npz["val_y"], npz["val_prob"]
        config = json.loads((path / "config.json").read_text())
        boots = metrics.get("bootstrap")
        if not current_bootstraps(boots) and previous and previous.get("metrics_sha256") == digest:
            boots = previous.get("bootstrap")
        if not current_bootstraps(boots):
            boots = test_bootstraps(test_y, test_prob, fmax_threshold(val_y, val_prob))
        record = {
            "seed": int(config["seed"] if seed is None else seed),
            "run_dir": os.path.relpath(path, out) if out is not None else str(path),
            "val": scores(metrics, "val"),
            "test": scores(metrics, "test"),
            "calibration": calibration_scores(metrics),
            "per_class": {
                cls: {k: m.get(k) if k in _ADDED_LATER else m[k] for k in PER_CLASS}
                for cls, m in metrics["test_tuned"]["per_class"].items()
            },
            "bootstrap": boots,
            "bootstrap_auroc": boots["auroc"],
            "best_epoch": metrics.get("best_epoch"),
            "epochs_run": metrics.get("epochs_run"),
            "seconds": (metrics.get("timing") or {}).get("total_seconds"),
            "class_names": list(side["class_names"]),
            "test_set": test_set_id(test_ids),
            "cache_id": (metrics.get("data") or {}).get("cache_id"),
            "metrics_sha256": digest,
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"{path}: finished run cannot be read ({type(exc).__name__}: {exc}); "
            "delete this directory to retrain it"
        ) from None
    except EcgError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return json_safe(record)


def build_results(grid: Grid, records: dict[tuple[str, float, int], dict[str, Any]]) -> dict[str, Any]:
    """The multiseed.json document for the finished ``records`` of ``grid``.

    Layout::

        format, version, ecgcli_version, updated, complete, cells {total, finished}
        grid        {configs [{name, spec, slug, kind, options}], seeds, label_fractions, baseline}
        statistics  what each number is; metrics: what each metric key means
        class_names, test_set {n, sha256}   shared by every run (checked)
        results     [{config, kind, label_fraction, n, runs [per-seed record],
                      summary {test|val: {metric: {mean, std, ci_low, ci_high, min, max, n}}}}]
        comparisons [{label_fraction, baseline, config, n_pairs, seeds,
                      tests {metric: {n, mean_diff, diff_ci_low, diff_ci_high, t_stat, t_p,
                                      wilcoxon_stat, wilcoxon_p, welch_t, welch_p, cohens_dz, hedges_g}}}]
        label_efficiency {baseline, rule, uncertainty,
                          metrics {auroc|auprc: [{config, label_fraction, target, factor, bound,
                                                  fraction, text, seeds {n, censored, geo_mean,
                                                  median, ci_low, ci_high, per_seed}}]}}

    A per-seed record holds seed, run_dir (relative to the file), val and test scores,
    per-class test scores, bootstrap_auroc {estimate, ci_low, ci_high, n_boot}, best_epoch,
    epochs_run, seconds, class_names, test_set, cache_id and metrics_sha256 (of the run's
    metrics.json, to reuse the bootstrap on reruns). Undefined numbers are null.
    """
    from ecgcli.experiments.efficiency import EFFICIENCY_METRICS, describe, label_efficiency
    from ecgcli.scoring.stats import UNIT_INTERVAL, paired_tests, summarize

    cells = grid.cells()
    finished = [records[k] for k in _keys(cells) if k in records]
    class_names, test_set = _shared(finished, grid.out)
    results = []
    by_group: dict[tuple[str, float], dict[int, dict[str, Any]]] = {}
    for lf in grid.label_fractions:
        for spec in grid.configs:
            runs = [records[(spec.name, lf, s)] for s in grid.seeds if (spec.name, lf, s) in records]
            by_group[(spec.name, lf)] = {r["seed"]: r for r in runs}
            summary: dict[str, dict[str, Any]] = {}
            for split in ("test", "val"):
                summary[split] = {}
                for metric in METRICS:
                    values = [r[split][metric] for r in runs if r[split][metric] is not None]
                    summary[split][metric] = (
                        summarize(values, bounds=UNIT_INTERVAL).to_dict() if values else None
                    )
            results.append(
                {
                    "config": spec.name,
                    "kind": spec.kind,
                    "label_fraction": lf,
                    "n": len(runs),
                    "runs": runs,
                    "summary": summary,
                }
            )
    comparisons = []
    for lf in grid.label_fractions:
        base = by_group[(grid.baseline, lf)]
        for spec in grid.configs:
            if spec.name == grid.baseline:
                continue
            other = by_group[(spec.name, lf)]
            seeds = sorted(set(base) & set(other))
            tests = {}
            for metric in METRICS:
                pairs = [
                    (base[s]["test"][metric], other[s]["test"][metric])
                    for s in seeds
                    if base[s]["test"][metric] is not None and other[s]["test"][metric] is not None
                ]
                tests[metric] = paired_tests([a for a, _ in pairs], [b for _, b in pairs]).to_dict()
            comparisons.append(
                {
                    "label_fraction": lf,
                    "baseline": grid.baseline,
                    "config": spec.name,
                    "n_pairs": len(seeds),
                    "seeds": seeds,
                    "tests": tests,
                }
            )
    efficiency = {
        metric: label_efficiency(
            {
                spec.name: {
                    lf: {s: r["test"][metric] for s, r in by_group[(spec.name, lf)].items()}
                    for lf in grid.label_fractions
                }
                for spec in grid.configs
            },
            grid.baseline,
            metric,
        )
        for metric in EFFICIENCY_METRICS
    }
    return json_safe(
        {
            "format": FORMAT,
            "version": VERSION,
            "ecgcli_version": __version__,
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "complete": len(finished) == len(cells),
            "cells": {"total": len(cells), "finished": len(finished)},
            "grid": grid.describe(),
            "statistics": STATISTICS_NOTE,
            "metrics": {k: f"test/val {d}" for k, (_, _, d) in METRICS.items()},
            "class_names": class_names,
            "test_set": test_set,
            "results": results,
            "comparisons": comparisons,
            "label_efficiency": describe(efficiency, grid.baseline),
        }
    )


def _keys(cells: Sequence[Cell]) -> list[tuple[str, float, int]]:
    return [(c.spec.name, c.label_fraction, c.seed) for c in cells]


def _shared(records: Sequence[dict[str, Any]], out: Path) -> tuple[list[str] | None, dict | None]:
    """Class order and test set every record shares; a mismatch means the data changed."""
    if not records:
        return None, None
    first = records[0]
    for r in records[1:]:
        if r["class_names"] != first["class_names"]:
            raise DataError(
                f"{out}: runs {first['run_dir']} and {r['run_dir']} have different class orders "
                f"({','.join(first['class_names'])} vs {','.join(r['class_names'])}); use another --out"
            )
        if r["test_set"] != first["test_set"]:
            raise DataError(
                f"{out}: runs {first['run_dir']} and {r['run_dir']} were tested on different test sets "
                f"({first['test_set']} vs {r['test_set']}): the data changed; use another --out"
            )
    return first["class_names"], first["test_set"]


def write_results(grid: Grid, records: dict[tuple[str, float, int], dict[str, Any]]) -> dict[str, Any]:
    doc = build_results(grid, records)
    write_json_atomic(results_path(grid.out), doc)
    return doc
