"""Turn the leaderboard's real-data runs (``scripts/leaderboard_runs.sh``) into a results study,
``results/leaderboard_full_schedule.json``, that ``scripts/docs_tables.py`` renders.

    python scripts/study_from_leaderboard.py runs/lb --commit 0c4d8c9 \\
        --command "bash scripts/leaderboard_runs.sh data/PTB-XL runs/lb all" [--command ...]

Why a script: every number on a results page comes from a file written by what measured it.
This reads the ``ecg benchmark`` grids under ``OUT/e50`` (``resnet1d_wang``, the benchmark
recipe, 50 epochs) and ``OUT/s4``, and the ensembles under ``OUT/e50/TASK/ensembles/``, the
same way ``ecg benchmark --show`` does, and writes only what it read; a cell not run yet stays
empty. The subdiagnostic and form cells of ``resnet1d_wang`` were run for 50 epochs earlier and
are kept in ``results/benchmark_tasks.json``; where ``OUT`` has no run of its own for them, the
table refers to those cells instead of copying them.

Tables written: ``auroc`` (a row per task: ours beside the 2020 benchmark's published
``resnet1d_wang`` and the 2026 benchmark's supervised S4 and best foundation model) and
``cost`` (each run here: seconds per epoch, epochs, hours, the epoch fold 9 chose) and
``by_prevalence`` (each run's AUROC by how many training positives its classes have).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ecgcli.experiments.benchmark import ANCHOR_SOURCE, anchors, leaderboard
from ecgcli.files import write_text_atomic

ROOT = Path(__file__).resolve().parent.parent
#: The leaderboard's task order, as results/benchmark_tasks.json has it.
TASKS = ("all", "diagnostic", "subdiagnostic", "form", "rhythm", "superdiagnostic")
ARCHIVED = "benchmark_tasks"
#: Where the 2026 columns come from (the leaderboard says it of its rows).
SOURCE_2026 = ANCHOR_SOURCE.replace("2026 rows:", "The 2026 columns:")
#: The leaderboard row of the ensemble scripts/leaderboard_runs.sh writes (OUT/e50/TASK/ensembles/wang+s4).
ENSEMBLE = "ensemble wang+s4"


def _cell(cell: Any, bold_from: float | None = None) -> dict[str, Any] | None:
    """A leaderboard cell as ``{"value", "ci"}``; bold when it reaches ``bold_from``."""
    if cell is None or cell.auroc is None:
        return None
    out: dict[str, Any] = {"value": round(cell.auroc, 3)}
    if cell.ci_low is not None and cell.ci_high is not None:
        out["ci"] = [round(cell.ci_low, 3), round(cell.ci_high, 3)]
    if bold_from is not None and cell.auroc >= bold_from:
        out["bold"] = True
    return out


def _archived_refs(root: Path) -> dict[str, dict[str, Any]]:
    """``task -> reference`` to each archived 50-epoch cell of results/benchmark_tasks.json."""
    path = root / "results" / f"{ARCHIVED}.json"
    if not path.is_file():
        return {}
    table = json.loads(path.read_text())["tables"]["auroc"]
    col = next(i for i, c in enumerate(table["columns"]) if c["name"] == "50 epochs")
    return {
        str(row[0]).split(" (")[0]: {"ref": f"{ARCHIVED}/auroc", "row": i, "col": col}
        for i, row in enumerate(table["rows"])
        if row[col] is not None
    }


def _runs(grid: Path) -> list[Path]:
    """The finished runs of a benchmark grid folder (``TASK/CONFIG/lfF/seedS``)."""
    return sorted(p.parent for p in grid.glob("*/lf*/seed*/metrics.json"))


@functools.cache
def _prevalence_rows() -> Callable[..., list[tuple[str, int, float]]]:
    """``benchmarks/auroc_by_prevalence.py``'s binning, the one the archived table used."""
    path = ROOT / "benchmarks" / "auroc_by_prevalence.py"
    spec = importlib.util.spec_from_file_location("auroc_by_prevalence", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.rows


def _prevalence_row(task: str, model: str, metrics: dict[str, Any]) -> list[Any]:
    """``task, model (classes per bin)`` and the mean test AUROC of each bin of training positives."""
    bins = _prevalence_rows()(metrics, [20, 100, 500])
    counts = ", ".join(str(n) for _, n, _ in bins)
    return [f"{task}, {model} ({counts})", *(None if n == 0 else round(a, 3) for _, n, a in bins)]


def _cost_row(task: str, model: str, metrics: dict[str, Any]) -> list[Any]:
    """What one run cost, from its own history (a resumed run's epochs all count)."""
    history = metrics.get("history") or []
    seconds = [h["seconds"] for h in history if h.get("seconds")]
    per_epoch = statistics.median(seconds) if seconds else None
    timing = metrics.get("timing") or {}
    total_h = sum(seconds) / 3600 if seconds else None
    best = metrics.get("best_epoch")
    return [
        task,
        model,
        timing.get("threads"),
        None if per_epoch is None else round(per_epoch),
        metrics.get("epochs_run"),
        None if total_h is None else round(total_h, 1),
        None if best is None else f"{best} of {metrics.get('epochs_run')}",
    ]


def build(out: Path, root: Path = ROOT) -> dict[str, Any]:
    """The study's tables from the runs under ``out`` (``e50/`` and ``s4/``)."""
    wang = leaderboard(out / "e50", ["resnet1d_wang"], TASKS)
    s4 = leaderboard(out / "s4", ["s4"], TASKS)
    later = anchors()
    archived = _archived_refs(root)
    rows, cost, prevalence = [], [], []
    for task in TASKS:
        mine = wang["resnet1d_wang"][task]  # carries the published value even before a run
        has_pub = mine.published is not None and mine.published_half_width is not None
        band_low = round(mine.published - mine.published_half_width, 3) if has_pub else None
        ours = _cell(mine, band_low) or archived.get(task)
        s4_cell = _cell(s4["s4"][task])
        sup = later["s4_supervised"].get(task)
        best = later["best_finetuned"].get(task)
        rows.append([
            task,
            ours,
            {"mean": mine.published, "sd": mine.published_half_width} if has_pub else None,
            s4_cell,
            _cell(wang[ENSEMBLE][task]) if ENSEMBLE in wang else None,
            None if sup is None else {"mean": sup.auroc, "ci": [sup.ci_low, sup.ci_high], "decimals": 4},
            None if best is None else {
                "template": "{0} " + best.model,
                "refs": [{"mean": best.auroc, "ci": [best.ci_low, best.ci_high], "decimals": 4}],
            },
        ])
        for name, grid in (("resnet1d_wang", out / "e50" / task), ("s4", out / "s4" / task)):
            for run in _runs(grid):
                metrics = json.loads((run / "metrics.json").read_text())
                cost.append(_cost_row(task, name, metrics))
                prevalence.append(_prevalence_row(task, name, metrics))
    return {
        "auroc": {
            "caption": "Fold-10 macro AUROC at 100% of the labels: ours [bootstrap 95% band over "
                       "test records], one seed, 50 epochs; published values with their "
                       "uncertainty. Bold: ours inside or above the 2020 band.",
            "columns": [
                {"name": "task", "align": "l"},
                {"name": "resnet1d_wang (ours)", "align": "r"},
                {"name": "resnet1d_wang, 2020 published", "align": "r"},
                {"name": "S4 (ours, width 64 x 4 layers)", "align": "r"},
                {"name": "ensemble resnet1d_wang + S4 (ours)", "align": "r"},
                {"name": "S4, 2026 published", "align": "r"},
                {"name": "best foundation model, 2026 published", "align": "r"},
            ],
            "rows": rows,
        },
        "cost": {
            "caption": "What each run here cost on this project's CPU machines (AMD EPYC, AVX2, "
                       "fp32): the median seconds per epoch (training and the fold-9 score "
                       "when one was due), epochs, hours in all, and the epoch fold 9 chose.",
            "columns": [
                {"name": "task", "align": "l"},
                {"name": "model", "align": "l"},
                {"name": "threads", "align": "r", "decimals": 0},
                {"name": "s / epoch", "align": "r", "decimals": 0},
                {"name": "epochs", "align": "r", "decimals": 0},
                {"name": "hours", "align": "r", "decimals": 1},
                {"name": "chosen epoch", "align": "l"},
            ],
            "rows": cost,
        },
        "by_prevalence": {
            "caption": "Each run's fold-10 AUROC averaged over the classes binned by training "
                       "positives (classes per bin in brackets), as `benchmarks/auroc_by_prevalence.py` "
                       "bins them.",
            "columns": [{"name": "task, model", "align": "l"}]
            + [{"name": b, "align": "r"} for b in ("0-19", "20-99", "100-499", ">=500")],
            "rows": prevalence,
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="the OUT_DIR given to scripts/leaderboard_runs.sh")
    ap.add_argument("--commit", required=True, help="the commit the runs' code was at")
    ap.add_argument("--command", action="append", default=[], help="a command that made the runs")
    ap.add_argument("--notes", default="", help="what the reader must know about these runs")
    ap.add_argument("--study", default="leaderboard_full_schedule")
    ap.add_argument("--write", type=Path, default=None, help="default: results/STUDY.json")
    args = ap.parse_args(argv)
    if not (args.out / "e50").is_dir() and not (args.out / "s4").is_dir():
        print(f"error: {args.out} has neither e50/ nor s4/ (scripts/leaderboard_runs.sh writes them)",
              file=sys.stderr)
        return 2
    tables = build(args.out)
    measured = [t for t in TASKS if any(r[0] == t for r in tables["cost"]["rows"])]
    study = {
        "format": "ecgcli-results",
        "version": 1,
        "archived": False,
        "study": args.study,
        "data": {"dataset": "PTB-XL", "version": "1.0.1", "test_fold": 10, "validation_fold": 9,
                 "train_folds": "1-8"},
        "commit": args.commit,
        "title": "Every task at the benchmark's full 50 epochs, S4 and ensembles",
        "task": measured,
        "label_fraction": 1.0,
        "seeds": [42],
        "commands": args.command + [
            "python scripts/study_from_leaderboard.py " + str(args.out) + f" --commit {args.commit}"
        ],
        "notes": " ".join(filter(None, [args.notes, SOURCE_2026])),
        "tables": tables,
    }
    dest = args.write or ROOT / "results" / f"{args.study}.json"
    write_text_atomic(dest, json.dumps(study, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
