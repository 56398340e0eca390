"""``ecg ... --nproc N [--nnodes M --node-rank K --rdzv-endpoint HOST:PORT]``: the command again
under torchrun's elastic agent, in this process.

One node (``--nnodes 1``, the default) uses a standalone rendezvous. Several nodes use torch's
``c10d`` rendezvous at ``--rdzv-endpoint`` (a host:port every node can reach; node 0 hosts it,
so ``--node-rank 0`` goes on the machine the endpoint names). Every node runs the same command
with its own ``--node-rank``. As with any c10d rendezvous, the global ranks are handed out when
all nodes have joined (ordered by host name), so global rank 0, the process that writes the run
directory, is not necessarily on node 0: its terminal shows the live table and the final report.
The rendezvous id is derived from the endpoint, so that the nodes agree on it without another
option; two jobs at once need two endpoints (ports).

The same run with plain torchrun::

    torchrun --nnodes 2 --node-rank 0 --nproc-per-node 4 --rdzv-backend c10d \\
        --rdzv-endpoint node0:29500 --rdzv-id myrun -m ecgcli train ssl ...
"""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass

from ecgcli.errors import ConfigError, Interrupted, TrainingError
from ecgcli.settings import usable_cores
from ecgcli.train.distributed import check_backend, per_rank_batch, torchrun_env

#: launcher options, taken out of the command the workers run (each takes one value)
LAUNCH_OPTIONS = ("--nproc", "--nnodes", "--node-rank", "--rdzv-endpoint")
_ENDPOINT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9._-]+):(\d{1,5})$")


@dataclass(frozen=True)
class Nodes:
    """Where this node stands among the nodes of one run (``nnodes == 1``: this machine only)."""

    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None

    def check(self) -> None:
        """One clear line per bad combination."""
        if self.nnodes < 1:
            raise ConfigError(f"--nnodes must be at least 1, got {self.nnodes}")
        if self.nnodes == 1:
            if self.node_rank != 0:
                raise ConfigError(
                    f"--node-rank {self.node_rank} needs --nnodes of at least {self.node_rank + 1}"
                )
            return
        if not self.rdzv_endpoint:
            raise ConfigError(
                f"--nnodes {self.nnodes} needs --rdzv-endpoint HOST:PORT (an address of node 0 that every "
                "node can reach, where the nodes meet)"
            )
        m = _ENDPOINT.match(self.rdzv_endpoint)
        if m is None or not 0 < int(m.group(2)) < 65536:
            raise ConfigError(
                f"--rdzv-endpoint must be HOST:PORT (e.g. node0:29500), got {self.rdzv_endpoint!r}"
            )
        if not 0 <= self.node_rank < self.nnodes:
            raise ConfigError(f"--node-rank must be between 0 and {self.nnodes - 1}, got {self.node_rank}")

    @property
    def rdzv_id(self) -> str:
        return "ecgcli-" + re.sub(r"[^A-Za-z0-9]", "-", str(self.rdzv_endpoint))


def strip_launch_options(argv: list[str]) -> list[str]:
    """``argv`` without the launcher's options (``--nproc N``, ``--nnodes=M``, ...)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in LAUNCH_OPTIONS:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in LAUNCH_OPTIONS)):
            out.append(arg)
    return out


def torchrun_args(nproc: int, nodes: Nodes, argv: list[str]) -> list[str]:
    """torchrun's command line for ``nproc`` workers per node running ``argv`` (``sys.argv``)."""
    if nodes.nnodes == 1:
        where = ["--standalone"]
    else:
        where = [
            f"--nnodes={nodes.nnodes}",
            f"--node-rank={nodes.node_rank}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={nodes.rdzv_endpoint}",
            f"--rdzv-id={nodes.rdzv_id}",
            # node 0 serves the rendezvous store; the others only connect to it (two "nodes" on
            # one machine would otherwise both try to serve it)
            f"--rdzv-conf=is_host={str(nodes.node_rank == 0).lower()}",
        ]
    return [
        *where,
        f"--nproc-per-node={nproc}",
        "--max-restarts=0",
        "-m",
        "ecgcli",
        *strip_launch_options(argv[1:]),
    ]


def launch(
    nproc: int,
    device_name: str,
    argv: list[str],
    batch_size: int | None = None,
    nodes: Nodes | None = None,
) -> int:
    """Run the command ``argv`` (``sys.argv``) again under torchrun with ``nproc`` workers on
    this node (and ``nodes.nnodes`` nodes in all).

    The elastic agent runs in this process; the workers share this terminal, so global rank 0
    draws the live table. Returns the exit code: 0, or the first failed rank's (that rank
    printed its own message; a rank killed by a signal gets a :class:`TrainingError` here).
    torchrun stops the other workers as soon as one fails.
    """
    import torch

    from ecgcli.device import pick_device

    nodes = nodes or Nodes()
    nodes.check()
    if torchrun_env() is not None or "TORCHELASTIC_RUN_ID" in os.environ:
        raise ConfigError("--nproc starts torchrun itself; leave it out when running under torchrun")
    device = pick_device(device_name)
    if device.type == "cuda":
        available, what, backend = torch.cuda.device_count(), "CUDA GPU(s) visible", "nccl"
    elif device.type == "cpu":
        available, what, backend = usable_cores(), "CPU cores available", "gloo"
    else:
        raise ConfigError(
            f"--nproc needs CUDA (nccl) or the CPU (gloo); {device.type} cannot train distributed"
        )
    if nproc > available:
        raise ConfigError(f"--nproc {nproc} is more than the {available} {what}")
    check_backend(backend)
    if batch_size is not None:
        per_rank_batch(batch_size, nproc * nodes.nnodes)
    if not any(a == "--nproc" or a.startswith("--nproc=") for a in argv) and nodes.nnodes == 1:
        raise ConfigError("--nproc must be given on the command line (it relaunches that command)")

    import logging

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    for name in list(logging.Logger.manager.loggerDict):  # each has its own level: set them all
        if name.startswith(
            ("torch.distributed.run", "torch.distributed.elastic", "torch.distributed.launcher")
        ):
            logging.getLogger(name).setLevel(logging.CRITICAL)  # we report failures ourselves
    if device.type == "cpu":
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, available // nproc)))
    args = get_args_parser().parse_args(torchrun_args(nproc, nodes, argv))
    world = nproc * nodes.nnodes
    try:
        run(args)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        if failure.exitcode > 0:
            return failure.exitcode
        raise TrainingError(
            f"rank {rank} of {world} was stopped by {failure.signal_name()}; the run ended"
        ) from None
    except SignalException as exc:  # the workers were stopped with us
        if exc.sigval in (signal.SIGINT, signal.SIGTERM):
            # the signal reached the workers too (a terminal or scheduler signals them all, and
            # torchrun forwards one it gets): rank 0 printed which epoch is saved and how to
            # resume; 130 or 143, as a single process exits
            return 128 + int(exc.sigval)
        raise Interrupted(
            f"stopped by {exc.sigval.name}; a run with a completed epoch continues with --resume RUN_DIR",
            exit_code=128 + int(exc.sigval),
        ) from None
    except Exception as exc:  # the rendezvous: a node that never came, an unreachable endpoint
        if type(exc).__name__.startswith("Rendezvous"):
            raise TrainingError(
                f"the nodes did not meet at {nodes.rdzv_endpoint}: {type(exc).__name__}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}".rstrip(": ")
            ) from None
        raise
    return 0
