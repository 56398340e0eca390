"""Speed of the synthetic PTB-XL generator: the tables, then simulating each record (no writing).

    python benchmarks/synth_speed.py --records 400

Writing WFDB files (``ecg data synth``) adds disk time on top; this isolates the simulator so
changes to :mod:`ecgcli.data.ecgsim` and :mod:`ecgcli.data.synth_labels` can be compared.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()

    from ecgcli.data import ecgsim, synth

    t = time.perf_counter()
    db, codes, rates = synth.make_database(args.records, args.seed)
    tables = time.perf_counter() - t
    stadium = db["infarction_stadium1"].fillna("").tolist()
    best = np.inf
    for _ in range(args.repeats):
        t = time.perf_counter()
        for i in range(args.records):
            rng = np.random.default_rng([args.seed, 1, i + 1])
            beat = synth._record_beat(rng, codes[i], stadium[i], rates[i])
            ecgsim.simulate(beat, 100, 1000, rng)
        best = min(best, time.perf_counter() - t)
    print(f"tables: {tables:.2f} s for {args.records} records")
    print(f"simulation at 100 Hz: {1000 * best / args.records:.2f} ms per record (best of {args.repeats})")


if __name__ == "__main__":
    main()
