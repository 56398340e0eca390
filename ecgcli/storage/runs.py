"""Run directories: where a training run writes its configuration, log, metrics and models.

Layout of ``runs/<name>/``::

    config.json          the full configuration (resume reads it back)
    train.log            one line per epoch, then the final scores
    metrics.json         per-epoch history, best epoch, val and test scores, per class, timing
    model.safetensors    best weights  (+ model.json sidecar: see ecgcli.storage.checkpoint)
    predictions.npz      val and test probabilities with labels and ecg_ids (no pickle)
    state/last.*         resume state after the last completed epoch
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ecgcli.errors import ConfigError
from ecgcli.files import (
    atomic_write_bytes,
    probe_writable,
    remove_stale_temporaries,
    write_json_atomic,
)

_CLAIMED: dict[str, int] = {}  # run directories this process holds: resolved path -> locked fd


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def model(self) -> Path:
        return self.path / "model.safetensors"

    @property
    def log_file(self) -> Path:
        return self.path / "train.log"

    @property
    def state(self) -> Path:
        return self.path / "state" / "last.safetensors"

    def resume_files(self) -> list[Path]:
        """What a resumed run reads: its configuration and the last saved epoch (weights and
        their JSON sidecar)."""
        return [self.config, self.state, self.state.with_suffix(".json")]

    @property
    def predictions(self) -> Path:
        return self.path / "predictions.npz"

    @property
    def finished(self) -> bool:
        return self.metrics.is_file() and self.model.is_file()

    def status(self) -> str:
        """``finished``, ``resume`` (a saved epoch, no metrics), ``restart`` (started, no epoch
        saved) or ``new``: what rerunning the same command should do with this directory."""
        if self.finished:
            return "finished"
        if self.config.is_file() and self.state.is_file():
            return "resume"
        if self.path.is_dir() and any(self.path.iterdir()):
            return "restart"
        return "new"

    def clear_unstarted(self) -> None:
        """Remove what a run leaves before its first epoch is saved, so it can start afresh."""
        import shutil

        for name in ("config.json", "train.log", "probe_at_init.json"):
            (self.path / name).unlink(missing_ok=True)
        remove_stale_temporaries(self.path)
        state = self.path / "state"
        if state.is_dir() and not self.state.exists():
            shutil.rmtree(state)
        left = sorted(p.name for p in self.path.iterdir())
        if left:
            raise ConfigError(
                f"{self.path}: unfinished run directory with unexpected files ({', '.join(left[:3])}); "
                "delete it to start this run again"
            )

    def claim(self) -> bool:
        """Take this process's lock on the run directory (an ``flock`` on the folder itself,
        so nothing is left behind; released when the process ends, however it ends). False
        when another live process holds it: that run is still going."""
        key = str(self.path.resolve())
        if key in _CLAIMED:
            return True
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory locks, no check
            return True
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        _CLAIMED[key] = fd
        return True

    def claim_or_refuse(self) -> None:
        """:meth:`claim`, or a one-line error when another process is running in it."""
        if not self.claim():
            raise ConfigError(f"run directory {self.path} is in use by another running ecg process")

    def release(self) -> None:
        """Give up :meth:`claim` before the process ends (tests; a caller running many runs)."""
        fd = _CLAIMED.pop(str(self.path.resolve()), None)
        if fd is not None:
            os.close(fd)

    @classmethod
    def create(cls, runs_dir: Path, name: str, explicit: Path | None = None) -> RunDir:
        """A new run directory, claimed by this process: ``explicit`` if given (must be new,
        empty, or a run that never saved an epoch), else ``runs_dir/name``, with ``-2``,
        ``-3``... appended when that name holds a started or running run.

        A run that failed before its first saved epoch (bad record, killed cache build)
        leaves only its ``config.json`` and log: such a folder is cleared and reused, so the
        same command simply starts again in place instead of piling up ``-2``, ``-3``...
        """
        if explicit is not None:
            path = Path(explicit)
            if path.exists() and not path.is_dir():
                raise ConfigError(f"--run-dir {path} is a file, not a directory; choose another --run-dir")
            probe_writable(path, "the run directory")
            run = cls(path)
            run.claim_or_refuse()
            status = run.status()
            if status == "restart":
                run.clear_unstarted()
            elif status != "new":
                run.release()
                raise ConfigError(
                    f"run directory {path} is not empty (use --resume {path} to continue it, "
                    "or choose another --run-dir)"
                )
            return run
        k = 1
        while True:
            path = Path(runs_dir) / (name if k == 1 else f"{name}-{k}")
            k += 1
            if path.exists() and not path.is_dir():
                continue
            run = cls(path)
            if run.status() not in ("new", "restart"):
                continue
            probe_writable(path, "the run directory")
            if not run.claim():
                continue  # a run that is starting in it right now
            if run.status() == "restart":
                try:
                    run.clear_unstarted()
                except ConfigError:  # unexpected files: leave that folder alone
                    run.release()
                    continue
            return run

    @classmethod
    def for_resume(cls, path: Path) -> RunDir:
        run = cls(Path(path))
        if not run.config.is_file():
            raise ConfigError(f"{path}: not a run directory (no config.json)")
        if not run.state.is_file():
            raise ConfigError(
                f"{path}: has no saved epoch to resume from; run the same command without --resume "
                "to start it again in this folder"
            )
        run.remove_temporaries()
        return run

    def remove_temporaries(self) -> list[Path]:
        """Remove what writers killed in this run left (``.NAME.tmp-PID`` of dead processes)."""
        return remove_stale_temporaries(self.path) + remove_stale_temporaries(self.state.parent)

    def read_config(self) -> dict[str, Any]:
        try:
            return json.loads(self.config.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.config}: unreadable ({exc})") from None

    def write_config(self, config: dict[str, Any]) -> None:
        write_json_atomic(self.config, config)

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json_atomic(self.metrics, metrics)

    def log(self, line: str) -> None:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        with open(self.log_file, "a") as f:
            f.write(f"{stamp} {line}\n")

    def write_json(self, name: str, obj: Any) -> None:
        write_json_atomic(self.path / name, obj)

    def read_json(self, name: str) -> Any:
        """A JSON file of the run, or None if it was never written."""
        path = self.path / name
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: unreadable ({exc})") from None

    def write_predictions(self, **arrays: np.ndarray) -> None:
        import io

        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(self.predictions, buf.getvalue())


def check_writable(path: Path) -> None:
    """Fail before training, not after, when ``--out`` cannot be written."""
    path = Path(path)
    probe_writable(path.parent, "--out")
    if path.exists() and path.is_dir():
        raise ConfigError(f"--out {path} is a directory; give a file path such as model.safetensors")
