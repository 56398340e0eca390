"""`ecg predict` with torch vs with onnxruntime (`--runtime onnx`): cold start and throughput.

    python benchmarks/predict_runtime.py                       # default-width model, 500 records
    python benchmarks/predict_runtime.py --checkpoint runs/x --records 1000 --threads 2

Writes ``--records`` simulated 10 s records at 100 Hz into a temporary folder, a checkpoint
(untrained default width 64 unless ``--checkpoint``; speed does not depend on the weights),
and its ``ecg export --format onnx``. Then, for each runtime:

- cold start: median wall time of ``--repeats`` subprocess runs of
  ``python -m ecgcli predict ONE_RECORD -c MODEL --json`` (interpreter start, imports, model
  load, read, score, print);
- folder: wall time of one subprocess run over the whole folder with ``--csv``, and
  throughput after start-up = (records - 1) / (folder time - cold start);
- in-process: records/s of ``Predictor.predict`` / ``OnnxPredictor.predict`` over the folder
  after the model is loaded (reading, windowing and scoring; no process start);
- which heavy modules the onnx run imported (torch must not be among them).

Both runtimes use ``--threads`` threads (torch.set_num_threads / ORT intra-op threads,
through OMP_NUM_THREADS for the subprocesses).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from predict_speed import _make_checkpoint  # noqa: E402  (one random checkpoint for both scripts)


def _write_records(folder: Path, n: int) -> list[Path]:
    from ecgcli import LEADS
    from ecgcli.data.synth import write_record
    from ecgcli.inference.export import ecg_like_windows

    x = ecg_like_windows(n, 100, 1000, seed=1)
    stems = []
    for i in range(n):
        write_record(folder / f"{i:05d}_lr", np.round(x[i].T * 1000).astype(np.int16), list(LEADS), 100)
        stems.append(folder / f"{i:05d}_lr")
    return stems


def _run(args: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ecgcli", *args], check=True, env=env, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--width", type=int, default=64)
    args = parser.parse_args()

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = args.checkpoint or _make_checkpoint(tmp / "ckpt" / "model.safetensors", args.width)
        from ecgcli.inference.export import export_model

        report = export_model(ckpt, "onnx", tmp / "model.onnx")
        print(
            f"exported {report.path.name}: {report.size_bytes / 1024:.0f} KiB, max |delta p| {report.max_delta:.1e}"
        )
        folder = tmp / "records"
        folder.mkdir()
        stems = _write_records(folder, args.records)
        models = {"torch": ["-c", str(ckpt)], "onnx": ["--runtime", "onnx", "-c", str(tmp / "model.onnx")]}
        print(
            f"{args.records} records of 10 s at 100 Hz, {args.threads} thread(s), python {sys.version.split()[0]}"
        )
        print(
            f"{'runtime':8} {'cold start (median)':>20} {'folder wall':>12} {'rec/s after start':>18} {'rec/s in-process':>17}"
        )
        for name, model in models.items():
            _run(["predict", str(stems[0]), *model, "--json"], env)  # warm the file cache
            cold = statistics.median(
                _run(["predict", str(stems[0]), *model, "--json"], env) for _ in range(args.repeats)
            )
            wall = _run(["predict", str(folder), *model, "--csv"], env)
            after = (args.records - 1) / max(wall - cold, 1e-9)
            inproc = _in_process(name, ckpt, tmp / "model.onnx", stems, args.threads)
            print(f"{name:8} {cold:19.2f}s {wall:11.2f}s {after:18.0f} {inproc:17.0f}")
        code = (
            "import sys\nfrom ecgcli.cli.app import app\ntry:\n"
            f"    app(['predict', {str(stems[0])!r}, '--runtime', 'onnx', '-c', {str(tmp / 'model.onnx')!r}, '--json'])\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'pandas', 'sklearn', 'onnxruntime', 'scipy') if m in sys.modules))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        print("heavy modules imported by `ecg predict --runtime onnx`:", out.stdout.strip().splitlines()[-1])


def _in_process(name: str, ckpt: Path, onnx_path: Path, stems: list[Path], threads: int) -> float:
    """Records per second of one predict() pass over ``stems`` after the model is loaded."""
    if name == "torch":
        from ecgcli.inference.predict import Predictor

        predictor = Predictor.from_checkpoint(ckpt, threads=threads)
    else:
        from ecgcli.inference.onnx_runtime import OnnxPredictor

        predictor = OnnxPredictor.from_file(onnx_path, threads=threads)
    list(predictor.predict(stems[:16]))  # warm-up
    t = time.perf_counter()
    results = list(predictor.predict(stems))
    return len(results) / (time.perf_counter() - t)


if __name__ == "__main__":
    main()
