"""Seconds to score records on the CPU by how many windows one inference pass takes: why
``ecgcli.scoring.evaluate`` passes about 16k samples at a time on a CPU rather than 512 windows.

    OMP_NUM_THREADS=1 python benchmarks/eval_batch.py [--records 512] [--repeats 2] [--json out.json]

Each row scores ``--records`` random 12-lead records of 1,000 samples with
:func:`ecgcli.scoring.evaluate.predict_proba` in eval mode, the way fold 9 is scored after
every epoch: cut into 2.5 s windows every 1.25 s (7 windows a record, the benchmark recipe's
validation) or whole (the reference recipe's). ``pass`` is the batch size in windows (records
when whole); ``default`` is what ``windows_per_pass`` picks on a CPU. The figure is the fastest
of ``--repeats`` runs after a warm-up pass. On a shared machine, compare rows of one run only.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from ecgcli.models import ECGClassifier
from ecgcli.scoring.evaluate import predict_proba, windows_per_pass

CPU = torch.device("cpu")
#: (encoder, window or None, stride): the benchmark recipe's windows and whole records.
CASES = [("resnet1d_wang", 250, 125), ("resnet1d_wang", None, None), ("cnn1d", None, None)]
PASSES = (512, 256, 128, 64, 32, 16)


def seconds(model: torch.nn.Module, x: torch.Tensor, window: int | None, stride: int | None,
            batch: int, repeats: int) -> float:
    predict_proba(model, x[:8], CPU, window, batch_size=batch, stride=stride, aggregate="max")
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        predict_proba(model, x, CPU, window, batch_size=batch, stride=stride, aggregate="max")
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    torch.manual_seed(0)
    x = torch.randn(args.records, 12, 1000)
    rows: list[dict[str, Any]] = []
    print(f"{'encoder':15} {'input':22} {'pass':>8} {'seconds':>8}")
    for name, window, stride in CASES:
        model = ECGClassifier.build(name, 5, head="benchmark").eval()
        length = window or 1000
        default = windows_per_pass(CPU, length)
        for batch in sorted({*PASSES, default}, reverse=True):
            s = seconds(model, x, window, stride, batch, args.repeats)
            what = f"windows of {window}" if window else "records of 1000"
            tag = f"{batch}{' (default)' if batch == default else ''}"
            print(f"{name:15} {what:22} {tag:>8} {s:8.2f}", flush=True)
            rows.append({"encoder": name, "window": window, "pass": batch, "default": batch == default,
                         "seconds": round(s, 3)})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"records": args.records, "threads": torch.get_num_threads(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
