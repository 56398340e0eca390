"""CPU cost of the ``s4`` encoder beside ``resnet1d_wang``: seconds per training step and per
epoch-equivalent, to pick a default the project's 2-core CPU can train.

    OMP_NUM_THREADS=1 python benchmarks/s4_speed.py [--repeats 2] [--threads 1] [--json out.json]

One training step = forward + backward + AdamW step of the benchmark recipe's classifier
(benchmark head, 5 classes) on a batch of 128 windows of 12 leads x 250 samples (2.5 s at
100 Hz), on the CPU with ``--threads`` torch threads; the median of ``--repeats`` timed steps
after one warm-up step. An epoch-equivalent is PTB-XL's folds 1-8 (17,111 records) at batch
128: 134 steps (data loading not included). Configurations: widths 64/128/256 x depths 2/4/6
at state size 64, the published size (the ECG foundation-model benchmark's S4: model_dim 512,
4 layers, state 64) and ``resnet1d_wang`` at its default width. On a shared machine the
background load inflates every figure alike; compare rows of one run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from typing import Any

import torch

from ecgcli.models import ECGClassifier

RECORDS, BATCH, SAMPLES = 17_111, 128, 250
CONFIGS: list[tuple[str, dict[str, Any]]] = [
    *[("s4", {"width": w, "depth": d, "d_state": 64}) for w in (64, 128, 256) for d in (2, 4, 6)],
    ("s4", {"width": 512, "depth": 4, "d_state": 64}),  # the fm-benchmark's published size
    ("resnet1d_wang", {}),
]


def step_seconds(name: str, args: dict[str, Any], repeats: int) -> tuple[float, int]:
    """Median seconds of one training step, and the parameter count."""
    torch.manual_seed(0)
    model = ECGClassifier.build(name, 5, head="benchmark", **args).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    x, y = torch.randn(BATCH, 12, SAMPLES), (torch.rand(BATCH, 5) > 0.8).float()
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - t0)
    return statistics.median(times), sum(p.numel() for p in model.parameters())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default="", help="comma-separated widths to keep (s4 rows)")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    keep = {int(w) for w in a.only.split(",") if w}
    steps = math.ceil(RECORDS / BATCH)
    rows = []
    print(f"{'encoder':14} {'width':>5} {'depth':>5} {'params':>10} {'s/step':>8} {'min/epoch':>9}")
    for name, args in CONFIGS:
        if keep and name == "s4" and args["width"] not in keep:
            continue
        sec, params = step_seconds(name, args, a.repeats)
        row = {"encoder": name, **args, "params": params, "s_per_step": sec, "s_per_epoch": sec * steps}
        rows.append(row)
        print(
            f"{name:14} {args.get('width', '-')!s:>5} {args.get('depth', '-')!s:>5} {params:>10,} "
            f"{sec:>8.3f} {sec * steps / 60:>9.1f}",
            flush=True,
        )
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"threads": a.threads, "batch": BATCH, "samples": SAMPLES, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
