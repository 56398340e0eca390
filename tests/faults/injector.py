"""Fault injection for the crash-consistency suite: run a command and send it a signal the
moment a file matching a glob appears (optionally only after an output line matched), the way
``../shared/tools/signal_at.py`` does, but self-contained so CI needs nothing beside the repo.

Kill points are found by *watching for the temporaries* every write goes through
(``.NAME.tmp-PID``), not by timing. To make each write's window wide enough to be seen
reliably on a loaded machine, commands run under :data:`SLOW_WRITES`: ``os.fsync`` (called by
the one atomic write, after the data and before the rename) sleeps ``FAULT_WRITE_DELAY``
seconds, so a temporary stays on disk, complete but not yet renamed, for that long.
"""

from __future__ import annotations

import glob
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

#: A Python prelude that slows every fsync, then runs the ``ecg`` CLI with the given arguments.
SLOW_WRITES = (
    "import os, sys, time\n"
    "_fsync = os.fsync\n"
    "def _slow(fd):\n"
    "    _fsync(fd)\n"
    "    time.sleep(float(os.environ.get('FAULT_WRITE_DELAY', '0.25')))\n"
    "os.fsync = _slow\n"
    "sys.argv[0] = 'ecg'\n"
    "from ecgcli.cli.app import main\n"
    "main()\n"
)


def ecg(*args: str, patch: str = "") -> list[str]:
    """The command line of ``ecg ARGS`` with slow writes (see :data:`SLOW_WRITES`); ``patch``
    is Python run before the CLI starts (e.g. to widen a window between two steps)."""
    prelude = SLOW_WRITES.replace(
        "from ecgcli.cli.app import main\n", patch + "from ecgcli.cli.app import main\n"
    )
    return [sys.executable, "-c", prelude, *args]


@dataclass
class Outcome:
    returncode: int
    output: str  # stdout and stderr, interleaved
    fired: str | None  # the path that triggered the signal, None when it never appeared

    @property
    def lines(self) -> list[str]:
        return [line for line in self.output.splitlines() if line.strip()]


def run(
    cmd: list[str],
    *,
    watch: str | None = None,
    sig: signal.Signals = signal.SIGKILL,
    after: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    again_after: float | None = None,
    group: bool = False,
) -> Outcome:
    """Run ``cmd``; once a line matching ``after`` was printed (at once without it), send
    ``sig`` as soon as a path matching the glob ``watch`` exists (and once more
    ``again_after`` seconds later: an impatient second Ctrl-C). Without ``watch``, just run.
    ``group``: the command runs in a process group of its own and the signal goes to the whole
    group, children included, as a terminal's Ctrl-C, Slurm's ``scancel`` or ``pkill -f`` do."""
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=group,
    )

    def send(sig: signal.Signals) -> None:
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)

    armed = threading.Event()
    if after is None:
        armed.set()
    fired: list[str] = []
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if after is not None and re.search(after, line):
                armed.set()

    def watcher() -> None:
        while proc.poll() is None:
            if armed.is_set():
                hits = glob.glob(watch)
                if hits:
                    send(sig)
                    fired.append(hits[0])
                    if again_after is not None:
                        time.sleep(again_after)
                        if proc.poll() is None:
                            send(sig)
                    return
            time.sleep(0.0005)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if watch is not None:
        threading.Thread(target=watcher, daemon=True).start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait()
        raise
    reader.join(10)
    return Outcome(proc.returncode, "".join(lines), fired[0] if fired else None)


def temporaries(*folders: Path) -> list[str]:
    """Every ``.NAME.tmp-[HOST-]PID`` / ``.NAME.old-PID`` file or folder under ``folders``."""
    pattern = re.compile(r"^\.(.+)\.(tmp|old)-(.+-)?\d+$")
    found = []
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            found += [os.path.join(root, n) for n in dirs + files if pattern.match(n)]
    return sorted(found)


def killed(outcome: Outcome, sig: signal.Signals) -> bool:
    """Whether the process ended because of ``sig`` (SIGKILL: -9; SIGINT: our exit 130;
    SIGTERM: our exit 143)."""
    return outcome.returncode == {signal.SIGKILL: -9, signal.SIGTERM: 143}.get(sig, 130)
