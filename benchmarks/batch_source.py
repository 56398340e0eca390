"""What streaming training batches from the memory-mapped cache costs against the in-memory tensor.

    python benchmarks/batch_source.py --data-root data/PTB-XL [--json out.json]

Builds both training sources of the 100%-label superdiagnostic split (the float32 tensor the
trainer used to hold, and :class:`~ecgcli.train.data.CachedRows`, which it streams from now),
then draws a whole epoch of batches (the benchmark recipe's 128 records, random 2.5 s crops,
oversample order) from each, alternating, ``--repeats`` times, checking that every batch is
equal. It prints the median milliseconds per batch of each source beside the median time of one
``resnet1d_wang`` training step on such a batch, which is what a batch's reading must stay
small against, and how much memory the tensor source holds that the streamed one does not.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, required=True)
    ap.add_argument("--cache-dir", type=Path, default=Path("data/cache"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3, help="training steps timed for the reference")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from ecgcli.data.loader import EpochSampler
    from ecgcli.data.normalize import fit_lead_norm
    from ecgcli.models import ECGClassifier
    from ecgcli.train.config import SupervisedConfig
    from ecgcli.train.data import CachedRows, load_training_data, signals_tensor
    from ecgcli.train.supervised import ClassifierObjective

    cfg = SupervisedConfig(data_root=str(args.data_root), cache_dir=str(args.cache_dir), device="cpu")
    data = load_training_data(cfg, 1.0)
    rows, labels = data.split.train, data.dataset.labels[data.split.train]
    norm = fit_lead_norm(data.store, rows)
    tensor = signals_tensor(data.store, rows, norm)
    sampler = EpochSampler(labels, "oversample", 42)
    y = torch.from_numpy(labels.astype(np.float32))
    x_val = tensor[:2]
    model = ECGClassifier.build("resnet1d_wang", labels.shape[1], head="benchmark")

    def objective(x: object) -> ClassifierObjective:
        loss = torch.nn.BCEWithLogitsLoss()
        return ClassifierObjective(
            model, x, y, sampler, 128, loss, x_val, labels[:2], 250, 42, torch.device("cpu")
        )  # type: ignore[arg-type]

    sources = {
        "in-memory tensor": objective(tensor),
        "streamed from the cache": objective(CachedRows(data.store, rows, norm)),
    }
    per_batch: dict[str, list[float]] = {k: [] for k in sources}
    for epoch in range(args.repeats):
        drawn = {}
        for name, obj in sources.items():
            t0 = time.perf_counter()
            drawn[name] = list(obj.batches(epoch))
            per_batch[name].append((time.perf_counter() - t0) / len(drawn[name]) * 1e3)
        a, b = drawn.values()
        assert all(torch.equal(xa, xb) for (xa, _), (xb, _) in zip(a, b, strict=True)), "batches differ"
    xb, yb = next(iter(sources["streamed from the cache"].batches(0)))
    opt = torch.optim.AdamW(model.parameters())
    steps = []
    for _ in range(args.steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(model(xb), yb).backward()
        opt.step()
        steps.append((time.perf_counter() - t0) * 1e3)
    step_ms = statistics.median(steps[1:])  # the first step warms up
    out = {
        "records": len(rows),
        "threads": torch.get_num_threads(),
        "tensor_mib": round(tensor.numel() * 4 / 2**20),
        "ms_per_batch": {k: round(statistics.median(v), 2) for k, v in per_batch.items()},
        "training_step_ms": round(step_ms, 1),
    }
    print(f"{len(rows)} training records; the in-memory tensor holds {out['tensor_mib']} MiB")
    for name, ms in out["ms_per_batch"].items():
        print(f"  {name:24s} {ms:7.2f} ms a batch ({ms / step_ms:.1%} of a training step)")
    print(f"  one resnet1d_wang training step on such a batch: {step_ms:.0f} ms ({out['threads']} threads)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
