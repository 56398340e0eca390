"""ecg benchmark: encoders x tasks in one resumable command, and its leaderboard."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecgcli.cli.app import app
from ecgcli.experiments.benchmark import leaderboard, published

runner = CliRunner()


def test_published_values_are_the_papers() -> None:
    pub = published()
    assert pub[("resnet1d_wang", "superdiagnostic")] == (0.930, 0.005)
    assert pub[("xresnet1d101", "rhythm")] == (0.957, 0.019)
    assert len({t for _, t in pub}) == 6 and len(pub) == 36


@pytest.mark.usefixtures("one_torch_thread")
def test_benchmark_trains_the_grid_then_reuses_it(
    synth_root: Path, session_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bench"
    args = [
        "benchmark", "--encoders", "cnn1d,fcn_wang", "--tasks", "superdiagnostic,rhythm",
        "--epochs", "1", "--batch-size", "32", "--width", "8", "--data-root", str(synth_root),
        "--device", "cpu", "--workers", "1", "--out", str(out),
    ]  # fmt: skip
    env = {"ECG_CACHE_DIR": str(session_cache)}
    res = runner.invoke(app, args, env=env)
    assert res.exit_code == 0, res.output
    table = leaderboard(out, ["cnn1d", "fcn_wang"], ["superdiagnostic", "rhythm"])
    cell = table["fcn_wang"]["superdiagnostic"]
    assert cell.n_seeds == 1 and 0.0 < cell.auroc < 1.0 and cell.ci_low <= cell.auroc <= cell.ci_high
    assert cell.published == 0.925 and table["cnn1d"]["rhythm"].published is None
    md = (out / "leaderboard.md").read_text()
    assert "| fcn_wang |" in md and "0.925±0.006" in md
    assert "Fold-10 macro AUROC, 100% of the labels" in md
    for task in ("superdiagnostic", "rhythm"):
        assert (out / task / "multiseed.json").is_file()
    again = runner.invoke(app, [*args, "--show"], env=env)
    assert again.exit_code == 0 and (out / "leaderboard.md").read_text() == md


def test_benchmark_refuses_unknown_names(synth_root: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["benchmark", "--encoders", "resnet", "--data-root", str(synth_root)])
    assert res.exit_code == 2 and "unknown encoder 'resnet'" in res.output and "resnet1d_wang" in res.output
    res = runner.invoke(app, ["benchmark", "--tasks", "rythm", "--data-root", str(synth_root)])
    assert res.exit_code == 2 and "unknown task 'rythm'" in res.output
