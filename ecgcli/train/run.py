"""What every trainer shares around its loop: the run directory (made by rank 0 only), the
dataset loaded with rank 0 first, and the one result type every trainer returns.

Configurations live in :mod:`ecgcli.train.config`; one is saved as ``config.json`` and read
back on ``--resume``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecgcli.errors import ConfigError, Interrupted
from ecgcli.events import Callback, Message, ignore
from ecgcli.storage.runs import RunDir
from ecgcli.train.config import RunConfig
from ecgcli.train.data import TrainingData, load_training_data
from ecgcli.train.resume import saved_epoch

if TYPE_CHECKING:
    from ecgcli.scoring.evaluate import SplitEvaluation
    from ecgcli.train.distributed import Distributed


@dataclass
class RunResult:
    """What every trainer returns: where the run went, its checkpoint, and its scores
    (``evaluation`` is the fold-9/fold-10 evaluation of a classifier; None for pretraining,
    whose probe scores are in ``metrics``)."""

    run_dir: Path
    checkpoint: Path
    evaluation: SplitEvaluation | None
    metrics: dict[str, Any]


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


def resume_hint(run: RunDir) -> str:
    """How to resume ``run``: its own kind's command."""
    command = RESUMED_BY.get(run_kind(run.read_config()), ("", "ecg train supervised"))[1]
    return f"Resume with: {command} --resume {run.path}"
