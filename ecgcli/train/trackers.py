"""Experiment trackers (``--tracker tensorboard`` or ``mlflow``): one more consumer of the events.

Why so small: the loop already reports every epoch as an :class:`~ecgcli.events.EpochDone`, so
a tracker needs no hook inside training, only the events and the two moments they do not carry:
the start (the configuration) and the end (metrics.json and the checkpoint, written after the
loop). :func:`~ecgcli.train.run.run_trainer` opens one on rank 0 only and calls those hooks. The
libraries are optional extras, imported only when asked for; a missing one is refused by
:func:`check_tracker` among the configuration checks, before any data is read or a run folder
exists. A tracker that fails says so once and stops: the training matters more than its log.
Per epoch: ``train/loss``, ``val/<metric>`` (``val/auroc``, ``val/probe_auroc``...),
``train/lr``, ``train/samples_per_s``, step = epoch; at the end the :func:`final_scores`
(TensorBoard, with the configuration as hparams) or every number of metrics.json (MLflow).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Protocol, get_args

from ecgcli.errors import ConfigError
from ecgcli.events import Callback, EpochDone, Event, Message
from ecgcli.files import write_json_atomic
from ecgcli.settings import Settings

#: The trackers, as the ``tracker`` setting declares them.
TRACKERS: tuple[str, ...] = get_args(Settings.model_fields["tracker"].annotation)
#: What each tracker imports, and the extra (``pip install 'ecgcli[NAME]'``) that installs it.
NEEDS = {"tensorboard": ("tensorboard", "torch.utils.tensorboard"), "mlflow": ("mlflow",)}
#: The MLflow experiment every run logs to.
EXPERIMENT = "ecgcli"
#: In the run folder: which MLflow run it logs to, so ``--resume`` continues that one.
STATE = "tracker.json"
#: Epoch metrics that describe training, not validation.
TRAIN_SIDE = frozenset({"augment_share"})


class Tracker(Protocol):
    """What :func:`~ecgcli.train.run.run_trainer` calls: ``start`` once (it returns a line saying
    where the run is logged), then every event, then ``finish`` with ``FINISHED`` (the run's
    files are written), ``FAILED`` or ``KILLED``."""

    def start(self, config: dict[str, Any], tags: dict[str, str], resumed: bool) -> str: ...

    def __call__(self, event: Event) -> None: ...

    def finish(self, status: str) -> None: ...


def check_tracker(name: str) -> None:
    """Refuse an unknown tracker, or one whose library is not installed, in one line."""
    if name not in TRACKERS:
        raise ConfigError(f"unknown tracker {name!r} (choose {', '.join(TRACKERS)})")
    for module in NEEDS.get(name, ()):
        try:
            importlib.import_module(module)
        except ImportError:
            raise ConfigError(
                f"--tracker {name} needs the {name} extra, which is not installed: "
                f"pip install 'ecgcli[{name}]'"
            ) from None


def open_tracker(name: str, run_dir: Path, uri: str | None, say: Callback) -> Guarded | None:
    """The tracker called ``name`` for the run in ``run_dir`` (None for ``none``); ``say``
    hears a warning if it fails."""
    if name == "none":
        return None
    return Guarded(TensorBoardTracker(run_dir) if name == "tensorboard" else MLflowTracker(run_dir, uri), say)


class Guarded:
    """A tracker whose first failure is one warning and the end of its logging, not of the run."""

    def __init__(self, tracker: Tracker, say: Callback) -> None:
        self.tracker: Tracker | None = tracker
        self.say = say

    def _safely(self, method: str, *args: Any) -> Any:
        if self.tracker is None:
            return None
        try:
            return getattr(self.tracker, method)(*args)
        except Exception as exc:
            self.tracker = None
            self.say(Message(f"the tracker stopped logging: {type(exc).__name__}: {exc}", level="warning"))
            return None

    def start(self, config: dict[str, Any], tags: dict[str, str], resumed: bool) -> None:
        where = self._safely("start", config, tags, resumed)
        if where:
            self.say(Message(where))

    def __call__(self, event: Event) -> None:
        self._safely("__call__", event)

    def finish(self, status: str) -> None:
        self._safely("finish", status)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level of ``a/b/c`` keys (lists and other leaves as they are)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, path + "/"))
        else:
            out[path] = value
    return out


def numbers(tree: dict[str, Any], prefix: str = "final/") -> dict[str, float]:
    """The numeric leaves of nested dicts (no bools, lists or None), keyed ``final/a/b``."""
    return {
        key: float(v)
        for key, v in flatten(tree, prefix).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def final_scores(metrics: dict[str, Any]) -> dict[str, float]:
    """What runs are compared by: a classifier's fold-9/fold-10 macro scores (at 0.5 and at the
    tuned thresholds) and best epoch, a pretraining's last probe scores."""
    kept: dict[str, Any] = {"best_epoch": metrics.get("best_epoch")}
    for split in ("val", "test", "test_tuned"):
        kept[split] = {k: v for k, v in (metrics.get(split) or {}).items() if k != "per_class"}
    kept.update({k: v for k, v in (metrics.get("final_probe") or {}).items() if k.startswith("probe_")})
    return numbers(kept)


def epoch_scalars(event: EpochDone) -> dict[str, float]:
    """One epoch's numbers, named as both trackers log them."""
    out = {"train/loss": float(event.train_loss)}
    out.update({("train/" if k in TRAIN_SIDE else "val/") + k: float(v) for k, v in event.metrics.items()})
    out.update({"train/lr": float(event.lr), "train/samples_per_s": float(event.samples_per_s)})
    return out


def run_params(config: dict[str, Any], tags: dict[str, str]) -> dict[str, str | int | float | bool]:
    """The configuration (less its tracker tags) and the tags it lacks, as flat scalar values."""
    flat = {**tags, **flatten({k: v for k, v in config.items() if k != "tracker_tags"})}
    return {k: v if isinstance(v, str | int | float | bool) else json.dumps(v) for k, v in flat.items()}


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


class TensorBoardTracker:
    """Event files in ``RUN_DIR/tensorboard/``; a grid's cells are folders of the grid's folder,
    so ``tensorboard --logdir GRID`` compares them (scalars and the hparams table)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir, self.writer, self.hparams = Path(run_dir), None, {}

    def _writer(self) -> Any:
        if self.writer is None:  # at the first epoch: a run that saved none leaves no event file
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))
        return self.writer

    def start(self, config: dict[str, Any], tags: dict[str, str], resumed: bool) -> str:
        self.hparams = run_params(config, tags)
        return f"logging to TensorBoard: tensorboard --logdir {self.run_dir / 'tensorboard'}"

    def __call__(self, event: Event) -> None:
        if isinstance(event, EpochDone):
            writer = self._writer()
            for tag, value in epoch_scalars(event).items():
                writer.add_scalar(tag, value, event.epoch)
            writer.flush()  # an interrupted run keeps what it logged

    def finish(self, status: str) -> None:
        try:
            if status == "FINISHED":
                from torch.utils.tensorboard.summary import hparams

                metrics = _read(self.run_dir / "metrics.json")
                scores = final_scores(metrics)
                writer = self._writer()
                for summary in hparams(self.hparams, scores):  # the hparams plugin's session
                    writer._get_file_writer().add_summary(summary)
                for tag, value in scores.items():  # the values its table shows
                    writer.add_scalar(tag, value, metrics.get("epochs_run", 0))
        finally:
            if self.writer is not None:
                self.writer.close()


class MLflowTracker:
    """One MLflow run per training run in experiment ``ecgcli``: params = the configuration,
    metrics per epoch (step = epoch) and at the end, artifacts. The store is the tracking URI
    given, else the file store ``mlruns/`` beside the run folder. Its id is kept in the run
    folder's ``tracker.json``, so a resumed run goes on logging to the same MLflow run."""

    def __init__(self, run_dir: Path, uri: str | None) -> None:
        self.run_dir, self.run_id, self.client = Path(run_dir), None, None
        self.uri = store_uri(uri or self.run_dir.parent / "mlruns")

    def start(self, config: dict[str, Any], tags: dict[str, str], resumed: bool) -> str:
        state = _read(self.run_dir / STATE) if resumed else {}
        self.uri = state.get("tracking_uri", self.uri)
        if self.uri.startswith("file:"):  # MLflow 3 keeps its file store only on request
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = client = MlflowClient(tracking_uri=self.uri)
        if state.get("run_id") and self._exists(state["run_id"]):
            self.run_id = state["run_id"]
            client.update_run(self.run_id, status="RUNNING")
            return f"logging to MLflow run {self.run_id} again, in {self.uri}"
        tags = {"ecgcli.run_dir": str(self.run_dir.resolve()), **tags}
        name = config.get("name") or self.run_dir.name
        self.run_id = client.create_run(self._experiment(), run_name=name, tags=tags).info.run_id
        write_json_atomic(
            self.run_dir / STATE, {"tracker": "mlflow", "tracking_uri": self.uri, "run_id": self.run_id}
        )
        items = [Param(k, str(v)[:6000]) for k, v in run_params(config, {}).items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params a batch
            client.log_batch(self.run_id, params=items[i : i + 100])
        return f"logging to MLflow run {self.run_id} (experiment {EXPERIMENT}) in {self.uri}"

    def _exists(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(run_id).info.lifecycle_stage == "active"
        except MlflowException:
            return False

    def _experiment(self) -> str:
        """The experiment's id (made by the first run; parallel grid cells may race to it)."""
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(EXPERIMENT)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(EXPERIMENT)
        except MlflowException:
            return self.client.get_experiment_by_name(EXPERIMENT).experiment_id

    def _log(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(re.sub(r"[^\w./\- :]", "_", k), v, now, step) for k, v in values.items()]
        for i in range(0, len(items), 1000):  # and 1000 metrics
            self.client.log_batch(self.run_id, metrics=items[i : i + 1000])

    def __call__(self, event: Event) -> None:
        if isinstance(event, EpochDone):
            self._log(epoch_scalars(event), event.epoch)

    def finish(self, status: str) -> None:
        if self.run_id is None:
            return
        try:
            if status == "FINISHED":
                metrics = _read(self.run_dir / "metrics.json")
                self._log(numbers(metrics), int(metrics.get("epochs_run", 0)))
                for path, folder in artifacts(self.run_dir):
                    self.client.log_artifact(self.run_id, str(path), folder)
                self._log_figures()
        finally:
            self.client.set_terminated(self.run_id, status)

    def _log_figures(self) -> None:
        """A classifier's ROC and reliability figures on fold 10, drawn from its predictions
        (see :mod:`ecgcli.scoring.figures`; none without matplotlib or predictions)."""
        import tempfile

        from ecgcli.scoring.figures import run_figures

        with tempfile.TemporaryDirectory() as tmp:
            for path in run_figures(self.run_dir, Path(tmp)):
                self.client.log_artifact(self.run_id, str(path), "plots")


def artifacts(run_dir: Path) -> list[tuple[Path, str | None]]:
    """What the MLflow run keeps of a finished run folder, and under which artifact folder:
    metrics.json and config.json, its PNG plots, its checkpoint (weights and JSON sidecar)."""
    from ecgcli.storage.checkpoint import sidecar_path

    model = run_dir / "model.safetensors"
    found = [(run_dir / "metrics.json", None), (run_dir / "config.json", None)]
    found += [(png, "plots") for png in sorted(run_dir.glob("*.png"))]
    found += [(model, "checkpoint"), (sidecar_path(model), "checkpoint")]
    return [(path, folder) for path, folder in found if path.is_file()]


def store_uri(where: str | Path) -> str:
    """A tracking URI as given (``http://``, ``sqlite:///``, ``file:``...), or a folder as an
    absolute ``file:`` URI (a resumed run logs to the same store from any working folder)."""
    text = str(where)
    if re.match(r"^[A-Za-z][\w+.-]+:", text):
        return text
    return Path(text).expanduser().resolve().as_uri()
