"""Progress events: the core reports what it is doing through these, never by printing.

A callback of type :data:`Callback` receives them. The CLI renders them with rich, tests
collect them in a list, and a distributed run forwards only rank 0's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """Base class of every event."""


@dataclass(frozen=True)
class TaskStarted(Event):
    """A long step with a known amount of work (``total`` units) begins."""

    task: str
    total: int
    description: str = ""


@dataclass(frozen=True)
class TaskProgress(Event):
    """``advance`` more units of ``task`` are done."""

    task: str
    advance: int = 1
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskDone(Event):
    """``task`` finished."""

    task: str


@dataclass(frozen=True)
class Message(Event):
    """A one-line note for the user (``level`` is ``info`` or ``warning``)."""

    text: str
    level: str = "info"


Callback = Callable[[Event], None]


def ignore(_event: Event) -> None:
    """The default callback: drop every event."""


# --- training ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EpochStarted(Event):
    """An epoch of ``n_batches`` batches begins (epochs count from 1)."""

    epoch: int
    epochs: int
    n_batches: int


@dataclass(frozen=True)
class BatchDone(Event):
    """One optimiser step finished; ``samples_per_s`` is the epoch's running throughput."""

    epoch: int
    batch: int
    n_batches: int
    loss: float
    samples_per_s: float


@dataclass(frozen=True)
class EpochDone(Event):
    """An epoch and its validation finished. ``metrics`` may be empty (no probe this epoch)."""

    epoch: int
    epochs: int
    train_loss: float
    metrics: dict[str, float]
    best: bool
    seconds: float
    lr: float
    samples_per_s: float


@dataclass(frozen=True)
class RunDone(Event):
    """Training finished (or stopped early); evaluation follows."""

    best_epoch: int
    best_value: float | None
    epochs_run: int
    seconds: float
    stopped_early: bool
