"""Labelled-fraction sampling for every task: size, class coverage, per-class deviation, time.

    python benchmarks/task_sampling.py --data-root data/PTB-XL

For each task, fraction and seed: the sample's size against ``round(fraction x n)``, the fewest
records any class gets, the largest gap between a class's count and ``round(fraction x its
count in folds 1-8)`` (1 at least), and the seconds ``split`` took.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path("data/PTB-XL"))
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()

    from ecgcli import TASKS
    from ecgcli.data.ptbxl import TRAIN_FOLDS, load_ptbxl

    base = load_ptbxl(args.data_root)
    print("task             classes  records  fraction  seed  size/target  min  max-gap  seconds")
    for task in TASKS:
        ds = base.with_task(task)
        pool = ds.fold_rows(TRAIN_FOLDS)
        counts = ds.labels[pool].sum(axis=0)
        for fraction in args.fractions:
            for seed in args.seeds:
                t = time.perf_counter()
                split = ds.split(fraction, seed)
                seconds = time.perf_counter() - t
                got = ds.labels[split.train].sum(axis=0)
                gap = np.abs(got - np.maximum(1, np.round(fraction * counts))).max()
                ds.check_classes(split)
                print(
                    f"{task:16} {len(ds.class_names):7} {int(ds.labelled.sum()):8} {fraction:9} {seed:5}"
                    f"  {len(split.train):5}/{round(fraction * len(pool)):<5} {got.min():4} {gap:8.0f}"
                    f"  {seconds:7.2f}"
                )


if __name__ == "__main__":
    main()
