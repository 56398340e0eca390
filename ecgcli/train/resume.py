"""The resume state of a run: weights, optimiser, best copy and progress after the last
completed epoch, saved by rank 0 after every epoch and read back by ``--resume``.

One safetensors file, its JSON progress in the header (:func:`~ecgcli.storage.checkpoint.save_bundle`),
replaced by one rename: a kill at any moment leaves either the previous epoch's state or the
new one, never one epoch's weights with another's progress (issue 17 A: with a separate
``last.json`` replaced after the weights, a kill between the two renames resumed silently to
different numbers). Loading never unpickles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ecgcli.errors import CheckpointError
from ecgcli.storage.checkpoint import flatten_state, load_bundle, save_bundle, unflatten_state

RESUME_FORMAT = "ecgcli-resume"
RESUME_VERSION = 2  # 2: one file (tensors + JSON header); 1: safetensors + last.json sidecar


@dataclass
class FitState:
    """Progress of a run; saved with the weights after every epoch."""

    epoch: int = 0  # epochs completed
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_value: float | None = None
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0
    seconds: float = 0.0
    stopped_early: bool = False
    #: ``seconds`` when this process resumed the run (not saved): the earlier sessions' share
    #: of a run's wall time, which this process's clock does not see
    resumed_seconds: float = 0.0


def save_resume_state(
    path: Path,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: FitState,
    config: dict[str, Any],
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """Write the resume state as *one* file by one rename (see the module docstring)."""
    tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in module.state_dict().items()}
    if state.best_state is not None:
        tensors.update({f"best.{k}": v for k, v in state.best_state.items()})
    optim_skeleton = flatten_state(optimizer.state_dict(), "optim", tensors)
    meta = {
        "format": RESUME_FORMAT,
        "format_version": RESUME_VERSION,
        "epoch": state.epoch,
        "history": state.history,
        "best_epoch": state.best_epoch,
        "best_value": state.best_value,
        "bad_epochs": state.bad_epochs,
        "seconds": state.seconds,
        "stopped_early": state.stopped_early,
        "has_best": state.best_state is not None,
        "optimizer": optim_skeleton,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "config": config,
    }
    save_bundle(path, tensors, meta)
    Path(path).with_suffix(".json").unlink(missing_ok=True)  # a version-1 sidecar, now stale


def load_resume_state(
    path: Path,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None = None,
) -> FitState:
    """Restore weights, optimiser and progress saved by :func:`save_resume_state`."""
    tensors, meta = read_resume_state(path)
    model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        module.load_state_dict(model, strict=True)
        optimizer.load_state_dict(unflatten_state(meta["optimizer"], tensors))
        if scaler is not None and meta.get("scaler"):
            scaler.load_state_dict(meta["scaler"])
        best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} if meta["has_best"] else None
        return FitState(
            epoch=int(meta["epoch"]),
            history=list(meta["history"]),
            best_epoch=int(meta["best_epoch"]),
            best_value=meta["best_value"],
            best_state=best,
            bad_epochs=int(meta["bad_epochs"]),
            seconds=float(meta["seconds"]),
            stopped_early=bool(meta["stopped_early"]),
        )
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        detail = " ".join(str(exc).split())  # torch's is several lines, one per key
        detail = detail if len(detail) <= 160 else detail[:157] + "..."
        raise CheckpointError(f"{path}: resume state does not fit this run ({detail})") from None


def read_resume_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and metadata of a resume state, checked; never unpickles.

    A version-1 state (weights and ``last.json`` replaced one after the other) is read only
    when its sidecar is not older than its weights: a kill between the two renames leaves
    epoch-N weights with epoch-(N-1) progress, which would resume to different numbers.
    """
    import json

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no resume state (no epoch was completed)")
    bundle = load_bundle(path)
    if bundle is None:
        side = path.with_suffix(".json")
        if not side.is_file():
            raise CheckpointError(f"{path}: resume state is corrupt (no metadata)")
        if side.stat().st_mtime_ns < path.stat().st_mtime_ns:
            raise CheckpointError(
                f"{path}: its weights are newer than {side.name} (a save was interrupted between "
                "the two files), so the run cannot be resumed exactly; start it again"
            )
        try:
            bundle = load_file(str(path)), json.loads(side.read_text())
        except (OSError, ValueError, SafetensorError) as exc:
            raise CheckpointError(f"{path}: resume state is corrupt ({exc})") from None
    tensors, meta = bundle
    if not isinstance(meta, dict) or meta.get("format") != RESUME_FORMAT:
        raise CheckpointError(f"{path}: not an ecgcli resume state")
    return tensors, meta


def saved_epoch(path: Path | None) -> int | None:
    """The epoch a resume state on disk holds (None when there is none or it is unreadable)."""
    if path is None or not Path(path).is_file():
        return None
    try:
        bundle = load_bundle(path)
    except CheckpointError:
        return None
    return None if bundle is None else int(bundle[1].get("epoch", 0))
