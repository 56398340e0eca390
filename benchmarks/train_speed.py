"""Training-epoch speed: the real data path versus a tensor already in memory.

    python benchmarks/train_speed.py --data-root data/PTB-XL [--label-fraction 0.1]

Both arms train the same reference model (batch 64, Adam) for one epoch on the same number
of records. "data path" is exactly what `ecg train supervised` does per step (balanced sampler
order, index_select from the normalised in-memory split, labels); "in memory" feeds
consecutive slices of a ready tensor. Goal: the data path costs at most 10% on CPU. The
one-time load of the split from the cache is reported separately.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, default=Path("data/cache"))
    parser.add_argument("--label-fraction", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from ecgcli import SUPERCLASSES
    from ecgcli.data.loader import EpochSampler
    from ecgcli.data.normalize import fit_lead_norm
    from ecgcli.models import ECGClassifier
    from ecgcli.train.config import SupervisedConfig
    from ecgcli.train.data import labels_tensor, load_training_data, signals_tensor
    from ecgcli.train.losses import build_loss
    from ecgcli.train.supervised import ClassifierObjective

    source = SupervisedConfig(
        data_root=str(args.data_root), cache_dir=str(args.cache_dir), workers=os.cpu_count() or 1, seed=42
    )
    data = load_training_data(source, args.label_fraction)
    split, store = data.split, data.store
    t = time.perf_counter()
    norm = fit_lead_norm(store, split.train)
    x = signals_tensor(store, split.train, norm)
    load_s = time.perf_counter() - t
    y_np = data.dataset.labels[split.train]
    y = labels_tensor(y_np)
    device = torch.device("cpu")

    def epoch(batches) -> float:
        torch.manual_seed(0)
        model = ECGClassifier.build("cnn1d", len(SUPERCLASSES), in_ch=12, width=64)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        loss_fn = build_loss("focal", y_np)
        model.train()
        t0 = time.perf_counter()
        seen = 0
        for xb, yb in batches():
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(xb)
        return seen / (time.perf_counter() - t0)

    objective = ClassifierObjective(
        ECGClassifier.build(),
        x,
        y,
        EpochSampler(y_np, "oversample", 42),
        64,
        build_loss("focal", y_np),
        x[:0],
        y_np[:0],
        1000,
        42,
        device,
    )
    ready = x.clone()

    def in_memory():
        for s in range(0, len(ready), 64):
            yield ready[s : s + 64], y[s : s + 64]

    path_rates, mem_rates = [], []
    for _ in range(args.repeats):
        path_rates.append(epoch(lambda: objective.batches(0)))
        mem_rates.append(epoch(in_memory))
    # best of N per arm: background load only ever slows a run down, so the fastest run of
    # each arm is the fairest estimate of what it costs on a quiet machine
    path, mem = max(path_rates), max(mem_rates)
    print(
        f"training-epoch benchmark: {len(x)} records ({args.label_fraction:g} labels) from {args.data_root}, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"  one-time load of the split from the cache (normalised): {load_s:.2f} s")
    print(f"  data path (sampler + index_select):  {path:7.1f} samples/s  -> {len(x) / path:6.1f} s/epoch")
    print(f"  tensor already in memory:            {mem:7.1f} samples/s  -> {len(x) / mem:6.1f} s/epoch")
    print(
        f"  data-path cost: {100 * (mem - path) / mem:+.1f}% (goal <= 10%); best of {args.repeats} "
        f"interleaved epochs per arm (medians: {statistics.median(path_rates):.1f} vs "
        f"{statistics.median(mem_rates):.1f} samples/s)"
    )


if __name__ == "__main__":
    main()
