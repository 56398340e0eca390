"""Run directories: an existing file is a usage error, a run that never saved an epoch is
restarted in place, and a folder another live process is running in is never taken."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecgcli.errors import ConfigError
from ecgcli.storage.runs import RunDir


@pytest.fixture()
def release() -> Iterator[list[RunDir]]:
    """Run directories a test claimed, released at its end (claims last as long as the process)."""
    held: list[RunDir] = []
    yield held
    for run in held:
        run.release()


def _unstarted(path: Path) -> None:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "train.log").write_text("")
    (path / "state").mkdir()
    (path / "state" / ".last.safetensors.tmp-999999999").write_bytes(b"half")


def _finished(path: Path) -> None:
    path.mkdir(parents=True)
    for name in ("config.json", "metrics.json", "model.safetensors"):
        (path / name).write_text("{}")


def test_run_dir_naming_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match=r"^--run-dir .*/f is a file, not a directory; choose another"):
        RunDir.create(tmp_path, "x", tmp_path / "f")


def test_unstarted_run_is_restarted_in_place(tmp_path: Path, release: list[RunDir]) -> None:
    _unstarted(tmp_path / "r")
    run = RunDir.create(tmp_path, "x", tmp_path / "r")
    release.append(run)
    assert run.path == tmp_path / "r" and list(run.path.iterdir()) == []
    _unstarted(tmp_path / "runs" / "sup-s42")
    auto = RunDir.create(tmp_path / "runs", "sup-s42")
    release.append(auto)
    assert auto.path == tmp_path / "runs" / "sup-s42" and list(auto.path.iterdir()) == []


def test_started_or_finished_runs_are_never_reused(tmp_path: Path, release: list[RunDir]) -> None:
    _finished(tmp_path / "runs" / "sup")
    (tmp_path / "runs" / "sup-2").write_text("a file")
    run = RunDir.create(tmp_path / "runs", "sup")
    release.append(run)
    assert run.path.name == "sup-3"
    with pytest.raises(ConfigError, match="is not empty .*--resume"):
        RunDir.create(tmp_path, "x", tmp_path / "runs" / "sup")


def test_a_folder_another_process_runs_in_is_not_taken(tmp_path: Path, release: list[RunDir]) -> None:
    _unstarted(tmp_path / "runs" / "sup")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
            str(tmp_path / "runs" / "sup"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match="is in use by another running ecg process"):
            RunDir.create(tmp_path, "x", tmp_path / "runs" / "sup")
        run = RunDir.create(tmp_path / "runs", "sup")
        release.append(run)
        assert run.path.name == "sup-2"
        assert (tmp_path / "runs" / "sup" / "config.json").is_file()  # the live run's files kept
    finally:
        holder.kill()
        holder.wait()


def test_resume_without_a_saved_epoch_says_how_to_restart(tmp_path: Path) -> None:
    _unstarted(tmp_path / "r")
    with pytest.raises(ConfigError, match="no saved epoch to resume from; run the same command without"):
        RunDir.for_resume(tmp_path / "r")
