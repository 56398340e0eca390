"""`ecg quickstart`, shortened: every step runs, the final table compares SSL and supervised,
and a second run reuses everything."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ecgcli.cli.app import app

runner = CliRunner()


def test_quickstart_runs_every_step_then_reuses_them(tmp_path: Path) -> None:
    out = tmp_path / "qs"
    args = [
        "quickstart",
        "--out",
        str(out),
        "--records",
        "120",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--workers",
        "1",
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    text = first.stdout
    for step in ("1/7", "2/7", "3/7", "4/7", "5/7", "6/7", "7/7"):
        assert step in text
    assert "clean: 120 records checked" in text
    assert "focal+oversample" in text and "finetune:simclr" in text  # side by side
    assert "Δ F1" in text and "above threshold" in text
    for run in ("supervised", "simclr", "simclr-finetune"):
        assert (out / "runs" / run / "model.safetensors").is_file()
    assert (out / "compare" / "comparison.md").read_text().count("|") > 10
    meta = json.loads((out / "runs" / "simclr-finetune" / "model.json").read_text())
    assert meta["pretrained"]["method"] == "simclr"

    mtime = (out / "runs" / "supervised" / "model.safetensors").stat().st_mtime_ns
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "reusing" in second.stdout and second.stdout.count("reusing the finished run") == 3
    assert (out / "runs" / "supervised" / "model.safetensors").stat().st_mtime_ns == mtime
