"""Where a run's macro AUROC is lost: fold-10 AUROC of its classes, binned by training positives.

    python benchmarks/auroc_by_prevalence.py RUN_DIR [RUN_DIR ...] [--bins 20,100,500]

Macro AUROC weighs a class with 12 training records as much as NORM with 7,000. When a short
run lands below a published macro AUROC, this says whether the gap sits in the rare classes
(which need many epochs to learn, so more epochs should close it) or in the common ones (which
a few epochs learn, so a gap there points at a bug). It reads only the run's ``metrics.json``:
the training class frequencies, the training record count and the per-class test AUROC.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def rows(metrics: dict, edges: list[int]) -> list[tuple[str, int, float]]:
    """(bin label, classes in the bin, their mean test AUROC) per bin of training positives."""
    n_train = metrics["data"]["n_train"]
    positives = [round(f * n_train) for f in metrics["class_frequencies"]["train"]]
    per_class = metrics["test"]["per_class"]
    bounds = [0, *edges, math.inf]
    out = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        scores = [
            per_class[name]["auroc"]
            for name, pos in zip(metrics["class_names"], positives, strict=True)
            if lo <= pos < hi and per_class.get(name, {}).get("auroc") is not None
        ]
        label = f"{lo}-{hi - 1}" if hi != math.inf else f">={lo}"
        out.append((label, len(scores), sum(scores) / len(scores) if scores else float("nan")))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--bins", default="20,100,500", help="bin edges in training positives")
    args = parser.parse_args()
    edges = [int(e) for e in args.bins.split(",")]
    runs = [(run, json.loads((run / "metrics.json").read_text())) for run in args.runs]
    labels = [label for label, _, _ in rows(runs[0][1], edges)]
    print("| run | task | macro AUROC | " + " | ".join(f"{lab} positives" for lab in labels) + " |")
    print("|---|---|---:|" + "---:|" * len(labels))
    for run, metrics in runs:
        cells = [f"{auroc:.3f} ({n})" if n else "-" for _, n, auroc in rows(metrics, edges)]
        print(
            f"| {run} | {metrics.get('task', 'superdiagnostic')} | {metrics['test']['macro_auroc']:.3f} | "
            + " | ".join(cells)
            + " |"
        )


if __name__ == "__main__":
    main()
