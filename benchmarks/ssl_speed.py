"""Pretraining speed of every registered SSL method: seconds per epoch of PTB-XL's folds 1-8.

    python benchmarks/ssl_speed.py [--steps 5] [--device auto] [--encoder cnn1d] [--threads N]

For each method in the registry (simclr, byol, cpc and any registered later) this builds the
module exactly as ``ecg train ssl`` does at its default settings (batch 256, 10 s at 100 Hz,
the encoder's default width, every augmentation on for two-view methods), then times
``--steps`` optimiser steps of ``SSLObjective`` (views, normalisation, forward, backward, Adam,
``after_step``) on random records after one warm-up step. An epoch is 17,441 records (folds
1-8 of PTB-XL v1.0.1), so seconds/epoch = seconds/step x ceil(17441 / batch). The live probe
and data loading are not included. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

PRETRAIN_RECORDS = 17_441


def time_method(method: str, args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    from ecgcli import LEADS
    from ecgcli.data.normalize import LeadNorm
    from ecgcli.models import build_encoder
    from ecgcli.ssl.augment import build_policy
    from ecgcli.train.config import SSLConfig, encoder_width
    from ecgcli.train.precision import autocast_dtype
    from ecgcli.train.ssl import SSLObjective, build_ssl_module

    cfg = SSLConfig(method=method, encoder=args.encoder, device=str(device))
    torch.manual_seed(0)
    encoder = build_encoder(cfg.encoder, in_ch=len(LEADS), **encoder_width(cfg))
    module = build_ssl_module(cfg, encoder).to(device)
    policy = build_policy(cfg.sampling_rate)
    n = cfg.batch_size * (args.steps + 1)
    x = 0.3 * torch.randn(n, len(LEADS), cfg.signal_length, generator=torch.Generator().manual_seed(1))
    x = x.to(device)
    objective = SSLObjective(module, x, cfg, policy, device, None, LeadNorm.identity(len(LEADS)))
    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=cfg.lr)
    dtype = autocast_dtype(args.precision, device)
    module.train()
    times: list[float] = []
    for step, batch in enumerate(objective.batches(0)):
        t = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = objective.loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        objective.after_step(step, args.steps + 1)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step:  # the first step is warm-up (allocations, kernel selection)
            times.append(time.perf_counter() - t)
    per_step = statistics.median(times)
    steps_per_epoch = math.ceil(PRETRAIN_RECORDS / cfg.batch_size)
    return {
        "batch": cfg.batch_size,
        "views": objective.views,
        "step_s": per_step,
        "epoch_s": per_step * steps_per_epoch,
        "params": sum(p.numel() for p in module.parameters() if p.requires_grad),
        "loss": float(loss.detach()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps per method (after 1 warm-up)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--encoder", default="cnn1d")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)

    from ecgcli.device import pick_device
    from ecgcli.ssl import ssl_method_names

    device = pick_device(args.device)
    print(
        f"device {device}, {torch.get_num_threads()} threads, encoder {args.encoder}, precision "
        f"{args.precision}, {args.steps} timed steps per method, epoch = {PRETRAIN_RECORDS} records\n"
    )
    print("| method | views | batch | trainable params | s/step | s/epoch | min/epoch |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in ssl_method_names():
        r = time_method(name, args, device)
        print(
            f"| {name} | {r['views']} | {r['batch']} | {r['params']:,} | {r['step_s']:.3f} | "
            f"{r['epoch_s']:.0f} | {r['epoch_s'] / 60:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
