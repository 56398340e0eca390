"""What every trainer shares around its loop: the run skeleton (:func:`run_trainer`: checks and
process placement, data, run directory made by rank 0 only, the loop, the resume hint, the
guarded final writes) and the one result type every trainer returns. A trainer
(:class:`Trainer`) brings only what differs: its model and objective, its optimiser, and what
it does when training ends.

Configurations live in :mod:`ecgcli.train.config`; one is saved as ``config.json`` and read
back on ``--resume``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ecgcli.errors import ConfigError, Interrupted
from ecgcli.events import Callback, Message, ignore
from ecgcli.storage.runs import RunDir
from ecgcli.train.config import RunConfig
from ecgcli.train.data import TrainingData, load_training_data
from ecgcli.train.resume import saved_epoch

if TYPE_CHECKING:
    import torch

    from ecgcli.scoring.evaluate import SplitEvaluation
    from ecgcli.train.distributed import Distributed
    from ecgcli.train.resume import FitState
    from ecgcli.train.trackers import Guarded


@dataclass
class RunResult:
    """What every trainer returns: where the run went, its checkpoint, and its scores
    (``evaluation`` is the fold-9/fold-10 evaluation of a classifier; None for pretraining,
    whose probe scores are in ``metrics``)."""

    run_dir: Path
    checkpoint: Path
    evaluation: SplitEvaluation | None
    metrics: dict[str, Any]


@dataclass
class TrainingRun:
    """One run as the skeleton hands it to its trainer: configuration, processes, data, run
    directory, and what the loop and the final writes need to say (``hint``: how to resume)."""

    cfg: Any
    dist: Distributed
    data: TrainingData
    run: RunDir
    resumed: bool
    callback: Callback
    placement: dict[str, Any]
    hint: str
    started: float  # perf_counter() after the checks
    local_batch: int  # this process's share of --batch-size

    @property
    def device(self) -> torch.device:
        return self.dist.device


class Trainer(Protocol):
    """What one kind of training brings to :func:`run_trainer`."""

    label_fraction: float  # of folds 1-8: the labelled records loaded (trained on, or probed)
    sync_bn: bool  # BatchNorm synchronised across processes where it can be
    epoch_log: bool  # one line per epoch in train.log

    def prepare(self, data: TrainingData, dist: Distributed, callback: Callback) -> None:
        """What can still refuse the run, before its directory exists (a model, added records)."""

    def start(self, run: TrainingRun) -> tuple[Any, Any]:
        """The objective and the optimiser for :func:`~ecgcli.train.loop.fit`."""

    def finish(self, run: TrainingRun, state: FitState) -> tuple[RunResult, Callable[[], None]]:
        """The result (on every rank) and its final writes (run by rank 0, Ctrl-C guarded)."""


def run_trainer(
    trainer: Trainer,
    cfg: Any,
    callback: Callback = ignore,
    resume: RunDir | None = None,
    data: TrainingData | None = None,
    dist: Distributed | None = None,
) -> RunResult:
    """The one skeleton of every training run: checks and process placement (``dist``: this
    process's place in a torchrun run; every rank calls this, only rank 0 reports and
    writes), the data, the trainer's last refusals, the run directory, the loop with its resume
    hint, and the final writes. A run that cannot start leaves no directory."""
    from ecgcli.device import pick_device
    from ecgcli.train.distributed import Distributed, per_rank_batch
    from ecgcli.train.loop import LoopConfig, fit

    def checked() -> int:
        cfg.check()
        return per_rank_batch(cfg.batch_size, dist.world if dist else 1)

    if dist is None:
        local_batch = checked()
        dist = Distributed(device=pick_device(cfg.device))
    else:
        local_batch = dist.on_main(checked)
        callback = callback if dist.is_main else ignore
    started = time.perf_counter()
    data = data or load_data(cfg, trainer.label_fraction, dist, callback)
    trainer.prepare(data, dist, callback)
    placement = dist.info(cfg.batch_size, sync_bn=trainer.sync_bn)
    run = open_run(cfg, dist, placement, resume, callback)
    hint = resume_hint(run, cfg.to_dict())
    with says_what_is_saved(run, hint), tracked(cfg, run, resume is not None, dist, callback) as tracker:
        ctx = TrainingRun(
            cfg, dist, data, run, resume is not None, callback, placement, hint, started, local_batch
        )
        objective, optimizer = trainer.start(ctx)
        state = fit(
            objective,
            optimizer,
            LoopConfig.from_run(cfg, dist),
            state_path=run.state,
            resume=resume is not None,
            run_config=cfg.to_dict(),
            resume_hint=hint,
            callback=tee(tracker, epoch_log(callback, run) if trainer.epoch_log else callback)
            if dist.is_main
            else ignore,
        )
        result, write = trainer.finish(ctx, state)
        if not dist.is_main:
            return result  # rank 0 writes
        try:
            write()
        except KeyboardInterrupt:
            raise interrupted_writing(run, state.epoch, hint) from None
        if tracker is not None:
            tracker.finish("FINISHED")  # logs metrics.json and the checkpoint
        return result


def tee(tracker: Guarded | None, callback: Callback) -> Callback:
    """``callback``, and the tracker first (an epoch is logged even if the view raises)."""
    if tracker is None:
        return callback

    def both(event: Any) -> None:
        tracker(event)
        callback(event)

    return both


@contextmanager
def tracked(
    cfg: Any, run: RunDir, resumed: bool, dist: Distributed, callback: Callback
) -> Iterator[Guarded | None]:
    """The run's experiment tracker (its saved ``tracker``), started: rank 0's only, None on
    the other ranks. A run that stops on an error ends its tracker run too: KILLED on Ctrl-C,
    else FAILED. The tracker's warnings go to ``callback``."""
    from ecgcli.train.trackers import open_tracker

    config = cfg.to_dict()
    tracker = None
    if dist.is_main:
        tracker = open_tracker(
            config.get("tracker", "none"), run.path, config.get("mlflow_tracking_uri"), callback
        )
    if tracker is not None:
        tracker.start(
            config, {"ecgcli.kind": run_kind(config), **(config.get("tracker_tags") or {})}, resumed
        )
    try:
        yield tracker
    except BaseException as exc:
        if tracker is not None:
            tracker.finish("KILLED" if isinstance(exc, KeyboardInterrupt | Interrupted) else "FAILED")
        raise


def epoch_log(callback: Callback, run: RunDir) -> Callback:
    """Also write one line per epoch to the run's train.log."""
    from ecgcli.events import EpochDone

    def handle(event: Any) -> None:
        if isinstance(event, EpochDone):
            m = " ".join(f"{k} {v:.4f}" for k, v in event.metrics.items())
            run.log(
                f"epoch {event.epoch}/{event.epochs} loss {event.train_loss:.4f} {m}"
                f"{' *best*' if event.best else ''} {event.seconds:.1f}s"
            )
        callback(event)

    return handle


def data_summary(data: TrainingData) -> dict[str, Any]:
    """The ``data`` block of a classifier run's metrics.json: split sizes and the signals used."""
    ds, split, store = data.dataset, data.split, data.store
    return {
        "n_train": int(len(split.train)),
        "n_val": int(len(split.val)),
        "n_test": int(len(split.test)),
        "cache_id": store.cache_id,
        "data_root": str(ds.root),
        "sampling_rate": ds.sampling_rate,
        "dropped_classes": list(ds.dropped_classes),  # the task's classes no record has
    }


def open_run(
    cfg: RunConfig,
    dist: Distributed,
    placement: dict[str, Any],
    resume: RunDir | None,
    callback: Callback = ignore,
) -> RunDir:
    """The run directory: the resumed one, or a new one made by rank 0 with the config in it;
    either way claimed by rank 0 for as long as it runs (a second process is refused). When
    the automatic name is taken, ``callback`` hears where the run goes instead."""
    if resume is not None:

        def claim() -> None:
            resume.claim_or_refuse()
            saved = resume.read_config()
            if saved.get("epochs") != cfg.epochs:  # --epochs on --resume: recorded once it is ours
                resume.write_config({**saved, "epochs": cfg.epochs})

        dist.on_main(claim)
        return resume

    def create() -> RunDir:
        run = RunDir.create(
            Path(cfg.runs_dir),
            cfg.name or cfg.default_name(),
            Path(cfg.run_dir) if cfg.run_dir else None,
            say=lambda text: callback(Message(text)),
        )
        run.write_config({**cfg.to_dict(), "distributed": placement})
        return run

    return dist.on_main(create)


def interrupted_writing(run: RunDir, epochs: int, hint: str) -> Interrupted:
    """The error for Ctrl-C during a run's final writes: each write finishes first (see
    :func:`~ecgcli.files.ctrl_c_deferred`); metrics.json, the last, marks it complete."""
    if run.finished:
        return Interrupted(f"interrupted after the results were written: {run.path} is complete")
    return Interrupted(f"interrupted while writing the results; all {epochs} epochs are saved. {hint}")


@contextmanager
def says_what_is_saved(run: RunDir, hint: str) -> Iterator[None]:
    """Ctrl-C anywhere in a run outside the loop's own guard (a resumed run loading its data,
    evaluating, writing) still says which epoch is saved and how to resume (issue 31 J)."""
    from ecgcli.train.distributed import all_ranks

    try:
        yield
    except KeyboardInterrupt:
        if run.finished:
            raise all_ranks(
                Interrupted(f"interrupted after the results were written: {run.path} is complete")
            ) from None
        done = saved_epoch(run.state)
        if done:
            raise all_ranks(Interrupted(f"interrupted; epoch {done} is saved. {hint}")) from None
        raise all_ranks(
            Interrupted("interrupted before the first epoch was saved, so the same command starts it again")
        ) from None


def load_data(cfg: RunConfig, label_fraction: float, dist: Distributed, callback: Callback) -> TrainingData:
    """Tables, split and signal cache; the first process of each node builds the cache before
    the others of that node open it (nodes need not share a filesystem)."""
    return dist.local_first(lambda: load_training_data(cfg, label_fraction, callback))


def continue_run(
    run_dir: Path, start: Callable[[], RunResult], resume: Callable[[], RunResult]
) -> tuple[str, RunResult | None]:
    """What rerunning the same command does with ``run_dir``, the one rule every caller that
    reruns (multiseed, quickstart) follows: a finished run is ``reused`` (nothing runs; read
    its files), one with a saved epoch is ``resumed``, one that never saved an epoch is cleared
    and ``trained`` afresh, like a new one. Returns the action and the result (None if reused).
    """
    run = RunDir(Path(run_dir))
    status = run.status()
    if status == "finished":
        return "reused", None
    if status == "resume":
        return "resumed", resume()
    if status == "restart":
        run.clear_unstarted()
    return "trained", start()


#: Each kind of run with epochs, as the user knows it, and the command that resumes it.
RESUMED_BY = {
    "supervised": ("a supervised run", "ecg train supervised"),
    "finetune": ("a finetune run", "ecg finetune"),
    "ssl": ("an SSL run", "ecg train ssl"),
}


def run_kind(config: dict[str, Any]) -> str:
    """``supervised``, ``finetune``, ``ssl`` or ``features``: what kind of run a saved
    ``config.json`` belongs to (told apart by the fields only that kind has)."""
    if "method" in config:
        return "ssl"
    if "classifier" in config:
        return "features"
    return "finetune" if config.get("ssl_checkpoint") else "supervised"


def resumable_config(run: RunDir, kinds: tuple[str, ...], epochs: int | None = None) -> dict[str, Any]:
    """The saved configuration of ``run`` for a resume by a command that resumes ``kinds``,
    with ``epochs`` (``--epochs`` given on ``--resume``) in place of the saved number.

    Another kind of run is refused with the command that resumes it (its state would not fit
    this trainer's model); fewer epochs than the run has trained cannot be undone.
    """
    config = run.read_config()
    kind = run_kind(config)
    if kind not in kinds:
        what, command = RESUMED_BY.get(kind, (f"a {kind} run", None))
        raise ConfigError(
            f"{run.path} is {what}; resume it with `{command} --resume {run.path}`"
            if command
            else f"{run.path} is {what}, which has no epochs to resume"
        )
    if epochs is None:
        return config
    done = saved_epoch(run.state) or 0
    if epochs < done:
        raise ConfigError(
            f"--epochs {epochs} is fewer than the {done} epoch{'s' if done != 1 else ''} {run.path} has "
            f"already trained; give {done} or more"
        )
    return {**config, "epochs": epochs}


def resume_hint(run: RunDir, config: dict[str, Any] | None = None) -> str:
    """How to resume ``run``: its own kind's command (``config``: its configuration, when this
    process may not see the run's config.json)."""
    command = RESUMED_BY.get(run_kind(config or run.read_config()), ("", "ecg train supervised"))[1]
    return f"Resume with: {command} --resume {run.path}"
