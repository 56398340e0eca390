"""What training does on a CUDA machine: run this on any machine with one or more NVIDIA GPUs.

    python benchmarks/gpu_check.py [--steps 200] [--batch 256] [--encoders cnn1d,...] [--json out.json]
    python benchmarks/gpu_check.py --cpu --tiny    # the same code paths on the CPU, in seconds

Checks, each printed as one line (and all of them with ``--json``):

1. device: what ``--device auto`` picks, the GPU's name, memory and bf16 support.
2. peak: the best TFLOP/s of 8192 x 8192 matrix products in fp32 (TF32 off), TF32 and bf16.
3. precision: the same seeded classifier trained ``--steps`` steps on a learnable synthetic
   task in fp32 and under bf16 autocast (``--precision bf16``); the loss curves (mean over the
   last tenth of the steps) must agree within 5% and the final AUROC on held-out rows within
   0.02, the tolerance this script states and checks.
4. augmentations: two SimCLR views of a batch on the GPU; passes when every output is on the
   GPU and the profiler saw no device-to-host copy.
5. ddp: ``DistributedDataParallel`` over nccl with every visible GPU (one process per GPU, a
   world of 1 on a one-GPU machine): a few steps, then every rank's weights must be identical.
6. speed: per encoder of the registry, training samples/s and TFLOP/s (torch's flop counter)
   in fp32 and bf16, and the fraction of the matching peak.
7. data path: the supervised data path (sampler order, ``index_select`` from the training
   tensor on the GPU, random crops) feeding training steps; the GPU idle fraction is
   1 - (time the GPU spent in kernels, from the profiler) / wall time.

Without CUDA (and without ``--cpu``) it prints one line saying so and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

import torch

LOSS_TOL = 0.05
AUROC_TOL = 0.02


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_device(device: torch.device) -> dict[str, Any]:
    from ecgcli.device import pick_device

    picked = pick_device("auto")
    info: dict[str, Any] = {"auto_picks": str(picked), "device": str(device)}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info.update(
            name=p.name,
            memory_gib=round(p.total_memory / 2**30, 1),
            capability=f"{p.major}.{p.minor}",
            gpus=torch.cuda.device_count(),
            bf16=torch.cuda.is_bf16_supported(),
        )
    return info


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, tf32: bool = False) -> float:
    """Best TFLOP/s of ``n x n`` products."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    torch.mm(a, b)
    sync(device)
    best = 0.0
    for _ in range(10):
        t = time.perf_counter()
        for _ in range(5):
            torch.mm(a, b)
        sync(device)
        best = max(best, 5 * 2 * n**3 / (time.perf_counter() - t) / 1e12)
    torch.backends.cuda.matmul.allow_tf32 = False
    return best


def synthetic_task(
    n: int, length: int, device: torch.device, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Signals whose 5 labels depend on band power in fixed leads: learnable, not trivial."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 12, length, generator=g)
    t = torch.arange(length) / 100.0
    y = (torch.rand(n, 5, generator=g) < 0.3).float()
    for k in range(5):
        wave = torch.sin(2 * torch.pi * (2 + 3 * k) * t)
        x[:, 2 * k] += 1.5 * y[:, k : k + 1] * wave
    return x.to(device), y.to(device)


def auroc(y: torch.Tensor, p: torch.Tensor) -> float:
    from ecgcli.scoring.metrics import compute_metrics

    return float(compute_metrics(y.cpu().numpy(), p.float().cpu().numpy()).macro_auroc)


def train_run(
    device: torch.device, dtype: torch.dtype | None, steps: int, batch: int, length: int, encoder: str
) -> dict[str, Any]:
    from ecgcli.models import ECGClassifier

    x, y = synthetic_task(4 * batch, length, device)
    xv, yv = synthetic_task(2 * batch, length, device, seed=1)
    torch.manual_seed(0)
    model = ECGClassifier.build(encoder, 5, in_ch=12).to(device)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=g).to(device)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    with torch.no_grad():
        p = torch.sigmoid(model(xv))
    tail = max(1, steps // 10)
    return {"loss_curve": losses, "final_loss": statistics.fmean(losses[-tail:]), "auroc": auroc(yv, p)}


def check_precision(device: torch.device, steps: int, batch: int, length: int) -> dict[str, Any]:
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return {"skipped": "this GPU has no bf16"}
    fp32 = train_run(device, None, steps, batch, length, "cnn1d")
    bf16 = train_run(device, torch.bfloat16, steps, batch, length, "cnn1d")
    loss_diff = abs(bf16["final_loss"] - fp32["final_loss"]) / max(fp32["final_loss"], 1e-8)
    auroc_diff = abs(bf16["auroc"] - fp32["auroc"])
    return {
        "fp32": {k: v for k, v in fp32.items() if k != "loss_curve"},
        "bf16": {k: v for k, v in bf16.items() if k != "loss_curve"},
        "loss_curves_every_10": {"fp32": fp32["loss_curve"][::10], "bf16": bf16["loss_curve"][::10]},
        "loss_rel_diff": loss_diff,
        "auroc_diff": auroc_diff,
        "tolerance": {"loss_rel": LOSS_TOL, "auroc": AUROC_TOL},
        "passed": loss_diff <= LOSS_TOL and auroc_diff <= AUROC_TOL,
    }


def check_augmentations(device: torch.device, batch: int, length: int) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    from ecgcli.ssl.augment import AugmentConfig, ECGAugment

    aug = ECGAugment(AugmentConfig(fs=100))
    x = torch.randn(batch, 12, length, device=device)
    g = torch.Generator(device=device).manual_seed(0)
    aug.two_views(x, g)  # warm-up
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        t = time.perf_counter()
        v1, v2 = aug.two_views(x, g)
        sync(device)
        ms = 1000 * (time.perf_counter() - t)
    names = [e.name for e in prof.events()]
    to_host = [n for n in names if "DtoH" in n or "Device -> Pageable" in n or "Device -> Pinned" in n]
    on_device = v1.device == x.device and v2.device == x.device
    return {
        "two_views_ms": round(ms, 2),
        "outputs_on_device": on_device,
        "device_to_host_copies": len(to_host),
        "passed": on_device and not to_host,
    }


_DDP_SCRIPT = r"""
import os, sys, torch, torch.distributed as td
from torch.nn.parallel import DistributedDataParallel
from ecgcli.models import ECGClassifier
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
local = int(os.environ["LOCAL_RANK"])
torch.cuda.set_device(local)
td.init_process_group("nccl")
torch.manual_seed(0)
model = DistributedDataParallel(ECGClassifier.build("cnn1d", 5, in_ch=12).cuda(), device_ids=[local])
opt = torch.optim.Adam(model.parameters(), 1e-3)
g = torch.Generator(device="cuda").manual_seed(rank)
for _ in range(5):
    x = torch.randn(32, 12, 1000, device="cuda", generator=g)
    loss = model(x).square().mean()
    opt.zero_grad(); loss.backward(); opt.step()
flat = torch.cat([p.detach().flatten() for p in model.parameters()])
parts = [torch.zeros_like(flat) for _ in range(world)]
td.all_gather(parts, flat)
if rank == 0:
    print("IDENTICAL" if all(torch.equal(parts[0], p) for p in parts) else "DIFFERENT", world)
td.destroy_process_group()
"""


def check_ddp(device: torch.device) -> dict[str, Any]:
    import subprocess
    import tempfile

    if device.type != "cuda":
        return {"skipped": "nccl needs CUDA"}
    n = torch.cuda.device_count()
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(_DDP_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}", f.name]
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    os.unlink(f.name)
    ok = out.returncode == 0 and "IDENTICAL" in out.stdout
    return {
        "gpus": n,
        "seconds": round(time.perf_counter() - t, 1),
        "passed": ok,
        **({} if ok else {"error": (out.stderr or out.stdout).strip().splitlines()[-1:]}),
    }


def check_speed(
    device: torch.device, encoders: list[str], batch: int, length: int, peaks: dict[str, float], steps: int
) -> list[dict[str, Any]]:
    from torch.utils.flop_counter import FlopCounterMode

    from ecgcli.models import ECGClassifier

    rows = []
    for name in encoders:
        try:
            model = ECGClassifier.build(name, 5, in_ch=12).to(device)
        except Exception as exc:
            rows.append({"encoder": name, "skipped": f"{type(exc).__name__}: {exc}"})
            continue
        x = torch.randn(batch, 12, length, device=device)
        y = (torch.rand(batch, 5, device=device) < 0.3).float()
        counter = FlopCounterMode(display=False)
        with counter:
            torch.nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
        flops = counter.get_total_flops()
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        for label, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            if device.type == "cuda" and dtype is not None and not torch.cuda.is_bf16_supported():
                continue

            def step(dtype: torch.dtype | None = dtype, model=model, x=x, y=y, opt=opt) -> None:
                with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            for _ in range(3):
                step()
            sync(device)
            t = time.perf_counter()
            for _ in range(steps):
                step()
            sync(device)
            seconds = (time.perf_counter() - t) / steps
            tflops = flops / seconds / 1e12
            peak = peaks["bf16" if dtype else "fp32"]
            rows.append(
                {
                    "encoder": name,
                    "precision": label,
                    "samples_per_s": round(batch / seconds),
                    "tflops": round(tflops, 3),
                    "of_peak": round(tflops / peak, 4) if peak else None,
                }
            )
    return rows


def check_data_path(device: torch.device, batch: int, length: int, steps: int) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    from ecgcli.data.loader import EpochSampler
    from ecgcli.models import ECGClassifier
    from ecgcli.train.supervised import random_crop

    n = 8 * batch
    x_train, y_train = synthetic_task(n, 1000, device)
    sampler = EpochSampler(y_train.long().cpu().numpy(), "oversample", seed=0)
    order = torch.as_tensor(sampler.order(0)).to(device)
    model = ECGClassifier.build("cnn1d", 5, in_ch=12).to(device)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    g = torch.Generator(device=device).manual_seed(0)

    def step(j: int) -> None:
        rows = order[(j * batch) % (len(order) - batch) :][:batch]
        xb = random_crop(x_train.index_select(0, rows), length, g) if length < 1000 else x_train[rows]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(xb), y_train.index_select(0, rows))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for j in range(3):
        step(j)
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        t = time.perf_counter()
        for j in range(steps):
            step(j)
        sync(device)
        wall = time.perf_counter() - t
    if device.type != "cuda":
        return {"wall_s": round(wall, 3), "idle_fraction": None, "note": "GPU idle time needs CUDA"}
    from torch.autograd import DeviceType

    # kernels are the events whose device is the GPU; CPU ops also carry their kernels' time
    busy_us = sum(e.device_time_total for e in prof.events() if e.device_type == DeviceType.CUDA)
    busy = busy_us / 1e6
    return {
        "wall_s": round(wall, 3),
        "gpu_busy_s": round(busy, 3),
        "idle_fraction": round(max(0.0, 1 - busy / wall), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument(
        "--encoders", default=None, help="comma-separated [default: every registered encoder]"
    )
    parser.add_argument("--cpu", action="store_true", help="run the same checks on the CPU (no GPU figures)")
    parser.add_argument("--tiny", action="store_true", help="few steps, small batches: a smoke test")
    parser.add_argument("--json", default=None, help="also write every figure to this file")
    args = parser.parse_args()
    if not args.cpu and not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA GPU is visible (torch.cuda.is_available() is False); run it on a CUDA "
            "machine, or with --cpu for a smoke test of the same code",
            file=sys.stderr,
        )
        return 2
    if args.tiny:
        args.steps, args.batch, args.length = 20, 16, 250
    device = torch.device("cpu" if args.cpu else "cuda")

    from ecgcli.models.encoders import encoder_names

    report: dict[str, Any] = {"device": check_device(device)}
    print(f"device: {report['device']}")
    n = 512 if args.tiny else 8192
    peaks = {"fp32": matmul_peak(device, torch.float32, n), "bf16": matmul_peak(device, torch.bfloat16, n)}
    if device.type == "cuda":
        peaks["tf32"] = matmul_peak(device, torch.float32, n, tf32=True)
    report["peak_tflops"] = {k: round(v, 2) for k, v in peaks.items()}
    print(f"peak TFLOP/s: {report['peak_tflops']}")
    report["precision"] = check_precision(device, args.steps, min(args.batch, 128), args.length)
    print(
        f"precision (bf16 vs fp32): { {k: v for k, v in report['precision'].items() if k != 'loss_curves_every_10'} }"
    )
    report["augmentations"] = check_augmentations(device, args.batch, args.length)
    print(f"augmentations: {report['augmentations']}")
    report["ddp"] = check_ddp(device)
    print(f"ddp: {report['ddp']}")
    encoders = args.encoders.split(",") if args.encoders else encoder_names()
    report["speed"] = check_speed(device, encoders, args.batch, args.length, peaks, max(5, args.steps // 10))
    for row in report["speed"]:
        print(f"speed: {row}")
    report["data_path"] = check_data_path(device, args.batch, args.length, max(5, args.steps // 10))
    print(f"data path: {report['data_path']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    failed = [k for k in ("precision", "augmentations", "ddp") if report[k].get("passed") is False]
    print("all checks passed" if not failed else f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
