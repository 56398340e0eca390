"""Cold start of ``ecg predict examples/records/*.hea`` with a shipped model, per runtime.

    python benchmarks/predict_cold_start.py                  # the default model, 7 runs each
    python benchmarks/predict_cold_start.py --model ptbxl-all --repeats 11 --json out.json

Each run is a whole new process (interpreter start, imports, checksum of the shipped files, model
load, reading the ten example records, scoring, printing), as a user meets it. For each runtime
(``auto``, which picks onnx for a shipped model when onnxruntime is installed, and ``torch``) it
prints the median, minimum and maximum wall time and the median peak resident memory of the
process (``wait4``'s ``ru_maxrss``), after one warm-up run that fills the file cache. Runs
alternate between the runtimes so a drift in the machine's speed hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one whole process."""
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child: silence output, exec the CLI
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.execve(argv[0], argv, env)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} exited {os.waitstatus_to_exitcode(status)}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="shipped model name [default: the default model]")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS for the runs")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()

    from ecgcli import pretrained

    model = args.model or pretrained.default_classifier()
    if model is None:
        raise SystemExit("this install ships no default model; pass --model NAME")
    records = sorted(str(p) for p in (ROOT / "examples" / "records").glob("*.hea"))
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    env.pop("ECG_CHECKPOINT", None)
    base = [sys.executable, "-m", "ecgcli", "predict", *records, "-c", model]
    runtimes = {"auto": [*base, "--runtime", "auto"], "torch": [*base, "--runtime", "torch"]}
    for argv in runtimes.values():
        one_run(argv, env)  # warm-up
    figures: dict[str, list[tuple[float, float]]] = {k: [] for k in runtimes}
    for _ in range(args.repeats):
        for name, argv in runtimes.items():
            figures[name].append(one_run(argv, env))
    out = {"model": model, "records": len(records), "repeats": args.repeats, "threads": args.threads}
    print(f"ecg predict on {len(records)} example records with {model}, {args.repeats} runs each:")
    for name, runs in figures.items():
        walls = [w for w, _ in runs]
        rss = statistics.median(m for _, m in runs)
        out[name] = {"wall_median_s": statistics.median(walls), "wall_min_s": min(walls),
                     "wall_max_s": max(walls), "peak_rss_median_mib": rss}  # fmt: skip
        print(
            f"  --runtime {name:5s}  wall median {statistics.median(walls):.3f} s "
            f"(min {min(walls):.3f}, max {max(walls):.3f}), peak RSS {rss:.0f} MiB"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
