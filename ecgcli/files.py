"""The one atomic write, the write probe, and JSON-safe values: every file ecgcli writes goes
through here, so a reader (or a killed process) sees the old file or the new one, never half.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ecgcli.errors import CheckpointError, ConfigError


def temp_path(path: Path) -> Path:
    """The temporary name ``path`` is written under before the rename: hidden, and tagged with
    this host and process id: unique among the processes of several machines that share a
    filesystem, and a leftover can be traced to a process that is gone."""
    return path.with_name(f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (a zombie or another user's counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_TEMPORARY = r"^\.(?P<name>.+)\.(?:tmp|old)-(?:(?P<host>.+)-)?(?P<pid>\d+)$"


def is_stale_temporary(path: Path) -> bool:
    """Whether ``path`` is a ``.NAME.tmp-HOST-PID`` (or ``.NAME.old-PID``) that a process of
    this host which is gone left: see :func:`remove_stale_temporaries`."""
    import re

    m = re.match(_TEMPORARY, Path(path).name)
    return m is not None and m["host"] in (None, socket.gethostname()) and not pid_alive(int(m["pid"]))


def remove_stale_temporaries(folder: Path, stem: str | None = None) -> list[Path]:
    """Remove ``.NAME.tmp-HOST-PID`` (and ``.NAME.old-PID``) files and folders in ``folder``
    written on this host by a process that is gone: what a killed writer leaves behind.
    ``stem`` limits it to one NAME. Temporaries of live processes (a concurrent writer) and of
    other hosts (their processes cannot be seen from here) are kept. Returns what was removed."""
    import re
    import shutil

    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = re.compile(_TEMPORARY)
    here = socket.gethostname()
    removed = []
    for entry in folder.iterdir():
        m = pattern.match(entry.name)
        if m is None or (stem is not None and m["name"] != stem) or m["host"] not in (None, here):
            continue
        if pid_alive(int(m["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler such as Slurm stopping the job) as :func:`stop_like_ctrl_c` raises
    it: a :class:`KeyboardInterrupt`, so every place that handles Ctrl-C (finish the write, keep
    the saved epoch, say how to resume) handles it too; the CLI then exits 143, not 130."""


#: A second signal this soon after the first is held, not raised: the first one's way out
#: (a write finishing, the resume hint) is not cut short by an impatient second Ctrl-C.
STOP_GRACE_S = 5.0
_STOPPING: dict[str, Any] = {"at": None, "signal": None}


def stop_like_ctrl_c() -> None:
    """Make SIGINT and SIGTERM raise (:class:`KeyboardInterrupt`, :class:`Terminated`) in the
    main thread; a further signal within :data:`STOP_GRACE_S` of the first is ignored. The CLI
    calls this once at start; library callers keep Python's own handlers."""

    def handler(signum: int, frame: Any) -> None:
        now = time.monotonic()
        if _STOPPING["at"] is not None and now - _STOPPING["at"] < STOP_GRACE_S:
            return
        _STOPPING["at"], _STOPPING["signal"] = now, signum
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def stopped_by() -> int | None:
    """The signal (``signal.SIGINT`` or ``signal.SIGTERM``) that :func:`stop_like_ctrl_c`'s
    handler raised for, None when none came."""
    return _STOPPING["signal"]


_HELD = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def ctrl_c_deferred() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) or SIGTERM that arrives inside the block until the block is done,
    then raise it as its handler would (:class:`KeyboardInterrupt`, or :class:`Terminated` under
    the CLI): a write that was started is finished (or, on an error, cleaned up) first, so a
    signal never leaves a temporary or half a file. A second one is held too; SIGKILL cannot
    be, which is what the temporaries' process ids are for. Outside the main thread (where
    handlers cannot be set) the block runs unprotected."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous: dict[int, Any] = {}
    try:
        for signum in _HELD:
            previous[signum] = signal.signal(signum, lambda signum, frame: caught.append(signum))
    except ValueError:  # pragma: no cover - an embedded interpreter without signal support
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        yield
        return
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    for signum in dict.fromkeys(caught):  # the first one that is not ignored, as it would have
        handler = previous[signum]
        if handler is signal.SIG_IGN or handler is None:
            continue
        if callable(handler):
            handler(signum, None)  # Python's default SIGINT handler raises KeyboardInterrupt
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt
        else:
            signal.raise_signal(signum)  # SIGTERM's default: the process ends, as it would have


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary beside ``path``, fsync it, then rename it over ``path``.
    A SIGKILL leaves at most the temporary (``.NAME.tmp-PID``, removed by the next command
    that finds it, see :func:`remove_stale_temporaries`); Ctrl-C waits for the rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    with ctrl_c_deferred():
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def write_text_atomic(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` of UTF-8 text; an unwritable path is a :class:`ConfigError`."""
    try:
        atomic_write_bytes(Path(path), text.encode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON (indented, numpy values as Python ones) atomically."""
    atomic_write_bytes(Path(path), (json.dumps(obj, indent=2, default=_json_default) + "\n").encode())


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def json_safe(value: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python, recursively (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def check_format_version(value: Any, expected: int, path: Path, what: str) -> None:
    """Refuse a format version other than the integer ``expected``, naming the type when the
    value is right but its type is not (``"1"`` in a hand-edited sidecar), because "version 1
    is not supported (this ecgcli reads version 1)" would contradict itself."""
    if isinstance(value, int) and not isinstance(value, bool) and value == expected:
        return
    if str(value) == str(expected) or (isinstance(value, (float, bool)) and value == expected):
        shown = {str: f"the string {value!r}", float: f"the float {value!r}", bool: json.dumps(value)}
        raise CheckpointError(
            f"{path}: {what} format_version must be the integer {expected}, got "
            f"{shown.get(type(value), repr(value))} (was the file edited?)"
        )
    raise CheckpointError(
        f"{path}: {what} format version {value!r} is not supported (this ecgcli reads version {expected})"
    )


def probe_writable(folder: Path, what: str) -> None:
    """Create ``folder`` and write and remove a probe file in it, so a run fails before its
    work, not after; ``what`` names the folder in the error (``--out``, ``the run directory``)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write {what} {folder}: {exc.strerror or exc}") from None


def refuse_replacing(
    path: Path, ours: Callable[[Path], bool], force: bool, what: str, flag: str = "--out"
) -> None:
    """Refuse (:class:`ConfigError`) to write over an existing file at ``path`` unless ecgcli
    wrote it (``ours(path)``: an earlier export, a checkpoint with its sidecar) or ``force``:
    a typo in ``--out`` must not silently replace a file the user keeps. ``what`` says what
    an acceptable file would have been, for the message."""
    path = Path(path)
    if force or not path.exists() or path.is_dir() or ours(path):
        return
    raise ConfigError(
        f"{flag} {path} exists and is not {what}; pass --force to replace it, or choose another path"
    )
