"""Augmentation speed: the batched torch policy versus the reference study's per-record pipeline.

    python benchmarks/augment_speed.py [--batch 256] [--fs 100] [--repeats 7]

Times two SSL views of a ``(batch, 12, 10 s)`` batch with every augmentation enabled, on CPU
with 2 torch threads, as the median of ``--repeats`` runs after warm-up:

- "torch": :func:`ecgcli.augment.build_policy` (default probabilities, and all at p = 1);
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

from ecgcli.augment import AUGMENTATIONS, AugmentConfig, ECGAugment, build_policy


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cuda_time(fn: Callable[[], object], repeats: int) -> float:
    def synced() -> None:
        fn()
        torch.cuda.synchronize()

    return median_time(synced, repeats, warmup=3)


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


def reference_view(
    x: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator, names
) -> np.ndarray:
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
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--ref-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    length = 10 * args.fs
    g = torch.Generator().manual_seed(0)
    x = 0.3 * torch.randn(args.batch, 12, length, generator=g).cumsum(-1) / length**0.5
    x_np = x.numpy()
    default = build_policy(args.fs).config
    full = all_on(default)
    rng = np.random.default_rng(0)

    print(
        f"two views of {args.batch} x 12 x {length} at {args.fs} Hz, CPU, "
        f"{torch.get_num_threads()} torch threads, median of {args.repeats} (reference: "
        f"{args.ref_repeats}); load average before: {os.getloadavg()[0]:.2f}\n"
    )
    print(f"{'policy':<22}{'torch batched':>16}{'per-record np/scipy':>22}{'speed-up':>11}")
    for label, cfg in (("default p", default), ("all p = 1", full)):
        policy = ECGAugment(cfg)
        t_torch = median_time(lambda p=policy: p.two_views(x, g), args.repeats)
        t_ref = median_time(
            lambda c=cfg: [reference_view(x_np, c, rng, AUGMENTATIONS) for _ in range(2)],
            args.ref_repeats,
            warmup=1,
        )
        print(
            f"{label:<22}{t_torch * 1e3:>13.1f} ms{t_ref * 1e3:>19.1f} ms{t_ref / t_torch:>10.1f}x"
        )

    print(f"\n{'each alone (p=1, 1 view)':<26}{'torch':>12}{'per-record':>14}{'speed-up':>11}")
    for name in AUGMENTATIONS:
        op = full.op(name)
        t_torch = median_time(lambda o=op: o.apply(x, g, args.fs), args.repeats)
        t_ref = median_time(
            lambda n=name: reference_view(x_np, full, rng, (n,)), args.ref_repeats, warmup=1
        )
        print(f"{name:<26}{t_torch * 1e3:>9.2f} ms{t_ref * 1e3:>11.1f} ms{t_ref / t_torch:>10.1f}x")

    if torch.cuda.is_available():
        xg = x.cuda()
        gg = torch.Generator(device="cuda").manual_seed(0)
        policy = ECGAugment(full)
        v1, v2 = policy.two_views(xg, gg)
        assert v1.is_cuda and v2.is_cuda, "a view left the GPU"
        t_gpu = cuda_time(lambda: policy.two_views(xg, gg), args.repeats)
        print(f"\nGPU {torch.cuda.get_device_name()}: two views, all p = 1: {t_gpu * 1e3:.2f} ms")
        print(f"views stay on the device: {v1.device}, {v2.device}")
    else:
        print("\nno CUDA device: GPU timing skipped")


if __name__ == "__main__":
    main()
