"""Data-path speed: cache build vs sequential wfdb.rdsamp, reopen, random batch, `ecg --help`.

    python benchmarks/data_speed.py --records 5000            # synthetic PTB-XL, made once
    python benchmarks/data_speed.py --data-root data/PTB-XL   # a real PTB-XL folder

Goals (issue: foundation): cache build >= 10x faster than sequential rdsamp; reopening a
built cache of the full dataset <= 2 s; a random batch of 64 <= 5 ms; `ecg --help` <= 0.5 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", type=Path, help="existing PTB-XL folder (else synthetic)")
    parser.add_argument("--records", type=int, default=5000, help="synthetic records to make")
    parser.add_argument("--synth-dir", type=Path, default=Path("data/bench-synth"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--rdsamp-limit",
        type=int,
        default=0,
        help="time rdsamp on this many records and extrapolate (0 = all)",
    )
    args = parser.parse_args()

    import wfdb

    from ecgcli.data.cache import (
        build_cache,
        cache_dir_for,
        ensure_cache,
        open_cache,
        source_fingerprint,
    )
    from ecgcli.data.ptbxl import load_ptbxl
    from ecgcli.data.synth import write_synthetic_ptbxl

    root = args.data_root
    if root is None:
        root = args.synth_dir / f"n{args.records}"
        if not (root / "ptbxl_database.csv").is_file():
            t = time.perf_counter()
            write_synthetic_ptbxl(root, args.records, seed=0, workers=args.workers)
            print(f"made synthetic PTB-XL with {args.records} records in {time.perf_counter() - t:.1f} s")
    ds = load_ptbxl(root)
    n = len(ds)
    rows = []

    limit = args.rdsamp_limit or n
    t = time.perf_counter()
    for stem in ds.record_paths[:limit]:
        wfdb.rdsamp(str(stem))
    rdsamp = (time.perf_counter() - t) * n / limit
    rows.append(
        (
            "sequential wfdb.rdsamp, all records",
            rdsamp,
            "s",
            "" if limit == n else f"extrapolated from {limit}",
        )
    )

    with tempfile.TemporaryDirectory(dir=".") as tmp:
        t = time.perf_counter()
        build_cache(ds, Path(tmp) / "c", workers=args.workers)
        build = time.perf_counter() - t
        rows.append(
            (
                f"cache build, {args.workers} workers",
                build,
                "s",
                f"{rdsamp / build:.1f}x faster than rdsamp",
            )
        )
        t = time.perf_counter()
        build_cache(ds, Path(tmp) / "c1", workers=1)
        rows.append(("cache build, 1 process", time.perf_counter() - t, "s", ""))

        cache_root = Path(tmp) / "root"
        ensure_cache(ds, cache_root, workers=args.workers)
        path = cache_dir_for(cache_root, ds.root, ds.sampling_rate)
        code = (
            "import time; t=time.perf_counter(); from pathlib import Path;"
            "from ecgcli.data.ptbxl import load_ptbxl; from ecgcli.data.cache import ensure_cache;"
            f"ds=load_ptbxl(Path({str(root)!r})); t1=time.perf_counter();"
            f"s=ensure_cache(ds, Path({str(cache_root)!r})); t2=time.perf_counter();"
            "print(t1-t, t2-t1)"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        tables, reopen = map(float, out.stdout.split())
        rows.append(
            (
                "reopen cache in a new process (fingerprint + memmap)",
                reopen,
                "s",
                f"tables parsed in {tables:.2f} s",
            )
        )
        fp = source_fingerprint(ds)
        t = time.perf_counter()
        store = open_cache(path, fp)
        rows.append(("open_cache alone", time.perf_counter() - t, "s", ""))
        rng = np.random.default_rng(0)
        times = []
        for _ in range(300):
            idx = rng.choice(n, 64, replace=False)
            t = time.perf_counter()
            store.get(idx)
            times.append(time.perf_counter() - t)
        rows.append(
            (
                "random batch of 64 (mV float32)",
                statistics.median(times) * 1000,
                "ms",
                f"p95 {np.percentile(times, 95) * 1000:.2f} ms",
            )
        )
        del store

    exe = shutil.which("ecg")
    cmd = [exe, "--help"] if exe else [sys.executable, "-m", "ecgcli", "--help"]
    times = []
    for _ in range(7):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    rows.append(("`ecg --help` wall time", statistics.median(times), "s", "median of 7"))

    print(f"\ndata-path benchmark on {root} ({n} records, {ds.sampling_rate} Hz, {os.cpu_count()} cores)")
    print(f"{'measurement':55s} {'value':>10s}  notes")
    for name, value, unit, note in rows:
        print(f"{name:55s} {value:8.3f} {unit:2s}  {note}")


if __name__ == "__main__":
    main()
