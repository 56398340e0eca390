"""Running a grid (``ecg multiseed``): every unfinished cell, in this process or in a pool.

A cell whose ``metrics.json`` and ``model.safetensors`` exist is finished and is only read,
never retrained; one with a saved epoch but no metrics is resumed (``resume_classifier``); one
that never completed an epoch is started again. ``OUT/multiseed.json`` is rewritten atomically
after every finished cell (see :mod:`ecgcli.experiments.results`), under a lock and from every
cell finished on disk, so several processes may run one grid into one ``OUT``: each cell is
trained only under its claim, and ``shard`` picks this process's share
(:mod:`ecgcli.experiments.shards`).

``jobs=1`` trains the cells one after another in this process, loading the dataset and the
signal cache once (``train_classifier(data=...)``). ``jobs=N>1`` trains N cells at a time in a
spawn-context process pool; each worker uses ``max(1, cores // N)`` torch threads (so two jobs
on two cores do not oversubscribe) and, when CUDA GPUs are visible, its own GPU (round robin
when N exceeds the GPU count). The signal cache is built before the pool starts, so workers
never race to build it; workers send their training events back through a queue.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecgcli.errors import ConfigError, EcgError, Interrupted
from ecgcli.events import BatchDone, Callback, Event, Message, ignore
from ecgcli.experiments.collect import write_configurations
from ecgcli.experiments.grid import Cell, Grid, check_cell_config, check_compatible
from ecgcli.experiments.results import load_results, read_cell, results_path, write_results
from ecgcli.experiments.shards import Shard, claim, results_lock, shard_cells
from ecgcli.files import probe_writable, remove_stale_temporaries
from ecgcli.settings import usable_cores

# --- events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridStarted(Event):
    """A grid of ``total`` cells begins; ``finished`` of them were already done. ``shard``
    (``"K/N"``) is this process's share of ``share`` cells, "" for the whole grid."""

    total: int
    finished: int
    out: str
    jobs: int
    shard: str = ""
    share: int = 0


@dataclass(frozen=True)
class CellStarted(Event):
    """One (configuration, label fraction, seed) cell starts training (or resumes)."""

    key: str
    config: str
    label_fraction: float
    seed: int
    action: str  # "train" or "resume"


@dataclass(frozen=True)
class CellSkipped(Event):
    """A cell of this share is being trained by another live process (``owner``)."""

    key: str
    owner: str


@dataclass(frozen=True)
class CellEvent(Event):
    """A training event (epoch, batch, message) of the cell ``key``."""

    key: str
    event: Event


@dataclass(frozen=True)
class CellDone(Event):
    """A cell finished (``reused``: it was finished before this invocation)."""

    key: str
    config: str
    label_fraction: float
    seed: int
    auroc: float | None
    f1: float | None
    seconds: float
    reused: bool
    finished: int
    total: int


def cell_status(path: Path) -> str:
    """What to do with a cell's run directory (see :meth:`ecgcli.storage.runs.RunDir.status`)."""
    from ecgcli.storage.runs import RunDir

    return RunDir(Path(path)).status()


def train_claimed(
    grid_out: Path, cell: Cell, cfg: Any, callback: Callback, key_callback: Callback, data: Any = None
) -> bool:
    """Train ``cell`` under its claim; False when another live process holds the claim.

    The status is read after claiming: a previous owner that died may have saved epochs (the
    cell resumes) or even finished it."""
    with claim(grid_out, cell) as owner:
        if owner is not None:
            callback(CellSkipped(cell.key, owner))
            return False
        status = cell_status(cell.path(grid_out))
        if status == "finished":
            return True
        callback(CellStarted(cell.key, cell.spec.name, cell.label_fraction, cell.seed, _action(status)))
        train_cell(cfg, key_callback, data)
        return True


def train_cell(cfg: Any, callback: Callback, data: Any = None) -> None:
    """Train (or resume) one unfinished cell; its run directory is ``cfg.run_dir``."""
    from ecgcli.train.run import continue_run
    from ecgcli.train.supervised import resume_classifier, train_classifier

    path = Path(cfg.run_dir)
    if cfg.kind == "features":  # no epochs, nothing to resume: an unfinished one starts again
        from ecgcli.train.features import clear_unfinished, train_features

        clear_unfinished(path)
        continue_run(path, start=lambda: train_features(cfg, callback, data), resume=lambda: None)
        return
    continue_run(
        path,
        start=lambda: train_classifier(cfg, callback, data=data),
        resume=lambda: resume_classifier(path, callback, data=data),
    )


def _shared_data(common: dict[str, Any], callback: Callback) -> tuple[Any, Any]:
    """The dataset tables and the signal cache, loaded (or built) once."""
    from ecgcli.train.config import SupervisedConfig
    from ecgcli.train.data import load_signals

    return load_signals(SupervisedConfig.from_dict(common), callback)


def resolve_jobs(jobs: int, device: str) -> int:
    """``jobs`` as given, or for 0: one per visible CUDA GPU (1 without GPUs)."""
    if jobs < 0:
        raise ConfigError(f"--jobs must be 0 (one per GPU) or more, got {jobs}")
    if jobs > 0:
        return jobs
    return max(1, _gpu_count(device))


def _gpu_count(device: str) -> int:
    if device not in ("auto", "cuda"):
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_multiseed(
    grid: Grid,
    callback: Callback = ignore,
    jobs: int = 1,
    shard: Shard | None = None,
    train: bool = True,
) -> dict[str, Any]:
    """Run every unfinished cell of ``grid`` (of its ``shard``, if given); returns the
    multiseed.json document. ``train=False`` (``--collect``) only rebuilds multiseed.json from
    the cells finished so far.

    Raises :class:`~ecgcli.errors.Interrupted` on Ctrl-C (or a ``KeyboardInterrupt`` raised by
    ``callback``) after saving what finished: rerunning the same grid continues from there.
    """
    out = grid.out
    probe_writable(out, "--out")
    remove_stale_temporaries(out)  # a multiseed.json write killed half-way
    previous: dict[tuple[str, float, int], dict[str, Any]] = {}
    records: dict[tuple[str, float, int], dict[str, Any]] = {}
    cells = grid.cells()
    with results_lock(out):
        if results_path(out).exists():
            doc = load_results(results_path(out))
            check_compatible(grid, doc, out, exact=shard is not None)
            for res in doc["results"]:
                for run in res.get("runs") or []:
                    previous[(res["config"], float(res["label_fraction"]), int(run["seed"]))] = run
        status = {c: cell_status(c.path(out)) for c in cells}
        for c in cells:
            if status[c] in ("finished", "resume"):
                check_cell_config(grid, c)
        _collect(grid, records, previous)
        write_results(grid, records)
        if train:  # what a later --collect rebuilds the grid from, should multiseed.json go
            write_configurations(grid)
    mine = shard_cells(grid, shard)
    total = len(cells)
    callback(GridStarted(total, len(records), str(out), jobs, str(shard) if shard else "", len(mine)))
    for c in cells:
        rec = records.get((c.spec.name, c.label_fraction, c.seed))
        if rec is not None:
            callback(_done_event(c, rec, 0.0, True, len(records), total))
    todo = [c for c in mine if (c.spec.name, c.label_fraction, c.seed) not in records] if train else []

    def finish(cell: Cell, seconds: float) -> None:
        with results_lock(out):  # also picks up the cells other processes finished meanwhile
            _collect(grid, records, previous)
            write_results(grid, records)
        rec = records[(cell.spec.name, cell.label_fraction, cell.seed)]
        callback(_done_event(cell, rec, seconds, False, len(records), total))

    try:
        if todo and jobs > 1:
            _run_parallel(grid, todo, jobs, callback, finish)
        elif todo:
            _run_serial(grid, todo, callback, finish)
    except KeyboardInterrupt:
        raise Interrupted(_interrupted_message(len(records), total, out)) from None
    except Interrupted:
        raise Interrupted(_interrupted_message(len(records), total, out)) from None
    with results_lock(out):
        _collect(grid, records, previous)
        return write_results(grid, records)


def _collect(
    grid: Grid,
    records: dict[tuple[str, float, int], dict[str, Any]],
    previous: dict[tuple[str, float, int], dict[str, Any]],
) -> None:
    """Add to ``records`` every cell finished on disk that it lacks (a finished run never
    changes, so known records are not read again)."""
    for c in grid.cells():
        key = (c.spec.name, c.label_fraction, c.seed)
        if key not in records and cell_status(c.path(grid.out)) == "finished":
            records[key] = read_cell(c.path(grid.out), grid.out, c.seed, previous.get(key))


def _interrupted_message(done: int, total: int, out: Path) -> str:
    return (
        f"interrupted: {done} of {total} runs finished and saved in {out}; run the same command again "
        "to continue (finished runs are reused, an interrupted one resumes from its last saved epoch)"
    )


def _done_event(
    cell: Cell, rec: dict[str, Any], seconds: float, reused: bool, done: int, total: int
) -> CellDone:
    return CellDone(
        cell.key,
        cell.spec.name,
        cell.label_fraction,
        cell.seed,
        rec["test"]["auroc"],
        rec["test"]["f1"],
        seconds,
        reused,
        done,
        total,
    )


def _run_serial(
    grid: Grid,
    todo: Sequence[Cell],
    callback: Callback,
    finish: Callable[[Cell, float], None],
) -> None:
    from ecgcli.train.data import split_data

    shared = None
    for cell in todo:
        if shared is None:
            shared = _shared_data(grid.common, callback)
        ds, store = shared
        cfg = grid.cell_config(cell)
        # a configuration may train another task ([task=...]) on the same records
        data = split_data(ds.with_task(cfg.task), store, cell.label_fraction, cell.seed)
        t0 = time.perf_counter()
        try:
            done = train_claimed(grid.out, cell, cfg, callback, _wrap(cell.key, callback), data)
        except Interrupted:
            raise
        except EcgError as exc:
            exc.args = (f"{cell.key}: {exc}",)
            raise
        if done:
            finish(cell, time.perf_counter() - t0)


def _action(status: str) -> str:
    return "resume" if status == "resume" else "train"


def _wrap(key: str, callback: Callback) -> Callback:
    def handle(event: Event) -> None:
        callback(CellEvent(key, event))

    return handle


# --- parallel ------------------------------------------------------------------------------
#
# Ctrl-C: workers ignore SIGINT (a terminal sends it to the whole process group); the parent
# catches it, sets the shared stop event and keeps draining the event queue. Each worker's
# callback sees the event at its next batch and raises KeyboardInterrupt inside the training
# loop, which keeps the last completed epoch and raises Interrupted; cells still queued see the
# event before they start. Only then is the pool shut down, so no worker ever blocks on a full
# event pipe. A second Ctrl-C stops waiting and terminates the workers.
#
# SIGTERM reaches the workers too when it is sent to the process group (Slurm's scancel,
# `kill -- -PGID`, `pkill -f`): a worker takes it as the stop event, so it keeps its epoch
# instead of dying. Futures are never cancelled: a queued cell sees the stop event and returns
# at once. (Python 3.11's pool raises InvalidStateError in its manager thread when a worker
# dies while a future is cancelled, and the parent then waits forever.)

_QUEUE: Any = None  # the event queue of a worker process
_STOP: Any = None  # set by the parent to stop every worker at its next batch
_WORKER_DATA: dict[tuple[Any, ...], Any] = {}


def _worker_init(threads: int, queue: Any, stop: Any, gpu_queue: Any) -> None:
    global _QUEUE, _STOP
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides (see above)
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    if gpu_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_queue.get())  # before CUDA starts
    import torch

    torch.set_num_threads(threads)
    _QUEUE, _STOP = queue, stop


def _send(event: Event) -> None:
    import contextlib

    with contextlib.suppress(Exception):  # the parent went away: training goes on
        _QUEUE.put(event)


def _worker_run(task: dict[str, Any]) -> float | None:
    """Train one cell in a worker process (None: another process holds its claim); events go
    back through the queue."""
    from ecgcli.train.config import FeaturesConfig, SupervisedConfig
    from ecgcli.train.data import split_data

    if _STOP.is_set():
        raise Interrupted("stopped before it started")
    kind = task["cell"].spec.kind
    cfg = (FeaturesConfig if kind == "features" else SupervisedConfig).from_dict(task["config"])
    key = task["key"]
    data_key = (cfg.data_root, cfg.cache_dir, cfg.sampling_rate)
    if data_key not in _WORKER_DATA:
        _WORKER_DATA[data_key] = _shared_data(task["config"], ignore)
    ds, store = _WORKER_DATA[data_key]
    data = split_data(ds.with_task(cfg.task), store, cfg.label_fraction, cfg.seed)
    last = [0.0]

    def forward(event: Event) -> None:
        if _STOP.is_set():
            raise KeyboardInterrupt  # inside the loop: becomes Interrupted, last epoch kept
        if isinstance(event, BatchDone) and event.batch != event.n_batches:
            now = time.monotonic()
            if now - last[0] < 0.25:  # at most four batch updates a second per worker
                return
            last[0] = now
        _send(CellEvent(key, event))

    t0 = time.perf_counter()
    if not train_claimed(Path(task["out"]), task["cell"], cfg, _send, forward, data):
        return None
    return time.perf_counter() - t0


def _run_parallel(
    grid: Grid,
    todo: Sequence[Cell],
    jobs: int,
    callback: Callback,
    finish: Callable[[Cell, float], None],
) -> None:
    import multiprocessing as mp
    import queue as queue_mod
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    _shared_data(grid.common, callback)  # build the cache here, once, before any worker needs it
    jobs = min(jobs, len(todo))
    ctx = mp.get_context("spawn")
    events = ctx.Queue()
    stop = ctx.Event()
    gpus = _gpu_count(str(grid.common.get("device", "auto")))
    gpu_queue = None
    if gpus:
        gpu_queue = ctx.Queue()
        for i in range(jobs):
            gpu_queue.put(i % gpus)
    threads = max(1, usable_cores() // jobs)
    callback(
        Message(
            f"{jobs} parallel jobs, {threads} torch thread(s) each" + (f", on {gpus} GPU(s)" if gpus else "")
        )
    )

    def drain() -> None:
        while True:
            try:
                event = events.get_nowait()
            except (queue_mod.Empty, OSError, EOFError, ValueError):
                return
            callback(event)

    pool = ProcessPoolExecutor(
        jobs, mp_context=ctx, initializer=_worker_init, initargs=(threads, events, stop, gpu_queue)
    )
    error: tuple[Cell | None, BaseException] | None = None
    futures = {
        pool.submit(
            _worker_run,
            {
                "key": cell.key,
                "cell": cell,
                "out": str(grid.out),
                "config": grid.cell_config(cell).to_dict(),
            },
        ): cell
        for cell in todo
    }
    pending = set(futures)
    try:
        while pending:
            try:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                drain()
                for future in done:
                    exc = future.exception()
                    if exc is None:
                        if future.result() is not None:  # None: another process holds the claim
                            finish(futures[future], future.result())
                    elif error is None or (
                        isinstance(error[1], Interrupted) and not isinstance(exc, Interrupted)
                    ):
                        error = (futures[future], exc)
                        stop.set()  # running cells stop at their next batch, queued ones never start
            except KeyboardInterrupt:
                if stop.is_set():  # a second Ctrl-C: stop waiting
                    for proc in list(getattr(pool, "_processes", {}).values()):
                        proc.terminate()
                    raise
                stop.set()
                error = error or (None, KeyboardInterrupt())
    finally:
        # shut down while draining: a worker exits only once its queued events are in the pipe
        import threading

        closer = threading.Thread(target=pool.shutdown, kwargs={"wait": True})
        closer.start()
        while closer.is_alive():
            drain()
            closer.join(0.05)
        drain()
        events.close()
    if error is not None:
        cell, exc = error
        if isinstance(exc, (Interrupted, KeyboardInterrupt)):
            raise Interrupted(str(exc))
        if isinstance(exc, EcgError) and cell is not None:
            exc.args = (f"{cell.key}: {exc}",)
        raise exc
