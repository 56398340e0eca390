"""`ecg predict` speed: one record end to end, and a folder of records per second on CPU.

    python benchmarks/predict_speed.py                                   # default-width model
    python benchmarks/predict_speed.py --checkpoint runs/x/model.safetensors --records 1000

Goals (issue: predict): one record end to end (process start, model load, read, predict) at
most 3 s on CPU; a folder of 1,000 records at least 100 records/s on CPU after start-up.

(a) runs `python -m ecgcli predict REC --checkpoint CKPT` as a subprocess, median wall time of
``--repeats`` runs, for a 10 s record at the model's rate (100 Hz, no resampling) and for a
10 s record at 500 Hz (resampled, so scipy.signal is imported too).
(b) writes ``--records`` synthetic 10 s PTB-XL records at 100 Hz (``ecg data synth``'s writer),
then, in this process: loads the model once (timed separately) and times
``Predictor.predict`` over the whole folder (reading, windowing, normalising, forward passes,
aggregation): records/s after start-up. Also the wall time of the whole command on the folder
with ``--csv`` and with the default table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _make_checkpoint(path: Path, width: int) -> Path:
    import torch

    from ecgcli import LEADS, SUPERCLASSES
    from ecgcli.models import ECGClassifier
    from ecgcli.storage.checkpoint import checkpoint_meta, save_checkpoint

    torch.manual_seed(0)
    model = ECGClassifier.build("cnn1d", n_classes=5, width=width).eval()
    meta = checkpoint_meta(
        "classifier",
        architecture=model.architecture(),
        class_names=list(SUPERCLASSES),
        leads=list(LEADS),
        sampling_rate=100,
        signal_length=1000,
        thresholds=[0.5] * 5,
        normalisation={"mean": [0.0] * 12, "std": [0.15] * 12},
    )
    return save_checkpoint(path, model, meta)


def _write_500hz(folder: Path) -> Path:
    import wfdb

    from ecgcli import LEADS

    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(5000) / 500
    sig = np.exp(-(((t % 0.83) - 0.3) ** 2) / 2e-4)[:, None] * np.linspace(0.3, 1.5, 12)
    wfdb.wrsamp(
        "rec500",
        fs=500,
        units=["mV"] * 12,
        sig_name=list(LEADS),
        d_signal=np.round(sig * 1000).astype(np.int16),
        fmt=["16"] * 12,
        adc_gain=[1000.0] * 12,
        baseline=[0] * 12,
        write_dir=str(folder),
    )
    return folder / "rec500"


def _command(args: list[str], out=subprocess.DEVNULL) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ecgcli", "predict", *args], check=True, stdout=out, env=env)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, help="a trained classifier (else a random one)")
    parser.add_argument("--width", type=int, default=64, help="encoder width of the random model")
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--work-dir", type=Path, default=Path("data/bench-predict"))
    args = parser.parse_args()

    import torch

    from ecgcli.data.records import resolve_records
    from ecgcli.data.synth import write_synthetic_ptbxl
    from ecgcli.inference.predict import Predictor

    work = args.work_dir
    ckpt = args.checkpoint or _make_checkpoint(work / f"model-w{args.width}.safetensors", args.width)
    data = work / f"synth-{args.records}"
    if not (data / "ptbxl_database.csv").is_file():
        t = time.perf_counter()
        write_synthetic_ptbxl(data, args.records, seed=0, workers=os.cpu_count() or 1)
        print(f"wrote {args.records} synthetic 10 s records at 100 Hz in {time.perf_counter() - t:.1f} s")
    folder = data / "records100"
    stems = resolve_records([folder])
    rec500 = _write_500hz(work / "hr")
    print(
        f"machine: {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} "
        f"threads, load average {os.getloadavg()[0]:.2f}; checkpoint {ckpt}"
    )

    print(f"\n(a) one record end to end: python -m ecgcli predict REC -c CKPT (median of {args.repeats})")
    for label, rec in (("10 s at 100 Hz", stems[0]), ("10 s at 500 Hz, resampled", rec500)):
        times = [_command([str(rec), "-c", str(ckpt)]) for _ in range(args.repeats)]
        print(
            f"    {label:<27} median {statistics.median(times):.2f} s  "
            f"(min {min(times):.2f}, max {max(times):.2f})  goal <= 3 s"
        )

    print(f"\n(b) a folder of {len(stems)} records, in process")
    t = time.perf_counter()
    predictor = Predictor.from_checkpoint(ckpt, device="cpu")
    print(f"    model load               {time.perf_counter() - t:.3f} s")
    rates = []
    for i in range(3):
        t = time.perf_counter()
        results = list(predictor.predict(stems))
        seconds = time.perf_counter() - t
        rates.append(len(results) / seconds)
        print(f"    pass {i + 1}: {seconds:.2f} s   {rates[-1]:.0f} records/s")
    print(
        f"    records/s after start-up: first pass {rates[0]:.0f}, median {statistics.median(rates):.0f}  goal >= 100"
    )
    print("\n    whole command on the folder (process start to exit):")
    print(f"    --csv          {_command([str(folder), '-c', str(ckpt), '--csv']):.2f} s")
    print(f"    table          {_command([str(folder), '-c', str(ckpt)]):.2f} s")


if __name__ == "__main__":
    main()
