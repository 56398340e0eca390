"""How close training gets to this CPU's limit: matmul peaks, then every encoder's training step.

    python benchmarks/cpu_speed.py [--threads 2] [--batch 64] [--length 1000] [--compile]
                                   [--encoders cnn1d,...] [--steps 10] [--precisions fp32,bf16]

1. Peaks: the best GFLOP/s of square matrix products (n = 1024 and 2048) in fp32 and in bf16,
   measured before and after the encoders (the higher is kept, so background load during one
   of them does not inflate the fractions); they bound what a model reaches with these threads.
2. For every encoder in the registry (``ecgcli.models.encoders.encoder_names()``: encoders
   added later appear without editing this script): one training step of the classifier
   (forward, BCE loss, backward, Adam) on ``batch x 12 x length``. FLOPs of forward and
   backward are counted once by ``torch.utils.flop_counter.FlopCounterMode`` (2 per multiply-
   add; normalisation, activations and the optimiser not counted; it cannot see into the CPU
   LSTM's fused kernel, so LSTM rows show no FLOP/s); the step is timed in fp32
   and under ``torch.autocast("cpu", dtype=torch.bfloat16)``, and with ``--compile`` also
   after ``torch.compile``. GFLOP/s = counted FLOPs / best step time; "of peak" divides by
   the matmul peak of the same precision. Best, not median: on a machine shared with other
   jobs the fastest step is the one that had the cores, like the peak it is divided by (the
   median is printed too).

Channels-last does not apply: it is a layout of 4-D (and 5-D) tensors, and these encoders
convolve 3-D ``(batch, leads, time)`` tensors; oneDNN already runs the CPU convolutions.
Whether this CPU runs bf16 natively is printed first (AVX512-BF16 or AMX): without it torch
emulates bf16, far slower than fp32, and only fp32 is timed unless ``--precisions`` asks.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch


def matmul_peak(dtype: torch.dtype, seconds: float = 1.0) -> float:
    """Best GFLOP/s of ``n x n @ n x n`` products (n = 1024, 2048) in ``dtype``."""
    best = 0.0
    for n in (1024, 2048):
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        torch.mm(a, b)  # warm-up
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            t = time.perf_counter()
            torch.mm(a, b)
            best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def step_flops(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """FLOPs of one forward and backward pass, as torch's flop counter counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def time_steps(step: Callable[[], None], steps: int, warmup: int = 2) -> tuple[float, float]:
    """Best and median seconds of one call of ``step``."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def trainer(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool) -> Callable[[], None]:
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--encoders", default=None, help="comma-separated names [default: all registered]")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd steps")
    parser.add_argument(
        "--precisions", default=None, help="fp32,bf16 [default: both with native bf16, else fp32]"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from ecgcli.models import ECGClassifier
    from ecgcli.models.encoders import encoder_names
    from ecgcli.train.precision import cpu_bf16_native

    native, why = cpu_bf16_native()
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}; native bf16: {'yes' if native else 'no'} ({why})"
    )
    precisions = args.precisions.split(",") if args.precisions else ["fp32", "bf16"] if native else ["fp32"]
    peaks = {p: matmul_peak(torch.float32 if p == "fp32" else torch.bfloat16) for p in precisions}
    print("matmul peak (before): " + ", ".join(f"{p} {v:.1f} GFLOP/s" for p, v in peaks.items()))
    rows = []
    names = args.encoders.split(",") if args.encoders else encoder_names()
    print(f"\ntraining step, batch {args.batch} x 12 x {args.length}, best of {args.steps} steps")
    print(f"{'encoder':<16} {'precision':<14} {'GFLOP/step':>10} {'samples/s':>10} {'GFLOP/s':>8}")
    for name in names:
        torch.manual_seed(0)
        try:
            model = ECGClassifier.build(name, 5, in_ch=12)
        except Exception as exc:  # an encoder that needs other arguments: say so, go on
            print(f"{name:<16} skipped: {type(exc).__name__}: {exc}")
            continue
        x = torch.randn(args.batch, 12, args.length)
        y = (torch.rand(args.batch, 5) < 0.3).float()
        flops = step_flops(model, x, y)
        variants = [(p if p == "fp32" else "bf16 autocast", p == "bf16", False) for p in precisions]
        if args.compile:
            variants += [(f"{p} compiled", p == "bf16", True) for p in precisions]
        for label, bf16, compiled in variants:
            m = ECGClassifier.build(name, 5, in_ch=12)
            m.load_state_dict(model.state_dict())
            m.train()
            net = torch.compile(m) if compiled else m
            try:
                seconds, median = time_steps(trainer(net, x, y, bf16), args.steps)
            except Exception as exc:
                print(f"{name:<16} {label:<14} failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                continue
            rows.append((name, label, bf16, flops, seconds, median))
            print(
                f"{name:<16} {label:<14} {flops / 1e9:>10.1f} {args.batch / seconds:>10.0f} {flops / seconds / 1e9:>8.1f}"
            )
    after = {p: matmul_peak(torch.float32 if p == "fp32" else torch.bfloat16) for p in precisions}
    print("matmul peak (after):  " + ", ".join(f"{p} {v:.1f} GFLOP/s" for p, v in after.items()))
    peaks = {p: max(peaks[p], after[p]) for p in precisions}
    print(
        f"\n{'encoder':<16} {'precision':<14} {'samples/s':>10} {'GFLOP/s':>8} {'of peak':>8}   (peak = the higher)"
    )
    for name, label, bf16, flops, seconds, median in rows:
        rate = flops / seconds / 1e9
        # torch's counter does not see inside fused kernels (the CPU LSTM): no FLOPs, no fraction
        shown = (
            f"{rate:>8.1f} {rate / peaks['bf16' if bf16 else 'fp32']:>8.0%}"
            if flops
            else f"{'n/a':>8} {'n/a':>8}"
        )
        print(
            f"{name:<16} {label:<14} {args.batch / seconds:>10.0f} {shown}"
            f"   (median step {args.batch / median:.0f} samples/s)"
        )


if __name__ == "__main__":
    main()
