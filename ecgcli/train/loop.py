"""The one training loop every trainer shares (supervised, SSL, fine-tuning).

A trainer supplies an :class:`Objective` (its batches, its loss, what to do after a step, how
to validate); the loop owns everything else: device placement and mixed precision, gradient
clipping, the learning-rate schedule, NaN/inf detection, model selection with a *copy* of the
best weights, early stopping, progress events, and a resume state written atomically after
every completed epoch. Ctrl-C discards the unfinished epoch and raises
:class:`~ecgcli.errors.Interrupted`; ``resume=True`` continues from the saved state.

Determinism: the loop seeds torch with ``(seed, epoch)`` at each epoch start and objectives
derive their shuffles and augmentations from ``(seed, epoch)`` too, so a resumed run sees
exactly the batches an uninterrupted one would and ends with the same numbers on CPU.

Data-parallel runs (``cfg.dist``, see :mod:`ecgcli.train.distributed`): the objective trains
through ``DistributedDataParallel`` on its shard; the loop reports the loss averaged over
ranks (so every rank stops on the same NaN), counts samples over all ranks, gives each rank
its own torch seed stream, broadcasts rank 0's BatchNorm statistics before validating (every
rank then selects and snapshots the same model), and only rank 0 writes the resume state.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from ecgcli.errors import CheckpointError, Interrupted, TrainingError
from ecgcli.events import BatchDone, Callback, EpochDone, EpochStarted, Message, RunDone, ignore
from ecgcli.train.distributed import Distributed, all_ranks
from ecgcli.train.resume import FitState, load_resume_state, save_resume_state, saved_epoch
from ecgcli.train.seeds import epoch_seed

SCHEDULES = ("none", "cosine", "onecycle")
#: One-cycle (Smith & Topin 2019, as fastai's fit_one_cycle that the PTB-XL benchmark trains
#: with): the rate rises on a cosine from lr / 25 to lr over the first 30% of the steps, then
#: falls on a cosine to lr / 25e4.
ONECYCLE_PCT, ONECYCLE_DIV, ONECYCLE_FINAL_DIV = 0.3, 25.0, 25e4


class Objective(Protocol):
    """What a trainer plugs into :func:`fit`."""

    module: nn.Module  # every parameter and buffer the run trains and saves

    def n_batches(self, epoch: int) -> int: ...

    def batches(self, epoch: int) -> Iterator[Any]: ...

    def samples(self, batch: Any) -> int: ...

    def loss(self, batch: Any) -> torch.Tensor: ...

    def after_step(self, step: int, total_steps: int) -> None: ...

    def validate(self, epoch: int) -> dict[str, float]: ...


@dataclass
class LoopConfig:
    epochs: int
    device: torch.device
    seed: int = 0
    select_metric: str | None = "f1"  # key of validate()'s dict; None selects the last epoch
    patience: int | None = None  # counted in validations
    val_every: int = 1  # validate after every k-th epoch and after the last
    grad_clip: float = 0.0
    schedule: str = "none"
    warmup_epochs: int = 0
    amp: bool = True  # False: fp32 whatever ``precision`` says
    precision: str = "auto"  # see ecgcli.train.precision
    dist: Distributed | None = None  # None: one process

    @classmethod
    def from_run(cls, cfg: Any, dist: Distributed) -> LoopConfig:
        """The loop settings of a run's configuration on ``dist``'s device: selection and early
        stopping where the run has them (a classifier's), else the last epoch (pretraining)."""
        return cls(
            epochs=cfg.epochs,
            device=dist.device,
            seed=cfg.seed,
            select_metric=getattr(cfg, "select_metric", None),
            patience=getattr(cfg, "patience", None),
            val_every=getattr(cfg, "val_every", 1),
            grad_clip=cfg.grad_clip,
            schedule=cfg.schedule,
            warmup_epochs=cfg.warmup_epochs,
            precision=cfg.precision,
            dist=dist,
        )


def lr_factor(schedule: str, step: int, total: int, warmup: int) -> float:
    """Multiplier of each parameter group's base learning rate at ``step`` of ``total``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "cosine":
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    if schedule == "onecycle":
        peak = max(1, round(ONECYCLE_PCT * total))
        if step < peak:
            return _cosine_between(1.0 / ONECYCLE_DIV, 1.0, step / peak)
        return _cosine_between(1.0, 1.0 / ONECYCLE_FINAL_DIV, (step - peak) / max(1, total - peak))
    return 1.0


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    """``adam`` (L2 weight decay, the reference study's) or ``adamw`` (decoupled weight decay,
    Loshchilov & Hutter 2019, the PTB-XL benchmark's)."""
    return {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name]


def _cosine_between(start: float, end: float, progress: float) -> float:
    """From ``start`` (progress 0) to ``end`` (progress 1) on half a cosine."""
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached *copy* of the weights (a ``state_dict`` alone would alias the live ones)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def validates(epoch: int, epochs: int, every: int) -> bool:
    """Whether 1-based ``epoch`` of ``epochs`` is validated: every ``every``-th and the last.
    An epoch that is not validated cannot be selected, nor count against ``patience``."""
    return every <= 1 or epoch % every == 0 or epoch == epochs


def _better(value: float, best: float | None) -> bool:
    return best is None or (math.isfinite(value) and value > best)


def selection_warning(
    history: list[dict[str, Any]], best_epoch: int, select_metric: str | None, gap: float = 0.05
) -> str | None:
    """A warning when the selected epoch's fold-9 AUROC trails the run's best by ``gap`` or more.

    Macro F1 at a 0.5 threshold (the reference's selection metric) degenerates when few labels
    push every rare class's probability below 0.5: F1 then only falls after the first epoch, and
    selection keeps a nearly untrained model (seen on real PTB-XL rhythm at 1% of labels: the
    kept epoch 1 had fold-9 AUROC 0.38, epoch 20 had 0.73). The run stays as asked; this says so.
    """
    if select_metric is None or select_metric == "auroc":
        return None
    # NaN: a class without positives; absent: an epoch not validated (--val-every)
    scored = [h for h in history if math.isfinite(h.get("auroc", math.nan))]
    kept = next((h for h in scored if h["epoch"] == best_epoch), None)
    top = max(scored, key=lambda h: h["auroc"], default=None)
    if kept is None or top is None or not math.isfinite(kept["auroc"]) or top["auroc"] - kept["auroc"] < gap:
        return None
    return (
        f"selection by {select_metric} kept epoch {kept['epoch']} (fold-9 AUROC {kept['auroc']:.3f}) "
        f"while epoch {top['epoch']} reached {top['auroc']:.3f}; "
        "with few labels consider --select-metric auroc"
    )


def fit(
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    cfg: LoopConfig,
    *,
    state_path: Path | None = None,
    resume: bool = False,
    run_config: dict[str, Any] | None = None,
    resume_hint: str = "",
    callback: Callback = ignore,
) -> FitState:
    """Train ``objective`` for ``cfg.epochs`` epochs; returns the final :class:`FitState`."""
    module, device = objective.module, cfg.device
    if device.type == "cpu":
        from ecgcli.train.allocator import keep_freed_memory

        keep_freed_memory()
    dist = cfg.dist or Distributed(device=device)
    from ecgcli.train.precision import autocast_dtype

    dtype = autocast_dtype(cfg.precision, device) if cfg.amp else None
    use_amp, amp_dtype = dtype is not None, dtype or torch.float32
    arithmetic = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")  # type: ignore[arg-type]
    scaler = torch.amp.GradScaler(
        "cuda", enabled=use_amp and device.type == "cuda" and amp_dtype == torch.float16
    )
    for group in optimizer.param_groups:
        group.setdefault("base_lr", group["lr"])
    state = FitState()
    if resume:
        if state_path is None:
            raise CheckpointError("nothing to resume from")
        state = load_resume_state(state_path, module, optimizer, scaler)
        state.resumed_seconds = state.seconds
        before = state.history[-1].get("precision") if state.history else None
        if before is not None and before != arithmetic:  # --precision auto on another machine
            callback(
                Message(
                    f"epochs 1-{state.epoch} trained in {before}; this machine trains the rest in "
                    f"{arithmetic} (--precision {cfg.precision}); metrics.json records each epoch's",
                    "warning",
                )
            )
    params = [p for g in optimizer.param_groups for p in g["params"]]
    steps_per_epoch = objective.n_batches(0)
    total_steps = cfg.epochs * steps_per_epoch
    warmup = cfg.warmup_epochs * steps_per_epoch
    t_run = time.perf_counter() - state.seconds
    dist.barrier()  # rank 0 may have worked alone until now (cache, probe); the long-timeout group

    epoch = state.epoch
    try:  # one guard for the whole loop: between two epochs too (issue 31 J)
        for epoch in range(state.epoch, cfg.epochs):
            if state.stopped_early:
                break
            torch.manual_seed(epoch_seed(cfg.seed, epoch, dist.stream(0)))
            t0 = time.perf_counter()
            module.train()
            n_batches = objective.n_batches(epoch)
            loss_sum, seen = 0.0, 0
            callback(EpochStarted(epoch + 1, cfg.epochs, n_batches))
            for b, batch in enumerate(objective.batches(epoch)):
                step = epoch * steps_per_epoch + b
                factor = lr_factor(cfg.schedule, step, total_steps, warmup)
                for group in optimizer.param_groups:
                    group["lr"] = group["base_lr"] * factor
                dist.fault_point(epoch + 1, b + 1)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    loss = objective.loss(batch)
                value = dist.mean(loss.detach())  # float(loss) in one process
                if not math.isfinite(value):
                    raise all_ranks(
                        TrainingError(
                            f"loss became {value} at epoch {epoch + 1}, batch {b + 1}; "
                            "the run stopped (try a lower --lr or check the data)"
                        )
                    )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                objective.after_step(step, total_steps)
                size = objective.samples(batch) * dist.world  # ranks train equal batches
                loss_sum += value * size
                seen += size
                rate = seen / max(time.perf_counter() - t0, 1e-9)
                callback(BatchDone(epoch + 1, b + 1, n_batches, value, rate))
            train_seconds = time.perf_counter() - t0
            dist.sync_buffers(module)
            module.eval()
            metrics = objective.validate(epoch) if validates(epoch + 1, cfg.epochs, cfg.val_every) else {}
            train_loss = loss_sum / max(seen, 1)
            best = False
            if cfg.select_metric is None:
                best = True
                state.best_value = None
            elif cfg.select_metric in metrics:
                value = float(metrics[cfg.select_metric])
                if _better(value, state.best_value):
                    best, state.best_value = True, value
            if best:
                state.best_epoch, state.bad_epochs = epoch + 1, 0
                state.best_state = snapshot(module)
            elif cfg.select_metric in metrics:
                state.bad_epochs += 1
            seconds = time.perf_counter() - t0
            lr = optimizer.param_groups[-1]["lr"]
            rate = seen / max(train_seconds, 1e-9)
            shown_best = best and cfg.select_metric is not None  # "keep the last" marks no epoch
            state.history.append(
                {
                    "epoch": epoch + 1,
                    "train_loss": train_loss,
                    **metrics,
                    "best": shown_best,
                    "seconds": round(seconds, 3),
                    "lr": lr,
                    "samples_per_s": round(rate, 1),
                    "precision": arithmetic,
                }
            )
            state.epoch = epoch + 1
            state.seconds = time.perf_counter() - t_run
            if cfg.patience is not None and state.bad_epochs >= cfg.patience:
                state.stopped_early = True
            if state_path is not None and dist.is_main:  # never cut: Ctrl-C waits for its rename
                save_resume_state(state_path, module, optimizer, state, run_config or {}, scaler)
            callback(EpochDone(epoch + 1, cfg.epochs, train_loss, metrics, shown_best, seconds, lr, rate))
        callback(RunDone(state.best_epoch, state.best_value, state.epoch, state.seconds, state.stopped_early))
    except KeyboardInterrupt:
        done = saved_epoch(state_path) if dist.is_main else state.epoch
        at = min(epoch + 1, cfg.epochs)  # all done: a Ctrl-C after the last epoch
        raise all_ranks(Interrupted(interrupted_message(at, done, resume_hint))) from None
    return state


def interrupted_message(epoch: int, done: int | None, hint: str) -> str:
    """What Ctrl-C in ``epoch`` (1-based) says, when epoch ``done`` is the last one saved."""
    if done and done >= epoch:
        return f"interrupted after epoch {done} was saved. {hint}"
    if done:
        return f"interrupted in epoch {epoch}; epoch {done} is saved. {hint}"
    return f"interrupted in epoch {epoch}; no epoch was saved yet, so the same command starts it again"
