"""Training speed of every encoder under the PTB-XL benchmark's recipe.

    python benchmarks/encoder_speed.py [--steps 3] [--threads 2] [--encoders cnn1d,lstm]
                                       [--device cpu|cuda] [--json out.json]

Per encoder, with the benchmark's head (concat pooling, 128 hidden), AdamW and BCE, on
batches of 128 random 2.5 s crops (12 x 250 samples at 100 Hz): training samples/s and the
seconds an epoch of the benchmark's training set (17,441 records of folds 1-8, one crop each)
would take, in fp32 and under bf16 autocast; plus parameters (with a 5-class linear head, as
``ecg models``) and forward FLOPs per 10 s record (torch's FlopCounterMode, 2 per multiply-add).

Each measurement is the best of ``--steps`` timed steps after one untimed warm-up step:
background load only ever slows a step down. The data are synthetic tensors already in
memory, so this times the model alone (the data path costs ~4%: ``train_speed.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from contextlib import nullcontext

import torch

TRAIN_RECORDS = 17_441  # folds 1-8 of PTB-XL, the benchmark's training set
CROP = 250  # 2.5 s at 100 Hz


def step_seconds(name: str, precision: str, batch: int, steps: int, device: torch.device) -> float:
    """Best time of one training step (forward, backward, AdamW step) over ``steps`` runs."""
    from ecgcli.models import ECGClassifier

    torch.manual_seed(0)
    model = ECGClassifier.build(name, 5, head="benchmark").to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-2)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    x = torch.randn(batch, 12, CROP, device=device)
    y = (torch.rand(batch, 5, device=device) > 0.7).float()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    times = []
    for i in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with autocast:
            loss = loss_fn(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first step warms up (allocations, kernel choice)
            times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encoders", default="", help="comma-separated (default: all)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per encoder and precision")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--json", type=str, default=None, help="also write the rows here")
    args = parser.parse_args()

    from ecgcli.models import encoder_names
    from ecgcli.models.profile import profile_encoder

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = [n for n in args.encoders.split(",") if n] or sorted(
        encoder_names(), key=lambda n: (n != "cnn1d", n)
    )
    precisions = [p for p in args.precisions.split(",") if p]
    steps_per_epoch = math.ceil(TRAIN_RECORDS / args.batch_size)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} threads"
    print(
        f"encoder training speed: batch {args.batch_size} x 12 x {CROP} (2.5 s crops), benchmark head, "
        f"AdamW, BCE; {where}; best of {args.steps} steps; load average before "
        f"{os.getloadavg()[0]:.1f}"
    )
    rows = []
    for name in names:
        prof = profile_encoder(name)
        row = {"encoder": name, "params": prof.params, "flops_10s": prof.flops}
        for p in precisions:
            try:
                s = step_seconds(name, p, args.batch_size, args.steps, device)
            except RuntimeError as exc:  # one failing cell must not lose the others
                print(f"  {name} {p}: failed: {str(exc).splitlines()[0][:120]}", flush=True)
                s = float("nan")
            row[f"{p}_samples_per_s"] = args.batch_size / s
            row[f"{p}_s_per_epoch"] = s * steps_per_epoch
        rows.append(row)
        cells = "  ".join(
            f"{p} {row[f'{p}_samples_per_s']:7.1f}/s {row[f'{p}_s_per_epoch']:7.0f} s/epoch"
            for p in precisions
        )
        print(f"  {name:13s} {prof.params / 1e6:5.2f} M  {prof.flops / 1e9:5.2f} GFLOPs  {cells}", flush=True)

    header = "| encoder | params | GFLOPs / 10 s record |" + "".join(
        f" {p} samples/s | {p} s/epoch |" for p in precisions
    )
    print()
    print(header)
    print("|---|---:|---:|" + "---:|---:|" * len(precisions))
    for r in rows:
        cells = "".join(f" {r[f'{p}_samples_per_s']:.0f} | {r[f'{p}_s_per_epoch']:.0f} |" for p in precisions)
        print(f"| {r['encoder']} | {r['params'] / 1e6:.2f} M | {r['flops_10s'] / 1e9:.2f} |{cells}")
    print(f"(load average after {os.getloadavg()[0]:.1f})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": where, "batch_size": args.batch_size, "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
