"""The resume state of a run: weights, optimiser, best copy and progress after the last
completed epoch, saved by rank 0 after every epoch and read back by ``--resume``.

Safetensors for the tensors and a JSON sidecar for the rest; loading never unpickles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ecgcli.errors import CheckpointError
from ecgcli.storage.checkpoint import flatten_state, save_tensors, unflatten_state


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


def save_resume_state(
    path: Path,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: FitState,
    config: dict[str, Any],
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in module.state_dict().items()}
    if state.best_state is not None:
        tensors.update({f"best.{k}": v for k, v in state.best_state.items()})
    optim_skeleton = flatten_state(optimizer.state_dict(), "optim", tensors)
    meta = {
        "format": "ecgcli-resume",
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
    save_tensors(path, tensors, meta)


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
        raise CheckpointError(f"{path}: resume state does not fit this run ({exc})") from None


def read_resume_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and metadata of a resume state, checked; never unpickles."""
    import json

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    side = Path(path).with_suffix(".json")
    if not Path(path).is_file() or not side.is_file():
        raise CheckpointError(f"{path}: no resume state (no epoch was completed)")
    try:
        meta = json.loads(side.read_text())
        tensors = load_file(str(path))
    except (OSError, ValueError, SafetensorError) as exc:
        raise CheckpointError(f"{path}: resume state is corrupt ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != "ecgcli-resume":
        raise CheckpointError(f"{path}: not an ecgcli resume state")
    return tensors, meta
