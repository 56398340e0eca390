"""Data-parallel training over several processes: ``torchrun``, or ``ecg ... --nproc N``.

Every trainer takes a :class:`Distributed` context; one process is ``world == 1`` and every
method is then a no-op that changes no number. Under ``torchrun`` (``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK`` in the environment) :func:`session` joins the process group: ``nccl`` and
``cuda:LOCAL_RANK`` on CUDA, ``gloo`` on the CPU.

The rules every trainer follows:

- ``--batch-size`` is the *global* batch: each of the ``world`` processes trains on
  ``batch_size / world`` records per step (:func:`per_rank_batch`; it must divide), the
  learning rate is unchanged, and ``DistributedDataParallel`` averages the gradients, so a
  step sees the same number of records as a one-process step.
- Every rank computes the same epoch order (a pure function of seed and epoch) and takes its
  own disjoint shard (:func:`ecgcli.data.loader.shard_order`), truncated so that every rank
  has the same number of batches (unequal counts would deadlock the all-reduce).
- Random crops, augmentations and the loop's torch seed use one stream per rank
  (:func:`ecgcli.train.seeds.rank_stream`); rank 0's streams are the one-process ones.
- Validation and test predictions are computed on a contiguous slice of the rows per rank and
  gathered in row order (:meth:`Distributed.predict_rows`); metrics are computed on rank 0 and
  broadcast, so model selection and early stopping take the same decision on every rank.
- Only rank 0 writes: run directory, config, resume state, checkpoints, logs, and the live
  table (the other ranks get no callback). Rank 0 creates the run directory and broadcasts it.
- Several nodes (``torchrun --nnodes``, ``ecg ... --nnodes``; see :mod:`ecgcli.train.launch`):
  the local rank (GPU index, threads per process) is never taken for the global rank, and no
  rank reads a file only rank 0 wrote. The signal cache is built by the first process of every
  node (:meth:`Distributed.local_first`; on a shared filesystem a file lock lets one node build
  it and the others reuse it), and a file some node lacks (the run directory's resume state and
  configuration, an ``--ssl-checkpoint``) is sent to it by the lowest rank that has it
  (:meth:`Distributed.share_files`). The dataset itself must be present on every node.
- BatchNorm: per-rank statistics for the supervised classifier (the usual DDP setting);
  ``SyncBatchNorm`` for SimCLR and BYOL on CUDA, where the whole global batch should
  normalise together. ``SyncBatchNorm`` does not run on CPU tensors (torch raises), so on CPU
  BatchNorm is per rank. Running statistics are broadcast from rank 0 before every validation,
  so all ranks evaluate, select and save the same model.

Failures: collectives time out after :data:`COLLECTIVE_TIMEOUT_S` (a dead or stuck peer cannot
hang a rank forever), torchrun stops the other workers as soon as one fails, and errors that
every rank raises identically are printed once, by rank 0.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from ecgcli.device import pick_device
from ecgcli.errors import ConfigError, EcgError, Interrupted, TrainingError
from ecgcli.settings import usable_cores
from ecgcli.train.seeds import rank_stream

T = TypeVar("T")

#: gradient all-reduce, gathers: all ranks are in step, so a silent peer is a dead one
COLLECTIVE_TIMEOUT_S = 120
#: waits while rank 0 alone works: building the signal cache, the linear probe, writing files
SETUP_TIMEOUT_S = 3600
#: tests only: ``"RANK:EPOCH:BATCH"`` makes that rank raise before that batch
FAIL_ENV = "ECG_TEST_FAIL"


def torchrun_env() -> tuple[int, int, int, int] | None:
    """``(rank, world, local_rank, local_world)`` when launched by torchrun with more than one
    process; ``local_world`` is the number of processes on this node (``LOCAL_WORLD_SIZE``)."""
    if "WORLD_SIZE" not in os.environ:
        return None
    try:
        world = int(os.environ["WORLD_SIZE"])
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    except ValueError:
        raise ConfigError(
            "WORLD_SIZE, RANK, LOCAL_RANK and LOCAL_WORLD_SIZE must be integers (set by torchrun)"
        ) from None
    return None if world <= 1 else (rank, world, local, local_world)


def threads_per_process(local_world: int) -> int:
    """Torch threads of one of the ``local_world`` processes of this node: they share its cores
    (2 ranks on 2 cores: 1 thread each), and an explicit ``OMP_NUM_THREADS`` lowers that."""
    share = max(1, usable_cores() // local_world)
    try:
        return max(1, min(share, int(os.environ.get("OMP_NUM_THREADS") or share)))
    except ValueError:
        return share


def per_rank_batch(global_batch: int, world: int) -> int:
    """Records per process and step for a global ``--batch-size``; it must divide evenly."""
    if world <= 1:
        return global_batch
    if global_batch % world:
        raise ConfigError(
            f"--batch-size {global_batch} is the global batch and must divide evenly over "
            f"{world} processes (try {global_batch - global_batch % world or world * 2})"
        )
    local = global_batch // world
    if local < 2:
        raise ConfigError(
            f"--batch-size {global_batch} over {world} processes leaves {local} record per process; "
            "BatchNorm needs at least 2"
        )
    return local


def check_backend(backend: str) -> None:
    import torch.distributed as td

    if not td.is_available():
        raise ConfigError("this torch build has no torch.distributed: train with one process")
    available = {"gloo": td.is_gloo_available, "nccl": td.is_nccl_available}[backend]()
    if not available:
        where = "CUDA" if backend == "nccl" else "CPU"
        raise ConfigError(f"the {backend} backend ({where} training) is not available in this torch build")


def all_ranks(exc: EcgError) -> EcgError:
    """Mark an error every rank raises identically: only rank 0 prints it."""
    exc.all_ranks = True
    return exc


@dataclass
class Distributed:
    """Where this process stands in a data-parallel run (``world == 1``: a plain run)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None
    group: Any = None  # gloo group with a long timeout, for Python objects and rank-0 waits
    fail_at: tuple[int, int, int] | None = None
    local_world: int | None = None  # processes on this node (None: all of them, one node)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    # --- data ------------------------------------------------------------------------------

    def shard(self, order: T) -> T:
        from ecgcli.data.loader import shard_order

        return shard_order(order, self.rank, self.world)

    def shard_size(self, n: int) -> int:
        return n // self.world

    def stream(self, stream: int) -> int:

        return rank_stream(stream, self.rank)

    # --- collectives -------------------------------------------------------------------------

    def mean(self, value: torch.Tensor) -> float:
        """The mean of a scalar over ranks (the loss every rank reports and checks)."""
        if not self.active:
            return float(value)
        import torch.distributed as td

        t = value.detach().double().reshape(1).clone()
        td.all_reduce(t)
        return float(t) / self.world

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank (any picklable object)."""
        if not self.active:
            return obj
        import torch.distributed as td

        box = [obj if self.is_main else None]
        td.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as td

            td.barrier(group=self.group)

    def on_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` on rank 0 only, its result (or its error) on every rank."""
        if not self.active:
            return fn()
        if not self.is_main:
            status, payload = self.broadcast(None)
            if status == "error":
                raise all_ranks(payload)
            return payload
        try:
            result = fn()
        except EcgError as exc:
            self.broadcast(("error", exc))
            raise all_ranks(exc) from None
        except BaseException as exc:
            self.broadcast(("error", TrainingError(f"rank 0 failed: {type(exc).__name__}: {exc}")))
            raise
        self.broadcast(("ok", result))
        return result

    def main_first(self, fn: Callable[[], T]) -> T:
        """``fn()`` on rank 0, then on the others (a cache rank 0 builds, the others reuse).

        An error on rank 0 is raised on every rank, so nothing waits for it."""
        if not self.active:
            return fn()
        if self.is_main:
            box: list[T] = []
            self.on_main(lambda: box.append(fn()))
            return box[0]
        self.on_main(_none)  # rank 0's error, if it had one, is raised here
        return fn()

    def local_first(self, fn: Callable[[], T]) -> T:
        """``fn()`` on the first process of every node, then on the others of that node.

        For work whose result is a file on the node (the signal cache): no node relies on
        rank 0's disk. An error of any node's first process is raised on every rank."""
        if not self.active:
            return fn()
        import torch.distributed as td

        status: tuple[str, Any] = ("ok", None)
        result: list[T] = []
        if self.local_rank == 0:
            try:
                result.append(fn())
            except EcgError as exc:
                status = ("error", exc)
            except BaseException as exc:
                status = ("error", TrainingError(f"rank {self.rank} failed: {type(exc).__name__}: {exc}"))
        statuses: list[Any] = [None] * self.world
        td.all_gather_object(statuses, status, group=self.group)
        failed = next((payload for kind, payload in statuses if kind == "error"), None)
        if failed is not None:
            raise all_ranks(failed)
        return result[0] if result else fn()

    def share_files(self, paths: list[Path]) -> None:
        """Every rank that lacks one of ``paths`` receives it from the lowest rank that has it.

        Nodes without a shared filesystem: a file rank 0 wrote (a run's resume state) or one
        the user copied to one node only (a checkpoint) is then readable on every node. A file
        no rank has is left to the usual error of whoever opens it."""
        if not self.active:
            return
        import torch.distributed as td

        from ecgcli.files import atomic_write_bytes

        have = [Path(p).is_file() for p in paths]
        table: list[Any] = [None] * self.world
        td.all_gather_object(table, have, group=self.group)
        for i, path in enumerate(paths):
            holders = [r for r in range(self.world) if table[r][i]]
            if not holders or len(holders) == self.world:
                continue
            box = [Path(path).read_bytes() if self.rank == holders[0] else None]
            td.broadcast_object_list(box, src=holders[0], group=self.group)
            if not have[i]:
                atomic_write_bytes(Path(path), box[0])

    def predict_rows(self, fn: Callable[[torch.Tensor], np.ndarray], x: torch.Tensor) -> np.ndarray:
        """``fn(x)`` computed on a contiguous slice of the rows per rank, gathered in row order."""
        if not self.active:
            return fn(x)
        import torch.distributed as td

        bounds = np.linspace(0, len(x), self.world + 1).astype(int)
        lo, hi = bounds[self.rank], bounds[self.rank + 1]
        local = fn(x[lo:hi]) if hi > lo else None
        parts: list[Any] = [None] * self.world
        td.all_gather_object(parts, local, group=self.group)
        kept = [p for p in parts if p is not None]
        return np.concatenate(kept) if kept else fn(x)

    def sync_buffers(self, module: nn.Module) -> None:
        """Rank 0's buffers (BatchNorm running statistics) on every rank."""
        if not self.active:
            return
        import torch.distributed as td

        for buf in module.buffers():
            td.broadcast(buf, src=0)

    def gather(self, z: torch.Tensor) -> tuple[torch.Tensor, int]:
        """SimCLR's ``gather`` hook: every rank's rows, gradients kept, and this rank's offset.

        The gradient-preserving all-gather sums the gradients of the gathered copies
        back onto their owners in backward, so each rank's gradient is that of the sum of all
        ranks' losses with respect to its own rows; DDP's averaging then gives exactly the
        gradient of the global batch's NT-Xent. All ranks hold the same number of rows
        (:func:`~ecgcli.data.loader.shard_order` guarantees it)."""
        import torch.distributed as td

        offset = self.rank * z.shape[0]
        try:
            from torch.distributed._functional_collectives import all_gather_single_autograd
        except ImportError:  # older torch: the same, deprecated since
            from torch.distributed.nn.functional import all_gather

            return torch.cat(all_gather(z)), offset
        return all_gather_single_autograd(z.contiguous(), 0, td.group.WORLD), offset

    # --- modules ------------------------------------------------------------------------------

    def wrap(self, module: nn.Module, *, sync_bn: bool = False) -> nn.Module:
        """``module`` in ``DistributedDataParallel`` (``module`` itself in a plain run).

        Only parameters that require a gradient take part (a frozen encoder is left out).
        ``sync_bn`` converts BatchNorm to ``SyncBatchNorm`` on CUDA; the parameters stay the
        same objects, so an optimiser built before still holds them."""
        if not self.active:
            return module
        from torch.nn.parallel import DistributedDataParallel

        if sync_bn and self.device.type == "cuda":
            module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        self.barrier()  # ranks load data at their own pace; DDP's first broadcast must not time out
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, output_device=ids[0] if ids else None)

    def batchnorm(self, sync_bn: bool) -> str:
        if not self.active:
            return "single process"
        return "synchronized" if sync_bn and self.device.type == "cuda" else "per rank"

    def info(self, global_batch: int, sync_bn: bool = False) -> dict[str, Any]:
        """What config.json and metrics.json record about the processes."""
        return {
            "world_size": self.world,
            "global_batch_size": global_batch,
            "per_rank_batch_size": per_rank_batch(global_batch, self.world),
            "backend": self.backend,
            "batchnorm": self.batchnorm(sync_bn),
        }

    # --- tests ---------------------------------------------------------------------------------

    def fault_point(self, epoch: int, batch: int) -> None:
        """Raise where ``ECG_TEST_FAIL`` says (tests of a failing rank; never set otherwise)."""
        if self.fail_at is not None and self.fail_at == (self.rank, epoch, batch):
            raise RuntimeError(f"injected failure on rank {self.rank} ({FAIL_ENV})")


def _none() -> None:
    return None


def _fail_at() -> tuple[int, int, int] | None:
    spec = os.environ.get(FAIL_ENV)
    if not spec:
        return None
    rank, epoch, batch = (int(v) for v in spec.split(":"))
    return rank, epoch, batch


def setup(device_name: str) -> Distributed:
    """The context of this process: joins the process group under torchrun."""

    env = torchrun_env()
    if env is None:
        return Distributed(device=pick_device(device_name))
    try:
        return _join(device_name, *env)
    except EcgError as exc:
        if env[0] != 0 and not str(exc).startswith("rank "):
            exc.quiet = True  # the same line as rank 0's
        raise


def _join(device_name: str, rank: int, world: int, local: int, local_world: int) -> Distributed:

    device = pick_device(device_name)
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ConfigError(
                f"rank {rank}: local rank {local} but only {torch.cuda.device_count()} CUDA GPU(s) "
                "are visible (start at most that many processes per node)"
            )
        backend, device = "nccl", torch.device("cuda", local)
        torch.cuda.set_device(device)
    elif device.type == "cpu":
        backend = "gloo"
        torch.set_num_threads(threads_per_process(local_world))
    else:
        raise ConfigError(f"distributed training runs on CUDA (nccl) or the CPU (gloo), not on {device.type}")
    check_backend(backend)
    import torch.distributed as td

    try:
        td.init_process_group(backend, timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S))
        group = td.new_group(backend="gloo", timeout=timedelta(seconds=SETUP_TIMEOUT_S))
    except (RuntimeError, ValueError) as exc:
        raise TrainingError(f"rank {rank}: could not join the other processes: {_first_line(exc)}") from None
    return Distributed(rank, world, local, device, backend, group, _fail_at(), local_world)


def _first_line(exc: BaseException) -> str:
    """The gist of a backend error: its first sentence, without the source-file prefix."""
    import re

    lines = str(exc).strip().splitlines()
    text = re.sub(r"^\[[^\]]*\]\s*", "", lines[0]) if lines else type(exc).__name__
    return text.split(". ")[0].rstrip(".")


def peer_error(exc: BaseException, rank: int) -> TrainingError | None:
    """A collective that failed because another rank died or went silent, as one line."""
    import torch.distributed as td

    text = str(exc)
    if not isinstance(exc, td.DistError) and not (
        isinstance(exc, RuntimeError) and any(k in text for k in ("Gloo", "gloo", "NCCL", "Connection"))
    ):
        return None
    if "timed out" in text.lower() or "timeout" in text.lower():
        why = "no answer from another process in time (it may be stuck)"
    else:
        why = "lost contact with another process (it failed or was stopped)"
    return TrainingError(f"rank {rank}: {why}: {_first_line(exc)}")


@contextmanager
def session(device_name: str) -> Iterator[Distributed]:
    """``with session(device) as dist:`` one training command's process context.

    Leaves the process group at the end. Errors leaving a distributed run are made one line:
    a lost peer becomes a :class:`TrainingError`; an :class:`EcgError` raised by a rank other
    than 0 is prefixed with its rank, or marked ``quiet`` when every rank raised it (rank 0
    prints it). Ctrl-C or SIGTERM reaching a rank other than 0 (a terminal or scheduler signals
    every process; torchrun forwards a signal to all its workers) is a quiet
    :class:`Interrupted`: rank 0 says which epoch is saved and how to resume.
    """
    dist = setup(device_name)
    try:
        yield dist
    except KeyboardInterrupt:
        if dist.active and not dist.is_main:
            raise Interrupted("interrupted", all_ranks=True, quiet=True) from None
        raise
    except EcgError as exc:
        if dist.active and not dist.is_main:
            if exc.all_ranks:
                exc.quiet = True
            else:
                exc.args = (f"rank {dist.rank}: {exc}",)
        raise
    except Exception as exc:
        lost = peer_error(exc, dist.rank) if dist.active else None
        if lost is None:
            raise
        raise lost from None
    finally:
        if dist.active:
            import torch.distributed as td

            if td.is_initialized():
                td.destroy_process_group()
