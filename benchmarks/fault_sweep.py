"""Fault sweep: SIGKILL and SIGINT at every file write of the issue-17 training command.

    python benchmarks/fault_sweep.py --records 300 --epochs 4 --out /tmp/sweep

The command is the issue's ``T``: ``ecg train supervised --data-root <synthetic set> --epochs 4
--batch-size 16 --label-fraction 1.0 --seed 7 --workers 1 --device cpu``. For every write of a
run (config.json; the resume state after each epoch; the best checkpoint's weights and sidecar,
predictions and metrics.json at the end) and both signals, the run is signalled the moment that
write's temporary appears (tests/faults/injector.py), then resumed (or rerun, when no epoch
was saved), and its numbers compared with an uninterrupted run's. Prints one row per case:
``same`` (identical metrics, history and probabilities after the rerun or resume),
``complete`` (Ctrl-C during the last write: the run finished, with identical numbers),
``refused`` (one error line) or ``DIFFERENT``, and any temporary left behind. The fast CI subset is tests/faults/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "faults"))
from injector import ecg, run, temporaries  # noqa: E402


def numbers(run_dir: Path) -> dict:
    import numpy as np

    m = json.loads((run_dir / "metrics.json").read_text())
    hist = [{k: v for k, v in h.items() if k not in ("seconds", "samples_per_s")} for h in m["history"]]
    with np.load(run_dir / "predictions.npz") as p:
        probs = {k: p[k].tolist() for k in p.files}
    return {"m": {k: v for k, v in m.items() if k not in ("timing", "history")}, "h": hist, "p": probs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--delay", default="0.3", help="seconds each fsync is held (widens every write)")
    a = ap.parse_args()
    shutil.rmtree(a.out, ignore_errors=True)
    a.out.mkdir(parents=True)
    data, cache = a.out / "synth", a.out / "cache"
    env = {"ECG_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1", "FAULT_WRITE_DELAY": a.delay}
    assert (
        run(ecg("data", "synth", "--out", str(data), "--records", str(a.records), "--seed", "7")).returncode
        == 0
    )

    def t(run_dir: Path) -> list[str]:
        return ecg(
            "train", "supervised", "--data-root", str(data), "--epochs", str(a.epochs), "--batch-size", "16",
            "--label-fraction", "1.0", "--seed", "7", "--workers", "1", "--device", "cpu", "--run-dir", str(run_dir),
        )  # fmt: skip

    t0 = time.perf_counter()
    ref = run(t(a.out / "reference"), env={**env, "FAULT_WRITE_DELAY": "0"})
    assert ref.returncode == 0, ref.output
    reference = numbers(a.out / "reference")
    # the resume state of epoch k is written before the line "epoch k/E" is printed
    points = [(".config.json.tmp-*", None), ("state/.last.safetensors.tmp-*", None)]
    points += [("state/.last.safetensors.tmp-*", rf"^epoch {e}/{a.epochs}") for e in range(1, a.epochs)]
    points += [
        (f".{n}.tmp-*", None) for n in ("model.safetensors", "model.json", "predictions.npz", "metrics.json")
    ]
    print(f"{'write':32} {'armed after':12} {'signal':6} {'rc':>4}  {'outcome':9} temporaries left")
    case = 0
    for watch, after in points:
        for sig in (signal.SIGKILL, signal.SIGINT):
            case += 1
            run_dir = a.out / f"case{case:02d}"
            hit = run(t(run_dir), watch=str(run_dir / watch), after=after, sig=sig, env=env)
            state = run_dir / "state" / "last.safetensors"
            if (run_dir / "metrics.json").is_file():  # Ctrl-C during the last write: it completed
                outcome = "complete" if numbers(run_dir) == reference else "DIFFERENT"
                left = len(temporaries(run_dir))
                print(
                    f"{watch:32} {(after or '-').lstrip('^'):12} {sig.name[3:]:6} {hit.returncode:>4}  {outcome:9} {left}"
                )
                continue
            resume = ecg("train", "supervised", "--resume", str(run_dir))
            again = run(resume if state.is_file() else t(run_dir), env=env)
            if again.returncode == 0:
                outcome = "same" if numbers(run_dir) == reference else "DIFFERENT"
            else:
                errs = [ln for ln in again.lines if ln.startswith("error:")]
                outcome = "refused" if len(errs) == 1 and len(again.lines) == 1 else f"rc {again.returncode}"
            left = len(temporaries(run_dir))
            fired = "" if hit.fired else "  (the temporary never appeared)"
            shown = (after or "-").lstrip("^")
            print(f"{watch:32} {shown:12} {sig.name[3:]:6} {hit.returncode:>4}  {outcome:9} {left}{fired}")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
