"""How close is `ecg data synth` to real PTB-XL? Lead amplitudes, heart rates, class balance.

    python benchmarks/synth_vs_real.py --real data/PTB-XL --synth data/synth-21799 [--n 2000]

Both folders go through the same cache. Signals are band-passed (0.5-40 Hz) before
measuring; heart rate is estimated from lead II's slope envelope (peaks at least 0.3 s apart).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import signal

from ecgcli import LEADS, SUPERCLASSES
from ecgcli.data.cache import ensure_cache
from ecgcli.data.ptbxl import load_ptbxl


def heart_rate(lead: np.ndarray, fs: int = 100) -> float:
    envelope = np.convolve(np.abs(np.diff(lead)), np.ones(5) / 5, mode="same")
    peaks, _ = signal.find_peaks(envelope, distance=int(0.3 * fs), height=0.35 * envelope.max())
    return float("nan") if len(peaks) < 2 else 60.0 / (np.median(np.diff(peaks)) / fs)


def describe(root: Path, cache: Path, n: int) -> dict:
    ds = load_ptbxl(root)
    store = ensure_cache(ds, cache, workers=2)
    rows = np.sort(np.random.default_rng(0).choice(len(ds), min(n, len(ds)), replace=False))
    b, a = signal.butter(2, [0.5 / 50, 40 / 50], "band")
    x = signal.filtfilt(b, a, store.get(rows), axis=-1)
    hr = np.array([heart_rate(x[i, 1]) for i in range(len(rows))])
    return {
        "p2p": np.median(np.ptp(x, axis=-1), axis=0),
        "std": np.median(x.std(axis=-1), axis=0),
        "hr": np.nanpercentile(hr, [10, 50, 90]),
        "classes": ds.labels.mean(axis=0),
        "unlabelled": 1 - ds.labelled.mean(),
        "multi": (ds.labels.sum(axis=1) >= 2).mean(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--real", type=Path, required=True)
    parser.add_argument("--synth", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, default=Path("data/cache"))
    parser.add_argument("--n", type=int, default=2000, help="records sampled from each")
    args = parser.parse_args()
    real, synth = (describe(p, args.cache_dir, args.n) for p in (args.real, args.synth))
    print(f"{'lead':6s}{'p2p real':>10s}{'p2p synth':>11s}{'ratio':>7s}   {'std real':>9s}{'std synth':>10s}")
    for i, lead in enumerate(LEADS):
        r, s = real["p2p"][i], synth["p2p"][i]
        print(f"{lead:6s}{r:10.3f}{s:11.3f}{s / r:7.2f}   {real['std'][i]:9.3f}{synth['std'][i]:10.3f}")
    print("\nheart rate (bpm), 10th / 50th / 90th percentile")
    print(f"  real  {' / '.join(f'{v:.0f}' for v in real['hr'])}")
    print(f"  synth {' / '.join(f'{v:.0f}' for v in synth['hr'])}")
    print(
        "\nclass frequency        " + "  ".join(f"{c:>5s}" for c in SUPERCLASSES) + "  no class  multi-label"
    )
    for name, d in (("real", real), ("synth", synth)):
        print(
            f"  {name:21s}"
            + "  ".join(f"{v:5.1%}" for v in d["classes"])
            + f"  {d['unlabelled']:8.1%}  {d['multi']:11.1%}"
        )


if __name__ == "__main__":
    main()
