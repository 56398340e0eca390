"""Augmentation speed: the batched torch policy versus the reference study's per-record pipeline.

    python benchmarks/augment_speed.py [--batch 256] [--fs 100] [--threads 2] [--rounds 5]

Times two SSL views of a ``(batch, 12, 10 s)`` batch with every augmentation enabled, on CPU
with 2 torch threads, as the median of interleaved runs after warm-up (the best run is shown
too: on a shared machine the background load moves the median):

- "torch": :func:`ecgcli.ssl.augment.build_policy` (default probabilities, and all at p = 1);
- "per-record numpy/scipy": a re-creation of the reference study's pipeline, a Python loop
  over records applying the same augmentations with numpy and scipy (``butter`` + ``filtfilt``
  band-pass, ``np.interp`` time warp and dropout fill, per record and lead).

Then each augmentation alone (p = 1, one view) in both implementations, and, when CUDA is
available, the torch policy on the GPU with a check that the views never leave the device.
Goal: the batched policy at least 20x faster than the per-record pipeline on CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from scipy import signal

from ecgcli.ssl.augment import AUGMENTATIONS, AugmentConfig, ECGAugment, build_policy


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def paired(
    fast: Callable[[], object], slow: Callable[[], object], rounds: int, fast_per_round: int
) -> tuple[list[float], list[float]]:
    """Interleaved timings (one slow run, then ``fast_per_round`` fast ones, ``rounds`` times)
    after warm-up, so both arms see the same background load on a shared machine."""
    fast(), fast(), slow()
    fast_times: list[float] = []
    slow_times: list[float] = []
    for _ in range(rounds):
        slow_times.append(timed(slow))
        fast_times.extend(timed(fast) for _ in range(fast_per_round))
    return fast_times, slow_times


def ms(times: list[float]) -> str:
    return f"{statistics.median(times) * 1e3:8.1f} ({min(times) * 1e3:6.1f})"


def cuda_time(fn: Callable[[], object], repeats: int) -> float:
    def synced() -> None:
        fn()
        torch.cuda.synchronize()

    for _ in range(3):
        synced()
    return statistics.median(timed(synced) for _ in range(repeats))


# ------------------------------------------------------------------ the per-record reference


def ref_ops(cfg: AugmentConfig, fs: int) -> dict[str, Callable]:
    """Per-record numpy/scipy versions: ``op(record (12, T), batch, rng) -> record``."""

    def mixup(s, batch, rng):
        lam = rng.beta(cfg.mixup.alpha, cfg.mixup.alpha)
        lam = max(lam, 1 - lam)
        return lam * s + (1 - lam) * batch[rng.integers(len(batch))]

    def cutmix(s, batch, rng):
        n = s.shape[1]
        span = int(round(rng.uniform(*cfg.cutmix.fraction) * n))
        start = rng.integers(0, n - span + 1)
        out = s.copy()
        out[:, start : start + span] = batch[rng.integers(len(batch))][:, start : start + span]
        return out

    def time_warp(s, batch, rng):
        n = s.shape[1]
        factor = rng.uniform(1 - cfg.time_warp.max_change, 1 + cfg.time_warp.max_change)
        c = (n - 1) / 2
        pos = c + (np.arange(n) - c) * factor
        pos = np.where(pos < 0, -pos, np.where(pos > n - 1, 2 * (n - 1) - pos, pos))
        return np.stack([np.interp(pos, np.arange(n), lead) for lead in s])

    def bandpass(s, batch, rng):
        bp = cfg.bandpass
        cap = bp.max_high_fraction * fs / 2
        lo = rng.uniform(*bp.low)
        hi = rng.uniform(min(bp.high[0], cap), min(bp.high[1], cap))
        b, a = signal.butter(bp.order, [lo, hi], btype="bandpass", fs=fs)
        return signal.filtfilt(b, a, s, axis=-1)

    def amplitude_scale(s, batch, rng):
        return s * rng.uniform(*cfg.amplitude_scale.scale)

    def temporal_dropout(s, batch, rng):
        n = s.shape[1]
        span = int(round(rng.uniform(*cfg.temporal_dropout.fraction) * n))
        start = rng.integers(1, n - span)
        keep = np.ones(n, dtype=bool)
        keep[start : start + span] = False
        t = np.arange(n)
        out = s.copy()
        for lead in range(s.shape[0]):
            out[lead, ~keep] = np.interp(t[~keep], t[keep], s[lead, keep])
        return out

    def baseline_wander(s, batch, rng):
        bw = cfg.baseline_wander
        t = np.arange(s.shape[1]) / fs
        f = rng.uniform(*bw.freq)
        amp = rng.uniform(*bw.amplitude, size=(s.shape[0], 1))
        phase = rng.uniform(0, 2 * np.pi, size=(s.shape[0], 1))
        return s + amp * np.sin(2 * np.pi * f * t + phase)

    def channel_noise(s, batch, rng):
        rel = rng.uniform(*cfg.channel_noise.relative_std, size=(s.shape[0], 1))
        return s + rel * s.std(axis=1, keepdims=True) * rng.standard_normal(s.shape)

    def jitter(s, batch, rng):
        return s + cfg.jitter.sigma * rng.standard_normal(s.shape)

    return {
        "mixup": mixup,
        "cutmix": cutmix,
        "time_warp": time_warp,
        "bandpass": bandpass,
        "amplitude_scale": amplitude_scale,
        "temporal_dropout": temporal_dropout,
        "baseline_wander": baseline_wander,
        "channel_noise": channel_noise,
        "jitter": jitter,
    }


def reference_view(x: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator, names) -> np.ndarray:
    ops = ref_ops(cfg, cfg.fs)
    out = np.empty_like(x)
    for i in range(len(x)):  # the per-record loop being replaced
        s = x[i].astype(np.float64)
        for name in names:
            if rng.random() < cfg.op(name).p:
                s = ops[name](s, x, rng)
        out[i] = s
    return out


def all_on(cfg: AugmentConfig) -> AugmentConfig:
    return dataclasses.replace(
        cfg, **{name: dataclasses.replace(cfg.op(name), p=1.0) for name in AUGMENTATIONS}
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--fs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5, help="per-record runs")
    parser.add_argument("--per-round", type=int, default=3, help="torch runs per round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--glibc-default",
        action="store_true",
        help="leave glibc's allocator as is (training processes keep freed memory, see "
        "ecgcli.train.allocator)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.glibc_default:
        from ecgcli.train.allocator import keep_freed_memory

        keep_freed_memory()  # as every training process does

    length = 10 * args.fs
    g = torch.Generator().manual_seed(0)
    x = 0.3 * torch.randn(args.batch, 12, length, generator=g).cumsum(-1) / length**0.5
    x_np = x.numpy()
    default = build_policy(args.fs).config
    full = all_on(default)
    rng = np.random.default_rng(0)

    print(
        f"two views of {args.batch} x 12 x {length} at {args.fs} Hz on CPU, "
        f"{torch.get_num_threads()} torch threads; load average {os.getloadavg()[0]:.2f}\n"
        f"median (best) in ms: torch of {args.rounds * args.per_round} runs, per-record of "
        f"{args.rounds}, interleaved after warm-up\n"
    )
    head = f"{'torch batched':>18}{'per-record np/scipy':>22}{'speed-up':>10}"
    print(f"{'two views, policy':<26}{head}")
    for label, cfg in (("default p", default), ("all p = 1", full)):
        policy = ECGAugment(cfg)
        fast, slow = paired(
            lambda p=policy: p.two_views(x, g),
            lambda c=cfg: [reference_view(x_np, c, rng, AUGMENTATIONS) for _ in range(2)],
            args.rounds,
            args.per_round,
        )
        speedup = statistics.median(slow) / statistics.median(fast)
        print(f"{label:<26}{ms(fast):>18}{ms(slow):>22}{speedup:>9.1f}x")
    print(
        "\nagainst the reference system's own code (src/ssrl_ecg/augmentations.py of "
        "Tumo505/SSL-for-ECG-classification, once per record), timed side by side in one process on a "
        "quiet machine (issue 16): 357 ms there vs 40 ms here for these two views, 8.8x"
    )

    print(f"\n{'each alone, p = 1, 1 view':<26}{head}")
    for name in AUGMENTATIONS:
        op = full.op(name)
        fast, slow = paired(
            lambda o=op: o.apply(x, g, args.fs),
            lambda n=name: reference_view(x_np, full, rng, (n,)),
            args.rounds,
            args.per_round,
        )
        speedup = statistics.median(slow) / statistics.median(fast)
        print(f"{name:<26}{ms(fast):>18}{ms(slow):>22}{speedup:>9.1f}x")

    if torch.cuda.is_available():
        xg = x.cuda()
        gg = torch.Generator(device="cuda").manual_seed(0)
        policy = ECGAugment(full)
        v1, v2 = policy.two_views(xg, gg)
        assert v1.is_cuda and v2.is_cuda, "a view left the GPU"
        t_gpu = cuda_time(lambda: policy.two_views(xg, gg), 20)
        print(f"\nGPU {torch.cuda.get_device_name()}: two views, all p = 1: {t_gpu * 1e3:.2f} ms")
        print(f"views stay on the device: {v1.device}, {v2.device}")
    else:
        print("\nno CUDA device: GPU timing skipped")


if __name__ == "__main__":
    main()
