"""Map a function over chunks of records in worker processes, reporting progress as events.

Used by the cache build and by ``verify``: both touch every record once, and reading a record
is cheap enough that per-record task overhead would dominate, so work is sent in chunks.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

from ecgcli.events import Callback, TaskDone, TaskProgress, TaskStarted, ignore

T = TypeVar("T")
CHUNK = 256
PARALLEL_FROM = 1024  # below this many items, starting processes costs more than it saves


def _context() -> multiprocessing.context.BaseContext:
    # fork is cheapest where it is safe; elsewhere spawn (workers are module-level functions)
    return multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")


def map_chunks(
    fn: Callable[..., T],
    items: Sequence[Any],
    *args: Any,
    workers: int = 1,
    task: str = "records",
    description: str = "",
    callback: Callback = ignore,
) -> Iterator[T]:
    """Yield ``fn(start, chunk, *args)`` for consecutive chunks of ``items``, in any order.

    Progress is reported in items (the length of each chunk). An exception in a worker is
    re-raised here after the remaining chunks are cancelled.
    """
    chunks = [(s, list(items[s : s + CHUNK])) for s in range(0, len(items), CHUNK)]
    callback(TaskStarted(task, len(items), description))
    if workers > 1 and len(items) >= PARALLEL_FROM:
        with ProcessPoolExecutor(min(workers, len(chunks)), mp_context=_context()) as pool:
            futures = {pool.submit(fn, s, c, *args): len(c) for s, c in chunks}
            try:
                for fut in as_completed(futures):
                    result = fut.result()
                    callback(TaskProgress(task, futures[fut]))
                    yield result
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    else:
        for s, c in chunks:
            result = fn(s, c, *args)
            callback(TaskProgress(task, len(c)))
            yield result
    callback(TaskDone(task))
