"""Test calibration of a finished run before and after per-class temperature scaling.

    python benchmarks/calibration_posthoc.py runs/supervised-focal-oversample-s42

For a run whose model sees each record as one window (``signal_length`` equal to the record
length, the default at 100 Hz), a record's probability is ``sigmoid(logit)``, so the logits
are recovered exactly (to float32 rounding) from ``predictions.npz`` as ``log(p / (1 - p))``.
The script then does what ``train_classifier(..., calibrate="temperature")`` does after
selection: fits one temperature per class on the fold-9 predictions
(:func:`ecgcli.scoring.calibration.fit_temperature`) and reports the fold-10 ECE (15 bins)
and Brier score per class before and after, plus the test AUROC (unchanged by a monotone map).
Nothing is written.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ecgcli.scoring.calibration import apply_temperature, calibration_report, fit_temperature
from ecgcli.scoring.metrics import class_aurocs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args()
    config = json.loads((args.run_dir / "config.json").read_text())
    metrics = json.loads((args.run_dir / "metrics.json").read_text())
    names = json.loads((args.run_dir / "model.json").read_text())["class_names"]
    length = {100: 1000, 500: 5000}[int(metrics["data"]["sampling_rate"])]
    if int(config["signal_length"]) != length:
        raise SystemExit("this run scores several windows per record: logits cannot be recovered from p")
    with np.load(args.run_dir / "predictions.npz", allow_pickle=False) as npz:
        yv, pv, yt, pt = (npz[k].astype(np.float64) for k in ("val_y", "val_prob", "test_y", "test_prob"))
    eps = 1e-7

    def logit(p: np.ndarray) -> np.ndarray:
        p = np.clip(p, eps, 1 - eps)
        return np.log(p / (1 - p))

    t = fit_temperature(logit(pv), yv)
    before = calibration_report(yt, pt, names)
    after_p = apply_temperature(logit(pt), t)
    after = calibration_report(yt, after_p, names)
    print(f"{args.run_dir}: {len(yv)} fold-9 records (fit), {len(yt)} fold-10 records (report)")
    print(
        f"{'class':6} {'T':>6} {'ECE before':>11} {'ECE after':>10} {'Brier before':>13} {'Brier after':>12}"
    )
    for i, c in enumerate(names):
        print(
            f"{c:6} {t[i]:6.2f} {before['ece'][c]:11.4f} {after['ece'][c]:10.4f} "
            f"{before['brier'][c]:13.4f} {after['brier'][c]:12.4f}"
        )
    print(
        f"{'macro':6} {'':6} {before['macro_ece']:11.4f} {after['macro_ece']:10.4f} "
        f"{before['macro_brier']:13.4f} {after['macro_brier']:12.4f}"
    )
    print(
        f"test macro AUROC before {np.nanmean(class_aurocs(yt, pt)):.4f}, "
        f"after {np.nanmean(class_aurocs(yt, after_p)):.4f}"
    )


if __name__ == "__main__":
    main()
