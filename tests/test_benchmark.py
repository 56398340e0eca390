"""ecg benchmark: encoders x tasks in one resumable command, and its leaderboard."""

from __future__ import annotations

import json
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
    assert cell.epochs == (1,)
    md = (out / "leaderboard.md").read_text()
    assert "| fcn_wang |" in md and "0.925±0.006" in md and "(1 seed, 1 ep) / 0.925±0.006" in md
    assert "Fold-10 macro AUROC, 100% of the labels" in md
    # the 2026 anchors under ours, with their source
    assert "| S4, supervised (2026, published) | 0.9320 [0.9255, 0.9384] | 0.9564 [0.8795, 0.9637] |" in md
    assert "| best fine-tuned foundation model (2026, published) | 0.9347 [0.9286, 0.9410] ECGFounder |" in md
    assert "arXiv:2509.25095" in md
    for task in ("superdiagnostic", "rhythm"):
        assert (out / task / "multiseed.json").is_file()
    again = runner.invoke(app, [*args, "--show"], env={**env, "COLUMNS": "400"})
    assert again.exit_code == 0 and (out / "leaderboard.md").read_text() == md
    assert "S4, supervised (2026, published)" in again.output and "(1 seed, 1 ep)" in again.output
    # an ensemble of the task's runs written under ensembles/ is a row of its own
    members = [str(p) for p in sorted((out / "superdiagnostic").glob("*/lf1/seed*"))]
    ens = out / "superdiagnostic" / "ensembles" / "both"
    made = runner.invoke(app, ["ensemble", *members, "--out", str(ens)], env=env)
    assert made.exit_code == 0 and len(members) == 2, made.output
    table = leaderboard(out, ["cnn1d", "fcn_wang"], ["superdiagnostic", "rhythm"])
    row = table["ensemble both"]
    metrics = json.loads((ens / "metrics.json").read_text())
    assert row["superdiagnostic"].auroc == metrics["test"]["macro_auroc"] and row["rhythm"].auroc is None
    shown = runner.invoke(app, [*args, "--show"], env={**env, "COLUMNS": "400"})
    assert shown.exit_code == 0 and "ensemble both" in shown.output and "(ensemble of 2)" in shown.output


def test_anchors_are_the_2026_benchmark_values() -> None:
    from ecgcli.experiments.benchmark import anchors

    a = anchors()
    assert {t: x.auroc for t, x in a["s4_supervised"].items()} == {
        "all": 0.9411, "diagnostic": 0.9428, "subdiagnostic": 0.9379,
        "superdiagnostic": 0.9320, "form": 0.9187, "rhythm": 0.9564,
    }  # fmt: skip
    best = a["best_finetuned"]
    assert (best["all"].model, best["all"].auroc) == ("ECG-CPC", 0.9493)
    assert (best["superdiagnostic"].model, best["superdiagnostic"].auroc) == ("ECGFounder", 0.9347)
    assert all(x.ci_low <= x.auroc <= x.ci_high for row in a.values() for x in row.values())


@pytest.mark.parametrize(
    ("epochs", "n", "text"),
    [((50,), 1, "(1 seed, 50 ep)"), ((10, 50, 50), 3, "(3 seeds, 10-50 ep)"), ((), 2, "(2 seeds)")],
)
def test_a_cell_says_its_seeds_and_epochs(epochs: tuple, n: int, text: str) -> None:
    from ecgcli.experiments.benchmark import Cell, fmt_cell

    cell = Cell(0.9301, 0.92, 0.94, n, 0.928, 0.007, epochs)
    assert fmt_cell(cell) == f"0.930 [0.920, 0.940] {text} / 0.928±0.007"


def test_no_anchors_below_all_labels() -> None:
    from ecgcli.experiments.benchmark import anchor_rows

    assert anchor_rows(["all"], 0.1) == []
    assert [label for label, _ in anchor_rows(["all"], 1.0)][0].startswith("S4, supervised")


def test_benchmark_refuses_unknown_names(synth_root: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["benchmark", "--encoders", "resnet", "--data-root", str(synth_root)])
    assert res.exit_code == 2 and "unknown encoder 'resnet'" in res.output and "resnet1d_wang" in res.output
    res = runner.invoke(app, ["benchmark", "--tasks", "rythm", "--data-root", str(synth_root)])
    assert res.exit_code == 2 and "unknown task 'rythm'" in res.output
