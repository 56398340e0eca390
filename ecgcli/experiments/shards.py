"""One grid, many processes: ``ecg multiseed --shard K/N`` and the claims that keep shards apart.

Assignment: the cells are dealt to N shards by expected cost, longest first, each to the
shard with the least cost so far (the LPT rule of Graham, "Bounds on multiprocessing timing
anomalies", SIAM J. Appl. Math. 1969: within 4/3 of the best split). A cell's cost is
``epochs x (label_fraction + 0.05)``: an epoch trains on the labelled records and validates on
fold 9, about a twentieth of folds 1-8 in training-step cost. Ties are broken by the grid's own
order, so every shard computes the same assignment without talking to the others.

Claims: a process trains a cell only while it holds the cell's lock file
``OUT/.claims/<cell>.lock`` (an OS file lock through ``filelock``). The operating system drops
the lock of a process that dies, even by SIGKILL, so a killed shard's cell is simply claimed
by the next process that wants it (the restarted shard, or any rerun) and resumes from its last
saved epoch; a live owner's cell is skipped, never trained twice. ``OUT/.claims/<cell>.owner``
names the holder (host, pid) for messages. ``multiseed.json`` is written under
``OUT/.multiseed.lock``, rebuilt each time from every cell finished on disk, so writers never
lose each other's runs.

File locks on network filesystems: NFSv4 and Lustre/GPFS with locking enabled honour them;
a filesystem mounted without locks (``nolock``) does not, so run shards into a folder on a
filesystem that locks (the usual cluster home and scratch filesystems do).
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecgcli.errors import ConfigError

if TYPE_CHECKING:
    from ecgcli.experiments.grid import Cell, Grid

CLAIMS = ".claims"
RESULTS_LOCK = ".multiseed.lock"
#: validation on fold 9 per epoch, in units of training on all of folds 1-8
VALIDATION_COST = 0.05


@dataclass(frozen=True)
class Shard:
    """The ``index``-th of ``count`` shares of a grid (1-based, as in ``--shard 2/4``)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if m is None:
            raise ConfigError(f"--shard must be K/N (the K-th of N shares, 1 <= K <= N), got {text!r}")
        index, count = int(m.group(1)), int(m.group(2))
        if count < 1:
            raise ConfigError(f"--shard {text.strip()}: N must be at least 1 (the number of shares)")
        if not 1 <= index <= count:
            raise ConfigError(f"--shard {text}: K must be between 1 and N (here 1 to {count}), got {index}")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def cell_cost(grid: Grid, cell: Cell) -> float:
    """Expected training cost of ``cell``, in epochs over all of folds 1-8."""
    epochs = int(grid.config_kwargs(cell.spec).get("epochs", 1 if cell.spec.kind == "features" else 30))
    return epochs * (cell.label_fraction + VALIDATION_COST)


def assign(grid: Grid, count: int) -> list[list[Cell]]:
    """The cells of each of ``count`` shards: balanced by :func:`cell_cost`, deterministic."""
    cells = grid.cells()
    order = sorted(range(len(cells)), key=lambda i: (-cell_cost(grid, cells[i]), i))
    loads = [0.0] * count
    shares: list[list[int]] = [[] for _ in range(count)]
    for i in order:
        k = min(range(count), key=lambda s: (loads[s], s))
        shares[k].append(i)
        loads[k] += cell_cost(grid, cells[i])
    return [[cells[i] for i in sorted(share)] for share in shares]  # each in the grid's order


def shard_cells(grid: Grid, shard: Shard | None) -> list[Cell]:
    return grid.cells() if shard is None else assign(grid, shard.count)[shard.index - 1]


def claim_name(cell: Cell) -> str:
    return f"{cell.spec.slug}-lf{cell.label_fraction:g}-seed{cell.seed}"


def _lock(path: Path) -> Any:
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path), thread_local=False)


@contextmanager
def claim(out: Path, cell: Cell) -> Iterator[str | None]:
    """Hold ``cell``'s claim while the block runs: yields None when this process holds it,
    else the owner (``host pid N``) that does, and the caller leaves the cell alone."""
    from filelock import Timeout

    folder = Path(out) / CLAIMS
    lock = _lock(folder / f"{claim_name(cell)}.lock")
    owner_file = folder / f"{claim_name(cell)}.owner"
    try:
        lock.acquire(timeout=0)
    except Timeout:
        yield _owner(owner_file)
        return
    try:
        from ecgcli.files import write_json_atomic

        write_json_atomic(
            owner_file,
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )
        yield None
    finally:
        lock.release()


def _owner(path: Path) -> str:
    try:
        who = json.loads(path.read_text())
        return f"{who['host']} pid {who['pid']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def results_lock(out: Path) -> Iterator[None]:
    """Serialises reading and writing ``OUT/multiseed.json`` among the processes of a grid."""
    with _lock(Path(out) / RESULTS_LOCK):
        yield
