"""Where a training epoch's time goes, for supervised and SimCLR training, at 1 and 2 processes.

    python benchmarks/epoch_breakdown.py                      # synthetic PTB-XL, made if absent
    python benchmarks/epoch_breakdown.py --data-root data/PTB-XL --label-fraction 0.1

Each configuration runs the real trainers (`train_classifier`, `train_ssl`) in fresh processes:
one process directly, N processes under torchrun (`python -m torch.distributed.run`), and on
CUDA too when a GPU is at hand. The loop is not changed: its objective's methods are wrapped
with timers in the benchmark's own processes, and rank 0 reports:

- data read: assembling batches (epoch order and shard, index_select, random crop);
- augmentation: the two SSL views (the trainer's own timer, synchronised on CUDA);
- fwd+bwd+step: the rest of the training phase (forward, loss, backward with DDP's gradient
  all-reduce, optimiser step, EMA), i.e. epoch time minus the other three columns;
- evaluation: validation on fold 9 each epoch (supervised) or the linear probe (SSL).

Seconds are the mean per epoch over the epochs after the first (the first includes warm-up).
--batch-size is the global batch in every configuration, as in `ecg`. CPU processes share the
machine's cores: each of N processes gets cores / N threads, and one process also runs with
the per-process threads of the largest N, to separate the gain of more processes from that of
fewer threads per process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
COLUMNS = ("data", "augment", "compute", "eval")


def worker(args: argparse.Namespace) -> None:
    """One configuration, in this process (one rank of it under torchrun)."""
    import torch

    from ecgcli.events import EpochDone
    from ecgcli.train import ssl as ssl_mod
    from ecgcli.train import supervised as sup_mod
    from ecgcli.train.distributed import session

    timers = {"data": 0.0, "eval": 0.0}
    per_epoch: list[dict[str, float]] = []

    def sync() -> None:
        if torch.cuda.is_available() and args.device == "cuda":
            torch.cuda.synchronize()

    def timed_batches(original):
        def batches(self, epoch):
            it = original(self, epoch)
            while True:
                t = time.perf_counter()
                try:
                    batch = next(it)
                except StopIteration:
                    return
                sync()
                timers["data"] += time.perf_counter() - t
                yield batch

        return batches

    def timed_validate(original):
        def validate(self, epoch):
            t = time.perf_counter()
            out = original(self, epoch)
            timers["eval"] += time.perf_counter() - t
            return out

        return validate

    for cls in (sup_mod.ClassifierObjective, ssl_mod.SSLObjective):
        cls.batches = timed_batches(cls.batches)
        cls.validate = timed_validate(cls.validate)
    objectives: list = []
    original_init = ssl_mod.SSLObjective.__init__

    def remember(self, *a, **k):
        original_init(self, *a, **k)
        objectives.append(self)

    ssl_mod.SSLObjective.__init__ = remember

    def on_event(event) -> None:
        if isinstance(event, EpochDone):
            aug = objectives[-1].augment_seconds if objectives else 0.0
            row = {"epoch": event.seconds, "data": timers["data"], "augment": aug, "eval": timers["eval"]}
            row["compute"] = row["epoch"] - row["data"] - row["augment"] - row["eval"]
            row["samples_per_s"] = event.samples_per_s
            per_epoch.append(row)
            timers["data"] = timers["eval"] = 0.0

    common = {
        "data_root": args.data_root,
        "cache_dir": args.cache_dir,
        "runs_dir": tempfile.mkdtemp(prefix="ecg-bench-runs-"),
        "device": args.device,
        "workers": 1,
        "epochs": args.epochs,
        "seed": 42,
    }
    with session(args.device) as dist:
        callback = on_event if dist.is_main else (lambda e: None)
        if args.mode == "supervised":
            cfg = sup_mod.SupervisedConfig(
                **common, batch_size=args.batch_size, label_fraction=args.label_fraction
            )
            sup_mod.train_classifier(cfg, callback, dist=dist)
        else:
            cfg = ssl_mod.SSLConfig(
                **common,
                method="simclr",
                batch_size=args.ssl_batch_size,
                probe_fraction=args.label_fraction,
                hidden_dim=args.hidden_dim,
            )
            ssl_mod.train_ssl(cfg, callback, dist=dist)
        if dist.is_main:
            kept = per_epoch[1:] or per_epoch
            mean = {k: sum(r[k] for r in kept) / len(kept) for k in kept[0] if k != "epoch"}
            mean["epoch"] = sum(r["epoch"] for r in kept) / len(kept)
            mean.update(threads=torch.get_num_threads(), world=dist.world)
            Path(args.out).write_text(json.dumps(mean))


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_config(
    args: argparse.Namespace, mode: str, nproc: int, threads: int, device: str, out: Path
) -> dict | None:
    cmd = [sys.executable]
    if nproc > 1:
        cmd += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    cmd += [str(HERE), "--worker", "--mode", mode, "--device", device, "--out", str(out)]
    for key in (
        "data_root",
        "cache_dir",
        "epochs",
        "batch_size",
        "ssl_batch_size",
        "label_fraction",
        "hidden_dim",
    ):
        cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )
    env["OMP_NUM_THREADS"] = str(threads)  # torchrun workers: cores / N (ecgcli sets it per rank)
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"{mode} x{nproc} {device}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    result = json.loads(out.read_text())
    result["wall"] = time.perf_counter() - t
    return result


def table(rows: list[tuple[str, int, str, dict]]) -> str:
    head = (
        "| training | procs | threads/proc | device | data read | augmentation | fwd+bwd+step "
        "| evaluation | epoch | samples/s |"
    )
    lines = [head, "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for mode, nproc, device, r in rows:
        cells = []
        for k in COLUMNS:
            share = 100 * r[k] / r["epoch"] if r["epoch"] else 0.0
            cells.append("—" if mode == "supervised" and k == "augment" else f"{r[k]:.2f} s ({share:.0f}%)")
        lines.append(
            f"| {mode} | {nproc} | {r['threads']} | {device} | "
            + " | ".join(cells)
            + f" | {r['epoch']:.2f} s | {r['samples_per_s']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-root", type=Path, default=None, help="PTB-XL folder [default: a synthetic one]"
    )
    parser.add_argument("--cache-dir", type=Path, default=REPO / "data" / "cache")
    parser.add_argument("--records", type=int, default=600, help="size of the synthetic set")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64, help="global batch, supervised")
    parser.add_argument("--ssl-batch-size", type=int, default=128, help="global batch, SimCLR")
    parser.add_argument("--hidden-dim", type=int, default=512, help="SimCLR projection hidden size")
    parser.add_argument("--label-fraction", type=float, default=1.0)
    parser.add_argument("--nprocs", default="1,2", help="process counts, comma-separated")
    parser.add_argument("--modes", default="supervised,simclr")
    parser.add_argument("--device", default=None, help="cpu or cuda [default: cpu, and cuda if available]")
    # internal: one configuration
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="supervised", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    import torch

    if args.data_root is None:
        args.data_root = REPO / "data" / f"bench-synth-{args.records}"
        if not (args.data_root / "ptbxl_database.csv").is_file():
            from ecgcli.data.synth import write_synthetic_ptbxl

            print(
                f"writing a synthetic PTB-XL of {args.records} records to {args.data_root}", file=sys.stderr
            )
            write_synthetic_ptbxl(args.data_root, args.records, seed=1)
    devices = [args.device] if args.device else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    nprocs = [int(n) for n in args.nprocs.split(",")]
    cores = cpu_cores()
    # each process count at cores / N threads, and one process at the threads of the largest N
    # (same threads per process: what the extra processes add, apart from the extra threads)
    layouts = [(n, max(1, cores // n)) for n in nprocs]
    same = (1, max(1, cores // max(nprocs)))
    if 1 in nprocs and same not in layouts:
        layouts.insert(1, same)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for device in devices:
            for mode in args.modes.split(","):
                for nproc, threads in layouts:
                    if device == "cuda" and nproc > torch.cuda.device_count():
                        continue
                    out = Path(tmp) / f"{mode}-{nproc}-{threads}-{device}.json"
                    print(f"{mode}, {nproc} x {threads} thread(s), {device} ...", file=sys.stderr, flush=True)
                    result = run_config(args, mode, nproc, threads, device, out)
                    if result is not None:
                        rows.append((mode, nproc, device, result))
    print(table(rows))
    print(
        f"\nseconds per epoch (mean of epochs 2-{args.epochs}), share of the epoch in brackets; "
        f"{cores} CPU cores, torch {torch.__version__}; "
        f"global batch {args.batch_size} (supervised), {args.ssl_batch_size} (SimCLR)"
    )


if __name__ == "__main__":
    main()
