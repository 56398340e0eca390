"""Run directories: an existing file is a usage error, a run that never saved an epoch is
restarted in place, a folder another live process is running in is never taken, and nothing
ecgcli did not write is ever deleted (issue 31 A, B)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecgcli.errors import ConfigError
from ecgcli.storage.runs import MARKER, RunDir


@pytest.fixture()
def release() -> Iterator[list[RunDir]]:
    """Run directories a test claimed, released at its end (claims last as long as the process)."""
    held: list[RunDir] = []
    yield held
    for run in held:
        run.release()


def _unstarted(path: Path) -> None:
    """What a run that never saved an epoch leaves, in a folder ecgcli made (its marker)."""
    path.mkdir(parents=True)
    (path / MARKER).write_text("{}")
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
    assert run.path == tmp_path / "r" and [p.name for p in run.path.iterdir()] == [MARKER]
    _unstarted(tmp_path / "runs" / "sup-s42")
    auto = RunDir.create(tmp_path / "runs", "sup-s42")
    release.append(auto)
    assert auto.path == tmp_path / "runs" / "sup-s42" and [p.name for p in auto.path.iterdir()] == [MARKER]


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


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def _users_folder(path: Path) -> list[str]:
    """Issue 31 A's folder: a run's file names among the user's own, and no ecgcli marker."""
    (path / "state").mkdir(parents=True)
    (path / "notes.txt").write_text("mine")
    (path / "config.json").write_text("{}")
    (path / "train.log").write_text("")
    (path / "state" / "keep.txt").write_text("mine")
    return _tree(path)


def test_a_folder_ecgcli_did_not_make_is_refused_untouched(tmp_path: Path) -> None:
    before = _users_folder(tmp_path / "myfiles2")
    with pytest.raises(
        ConfigError, match=r"myfiles2 holds files ecgcli did not write \(config.json, notes.txt"
    ):
        RunDir.create(tmp_path, "x", tmp_path / "myfiles2")
    assert _tree(tmp_path / "myfiles2") == before


def test_unexpected_files_in_a_marked_run_are_refused_before_anything_is_deleted(tmp_path: Path) -> None:
    _unstarted(tmp_path / "r")
    (tmp_path / "r" / "notes.txt").write_text("mine")
    (tmp_path / "r" / "state" / "sub").mkdir()
    (tmp_path / "r" / "state" / "sub" / "important.db").write_text("mine")
    before = _tree(tmp_path / "r")
    with pytest.raises(ConfigError, match=r"unexpected files \(notes.txt, state/sub/important.db\)"):
        RunDir.create(tmp_path, "x", tmp_path / "r")
    assert _tree(tmp_path / "r") == before


def test_a_project_folder_as_run_dir_keeps_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = tmp_path / "proj"
    (proj / "state" / "sub").mkdir(parents=True)
    (proj / "state" / "sub" / "important.db").write_text("data")
    (proj / "config.json").write_text("{}")
    before = _tree(proj)
    monkeypatch.chdir(proj)
    with pytest.raises(ConfigError, match="did not write"):
        RunDir.create(tmp_path / "runs", "x", Path("."))
    assert _tree(proj) == before


def test_automatic_naming_moves_on_without_deleting_and_says_so(
    tmp_path: Path, release: list[RunDir]
) -> None:
    rd = tmp_path / "rd"
    (rd / "exp1" / "state").mkdir(parents=True)
    for name in ("config.json", "state/x.bin", "notes.md"):
        (rd / "exp1" / name).write_text("mine")
    before = _tree(rd / "exp1")
    said: list[str] = []
    run = RunDir.create(rd, "exp1", say=said.append)
    release.append(run)
    assert run.path == rd / "exp1-2"
    assert _tree(rd / "exp1") == before
    assert said == [
        f"training into {rd / 'exp1-2'} because {rd / 'exp1'} is taken (it holds files ecgcli did not write)"
    ]


def test_automatic_naming_reuses_its_own_unstarted_run_quietly(tmp_path: Path, release: list[RunDir]) -> None:
    _unstarted(tmp_path / "rd" / "exp1")
    said: list[str] = []
    run = RunDir.create(tmp_path / "rd", "exp1", say=said.append)
    release.append(run)
    assert run.path == tmp_path / "rd" / "exp1" and said == []
    assert [p.name for p in run.path.iterdir()] == [MARKER]


def test_a_new_run_folder_is_marked_and_still_counts_as_new(tmp_path: Path, release: list[RunDir]) -> None:
    run = RunDir.create(tmp_path / "runs", "a")
    release.append(run)
    assert (run.path / MARKER).is_file() and run.status() == "new"
