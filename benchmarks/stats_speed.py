"""Bootstrap CI speed: 1,000 replicates of macro AUROC on a PTB-XL-sized test fold.

python benchmarks/stats_speed.py
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from ecgcli.scoring.stats import bootstrap_auroc_ci


def main() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((2163, 5)) < [0.45, 0.25, 0.24, 0.12, 0.23]).astype(int)
    for label, scores in (
        ("distinct scores", np.clip(0.3 * y + rng.random(y.shape), 0, None)),
        ("scores rounded to 3 decimals (ties)", np.round(0.3 * y + rng.random(y.shape), 3)),
    ):
        times = []
        for _ in range(5):
            t = time.perf_counter()
            ci = bootstrap_auroc_ci(y, scores, n_boot=1000)
            times.append(time.perf_counter() - t)
        print(
            f"{label:40s} 1000 replicates x 2163 records x 5 classes: "
            f"median {statistics.median(times):.3f} s  (AUROC {ci.estimate:.4f} [{ci.ci_low:.4f}, {ci.ci_high:.4f}])"
        )


if __name__ == "__main__":
    main()
