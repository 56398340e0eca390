"""ecg multiseed --shard K/N: assignment, claims that survive a killed process, one shared --out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_multiseed import canned, common, grid_for  # noqa: F401  (canned is a fixture)
from typer.testing import CliRunner

from ecgcli.cli.app import app
from ecgcli.errors import ConfigError
from ecgcli.experiments.grid import build_grid
from ecgcli.experiments.results import load_results
from ecgcli.experiments.runner import CellSkipped, run_multiseed
from ecgcli.experiments.shards import Shard, assign, cell_cost, claim

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_shard_parsing() -> None:
    assert Shard.parse("2/4") == Shard(2, 4) and str(Shard.parse(" 1 / 1 ")) == "1/1"
    for bad, message in (
        ("3/2", "K must be between 1 and N"),
        ("0/2", "between 1 and N"),
        ("a/b", "K/N"),
        ("1/0", r"^--shard 1/0: N must be at least 1 \(the number of shares\)$"),
    ):
        with pytest.raises(ConfigError, match=message):
            Shard.parse(bad)


def test_assignment_covers_every_cell_once_and_balances_cost(train_kwargs: dict, tmp_path: Path) -> None:
    grid = build_grid(
        ["bce+standard", "focal+oversample[epochs=6]"],
        (1, 2, 3),
        (0.05, 0.25, 1.0),
        common(train_kwargs),
        ["width=16"],
        tmp_path / "ms",
    )
    cells = grid.cells()
    for n in (1, 2, 3, 5):
        shares = assign(grid, n)
        assert shares == assign(grid, n)  # deterministic
        flat = [c for share in shares for c in share]
        assert sorted(c.key for c in flat) == sorted(c.key for c in cells)  # each cell exactly once
        loads = [sum(cell_cost(grid, c) for c in share) for share in shares]
        assert max(loads) - min(loads) <= max(cell_cost(grid, c) for c in cells) + 1e-9
    # cost follows epochs x label fraction: the 6-epoch full-label cells are the dearest
    dearest = max(cells, key=lambda c: cell_cost(grid, c))
    assert dearest.spec.name == "focal+oversample[epochs=6]" and dearest.label_fraction == 1.0


_HOLD = """
import sys, time
from pathlib import Path
from ecgcli.experiments.grid import build_grid
from ecgcli.experiments.shards import claim
grid = build_grid(["bce+standard"], [42], [1.0], {}, [], Path(sys.argv[1]), check_checkpoints=False)
with claim(grid.out, grid.cells()[0]) as owner:
    assert owner is None
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_claim_is_exclusive_and_a_dead_owners_claim_is_taken_over(tmp_path: Path) -> None:
    out = tmp_path / "ms"
    grid = build_grid(["bce+standard"], [42], [1.0], {}, [], out, check_checkpoints=False)
    cell = grid.cells()[0]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(out)], env=env, stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with claim(out, cell) as owner:
            assert owner == f"{os.uname().nodename} pid {holder.pid}"  # a live owner: hands off
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        with claim(out, cell) as owner:
            assert owner is None  # the dead process's claim is free
    finally:
        holder.kill()
        holder.wait()


def test_a_claimed_cell_is_skipped_not_trained_twice(
    train_kwargs: dict,
    tmp_path: Path,
    canned: list[str],  # noqa: F811
) -> None:
    out = tmp_path / "ms"
    grid = grid_for(train_kwargs, out, seeds=(42,))
    first = grid.cells()[0]
    events: list = []
    import threading

    held, release = threading.Event(), threading.Event()

    def hold() -> None:  # another "process": a second open file description holds the lock
        with claim(out, first):
            held.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(10)
    try:
        doc = run_multiseed(grid, events.append)
    finally:
        release.set()
        t.join()
    assert canned == ["focal+oversample 42"]
    assert [e.key for e in events if isinstance(e, CellSkipped)] == [first.key]
    assert doc["cells"] == {"total": 2, "finished": 1} and not doc["complete"]
    doc = run_multiseed(grid, events.append, train=False)  # --collect: trains nothing
    assert canned == ["focal+oversample 42"] and not doc["complete"]
    assert run_multiseed(grid)["complete"] and canned[-1] == "bce+standard 42"


def test_shard_bad_input_is_one_line(
    synth_root: Path,
    train_kwargs: dict,
    tmp_path: Path,
    canned: list[str],  # noqa: F811
) -> None:
    out = tmp_path / "ms"
    base = ["multiseed", "--data-root", str(synth_root), "--device", "cpu", "--out", str(out)]
    base += ["-c", "bce+standard", "--label-fraction", "1", "--epochs", "2", "--batch-size", "32"]
    result = runner.invoke(app, [*base, "--seeds", "42", "--shard", "3/2"])
    assert result.exit_code == 2 and "--shard 3/2: K must be between 1 and N" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = runner.invoke(app, [*base, "--seeds", "42", "--shard", "1/2", "--set", "width=16"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, [*base, "--seeds", "42,52", "--shard", "2/2", "--set", "width=16"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "was made by a different grid (other seeds)" in lines[0], result.stderr


# ------------------------------------------------------------------ three shards, one killed

GRID = ["-c", "bce+standard", "-c", "focal+oversample", "--seeds", "42,52,62", "--label-fraction", "1"]
GRID += ["--epochs", "2", "--batch-size", "32", "--signal-length", "250", "--set", "width=16"]


def _multiseed(root: Path, cache: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "ECG_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "ecgcli", "multiseed", *GRID, "--data-root", str(root), "--device", "cpu"]
    return subprocess.Popen(
        [*cmd, "--out", str(out), *extra],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]


def _scores(out: Path) -> dict:
    doc = load_results(out)
    assert doc["complete"]
    return {
        (r["config"], run["seed"]): (run["test"], run["val"], run["bootstrap_auroc"])
        for r in doc["results"]
        for run in r["runs"]
    }


def test_three_shards_one_killed_equal_a_serial_run(
    synth_root: Path, session_cache: Path, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    procs = {k: _multiseed(synth_root, session_cache, shared, "--shard", f"{k}/3") for k in (1, 2, 3)}
    # kill shard 2 (SIGKILL: no cleanup) while it trains one of its cells
    deadline = time.monotonic() + 180
    victim = procs[2]
    while time.monotonic() < deadline:
        owners = (
            [json.loads(p.read_text()) for p in (shared / ".claims").glob("*.owner")]
            if (shared / ".claims").is_dir()
            else []
        )
        if any(o["pid"] == victim.pid for o in owners) or victim.poll() is not None:
            break
        time.sleep(0.05)
    assert victim.poll() is None, "shard 2 ended before it could be killed"
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    procs[2] = _multiseed(synth_root, session_cache, shared, "--shard", "2/3")  # restarted
    serial = _multiseed(synth_root, session_cache, tmp_path / "serial")
    for proc in [*procs.values(), serial]:
        _finish(proc)

    assert _scores(shared) == _scores(tmp_path / "serial")
    for log in shared.glob("*/lf1/seed*/train.log"):  # every cell trained its last epoch once
        assert log.read_text().count("epoch 2/2") == 1, log
    assert len(list(shared.glob("*/lf1/seed*/metrics.json"))) == 6


def test_a_shard_that_ends_before_the_baseline_ran_reports_and_exits_0(
    synth_root: Path,
    tmp_path: Path,
    canned: list[str],  # noqa: F811
) -> None:
    out = tmp_path / "ms"
    args = [
        "multiseed",
        "--data-root",
        str(synth_root),
        "--device",
        "cpu",
        "--out",
        str(out),
        "--seeds",
        "42",
    ]
    args += ["-c", "bce+standard", "-c", "focal+oversample", "--label-fraction", "1", "--set", "width=16"]
    result = runner.invoke(app, [*args, "--shard", "2/2"])
    assert result.exit_code == 0, result.output
    assert canned == ["focal+oversample 42"]
    assert "1 of 2 runs finished so far (the other shards train the rest)" in result.stdout
    result = runner.invoke(app, [*args, "--shard", "1/2"])
    assert result.exit_code == 0 and canned[-1] == "bce+standard 42" and "so far" not in result.stdout
    assert load_results(out)["complete"]
