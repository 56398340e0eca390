"""Run directories: where a training run writes its configuration, log, metrics and models.

Layout of ``runs/<name>/``::

    config.json          the full configuration (resume reads it back)
    train.log            one line per epoch, then the final scores
    metrics.json         per-epoch history, best epoch, val and test scores, per class, timing
    model.safetensors    best weights  (+ model.json sidecar: see ecgcli.storage.checkpoint)
    predictions.npz      val and test probabilities with labels and ecg_ids (no pickle)
    state/last.safetensors  resume state after the last completed epoch (one file, see train/resume.py)
    tensorboard/         --tracker tensorboard: event files (from the first epoch on)
    tracker.json         --tracker mlflow: the MLflow run it logs to (a resume continues it)
    .ecgcli-run          the marker: ecgcli opened this folder as a run (written first)

Nothing in a folder without the marker is ever deleted, and in a marked one only the files a run
writes before its first saved epoch, by name (issue 31 A): a ``--run-dir`` pointed at a folder of
one's own, or ``.``, is refused with every file in place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ecgcli.errors import ConfigError
from ecgcli.files import (
    atomic_write_bytes,
    is_stale_temporary,
    probe_writable,
    remove_stale_temporaries,
    write_json_atomic,
)

#: The file that says ecgcli made this folder a run (see the module docstring).
MARKER = ".ecgcli-run"
#: What a run writes before its first saved epoch, by name: all that a restart may remove.
UNSTARTED_FILES = ("config.json", "train.log", "probe_at_init.json", "state/last.json", "tracker.json")
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
        """``finished``, ``resume`` (a saved epoch, no metrics), ``restart`` (something in it,
        no epoch saved) or ``new`` (nothing but the marker and dead writers' temporaries):
        what rerunning the same command should do with this directory."""
        if self.finished:
            return "finished"
        if self.config.is_file() and self.state.is_file():
            return "resume"
        if self.path.is_dir() and any(
            p.name != MARKER and not is_stale_temporary(p) for p in self.path.iterdir()
        ):
            return "restart"
        return "new"

    @property
    def marked(self) -> bool:
        """Whether ecgcli opened this folder as a run (its :data:`MARKER` is there)."""
        return (self.path / MARKER).is_file()

    def mark(self) -> None:
        """Write the marker (once): from now on ecgcli may clear what it writes here."""
        if not self.marked:
            from ecgcli import __version__

            write_json_atomic(
                self.path / MARKER,
                {"made_by": "ecgcli", "version": __version__, "at": datetime.now(timezone.utc).isoformat()},
            )

    def unexpected_files(self) -> list[str]:
        """Every file and folder in the run directory (as relative paths, ``/``-separated)
        that a run does not write before its first saved epoch: what a restart must keep."""
        own = {MARKER, *UNSTARTED_FILES}
        found: list[str] = []
        for root, dirs, files in os.walk(self.path):
            here = Path(root)
            rel = here.relative_to(self.path)
            ours = rel.parts in ((), ("state",))  # where temporaries and our files live
            for name in sorted(dirs):  # os.walk lists links to folders here, never enters them
                entry = here / name
                if ours and is_stale_temporary(entry):
                    dirs.remove(name)  # a killed writer's folder: removed with the temporaries
                elif entry.is_symlink() or ((rel.parts, name) != ((), "state") and not any(entry.iterdir())):
                    found.append(f"{(rel / name).as_posix()}/")  # a link, or an empty folder not ours
            for name in files:
                path = (rel / name).as_posix()
                if path not in own and not (ours and is_stale_temporary(here / name)):
                    found.append(path)
        return sorted(found)

    def clear_unstarted(self) -> None:
        """Remove what a run leaves before its first epoch is saved, so it can start afresh:
        checked first, then only ecgcli's own files by name and the ``state/`` folder once
        empty. A folder without the marker, or with anything else in it, is refused whole."""
        if not self.marked:
            names = sorted(
                p.name + ("/" if p.is_dir() else "") for p in self.path.iterdir() if not is_stale_temporary(p)
            )
            shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
            raise ConfigError(
                f"{self.path} holds files ecgcli did not write ({shown}); nothing was deleted: "
                "choose another --run-dir"
            )
        left = self.unexpected_files()
        if left:
            shown = ", ".join(left[:4]) + (f" and {len(left) - 4} more" if len(left) > 4 else "")
            raise ConfigError(
                f"{self.path}: unfinished run directory with unexpected files ({shown}); nothing was "
                "deleted: move them away or choose another --run-dir"
            )
        self.remove_temporaries()
        for name in UNSTARTED_FILES:
            (self.path / name).unlink(missing_ok=True)
        state = self.state.parent
        if state.is_dir() and not any(state.iterdir()):
            state.rmdir()

    def cleanable(self) -> bool:
        """Whether :meth:`clear_unstarted` would clear this folder rather than refuse it."""
        return self.marked and not self.unexpected_files()

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
    def create(
        cls,
        runs_dir: Path,
        name: str,
        explicit: Path | None = None,
        say: Callable[[str], None] | None = None,
    ) -> RunDir:
        """A new run directory, claimed by this process and marked: ``explicit`` if given
        (must be new, empty, or a run of ecgcli's that never saved an epoch), else
        ``runs_dir/name``, with ``-2``, ``-3``... appended when that name is taken (a started,
        running or finished run, a file, or a folder holding files ecgcli did not write); then
        ``say`` gets one line that says where the run goes instead, and why.

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
            try:
                status = run.status()
                if status in ("finished", "resume"):
                    raise ConfigError(
                        f"run directory {path} is not empty (use --resume {path} to continue it, "
                        "or choose another --run-dir)"
                    )
                run._open(status)
            except BaseException:
                run.release()
                raise
            return run
        first: tuple[Path, str] | None = None
        k = 1
        while True:
            path = Path(runs_dir) / (name if k == 1 else f"{name}-{k}")
            k += 1
            run = cls(path)
            why = run._taken()
            if why is None:
                probe_writable(path, "the run directory")
                if not run.claim():
                    why = "another ecg process is running in it"
                else:
                    why = run._taken()  # again, now that no other process can start in it
                    if why is None:
                        run._open(run.status())
                        if first is not None and say is not None:
                            say(f"training into {path} because {first[0]} is taken ({first[1]})")
                        return run
                    run.release()
            if first is None:
                first = (path, why)

    def _taken(self) -> str | None:
        """Why automatic naming must pass this folder by (None: it may be used)."""
        if self.path.exists() and not self.path.is_dir():
            return "it is a file"
        status = self.status()
        if status == "finished":
            return "it holds a finished run"
        if status == "resume":
            return f"it holds a run with a saved epoch: --resume {self.path} continues it"
        if status == "restart" and not self.cleanable():
            return "it holds files ecgcli did not write"
        return None

    def _open(self, status: str) -> None:
        """Make a claimed ``new`` or ``restart`` folder ready for a run, and mark it ours."""
        if status == "restart":
            self.clear_unstarted()
        else:
            self.remove_temporaries()  # a killed writer's, e.g. of the marker itself
        self.mark()

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
