"""Every PTB-XL task through training, checkpoints, predict, compare and multiseed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ecgcli.cli.app import app
from ecgcli.data.ptbxl import load_ptbxl
from ecgcli.storage.checkpoint import load_classifier
from ecgcli.train.config import SupervisedConfig
from ecgcli.train.supervised import train_classifier

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def rhythm_run(synth_root: Path, session_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rhythm")
    cfg = SupervisedConfig(
        data_root=str(synth_root), cache_dir=str(session_cache), runs_dir=str(out), device="cpu",
        workers=1, label_fraction=1.0, epochs=2, batch_size=32, width=16, task="rhythm", seed=1,
    )  # fmt: skip
    return train_classifier(cfg).run_dir


def test_a_task_sizes_the_head_and_travels_in_the_checkpoint(rhythm_run: Path, synth_root: Path) -> None:
    names = list(load_ptbxl(synth_root, task="rhythm").class_names)
    assert "SR" in names and "NORM" not in names
    model, meta = load_classifier(rhythm_run / "model.safetensors")
    assert meta["class_names"] == names and meta["task"] == "rhythm"
    assert model(torch.zeros(2, 12, 1000)).shape == (2, len(names))
    metrics = json.loads((rhythm_run / "metrics.json").read_text())
    assert metrics["task"] == "rhythm" and set(metrics["test_tuned"]["per_class"]) == set(names)
    assert metrics["test_tuned"]["macro_auroc"] > 0.5


def test_predict_names_the_task_classes(rhythm_run: Path, synth_root: Path) -> None:
    record = next(iter(sorted((synth_root / "records100").rglob("*.hea")))).with_suffix("")
    res = runner.invoke(app, ["predict", str(record), "-c", str(rhythm_run / "model.safetensors"), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    probs = doc["predictions"][0]["probabilities"]
    assert "SR" in probs and "NORM" not in probs


def test_compare_refuses_runs_of_different_tasks(rhythm_run: Path, train_kwargs: dict) -> None:
    other = train_classifier(SupervisedConfig(**{**train_kwargs, "epochs": 1})).run_dir
    res = runner.invoke(app, ["compare", str(other), str(rhythm_run)])
    assert res.exit_code == 2
    assert "different tasks" in res.output and "rhythm" in res.output and "Traceback" not in res.output


def test_unknown_task_is_one_line_listing_the_tasks(synth_root: Path) -> None:
    res = runner.invoke(app, ["train", "supervised", "--task", "rythm", "--data-root", str(synth_root)])
    assert res.exit_code == 2 and "unknown task 'rythm'" in res.output and "rhythm" in res.output


def test_multiseed_trains_a_task(synth_root: Path, session_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "ms"
    res = runner.invoke(
        app,
        [
            "multiseed", "--task", "form", "-c", "bce+standard", "--seeds", "3", "--epochs", "1",
            "--batch-size", "32", "--width", "16", "--label-fraction", "1.0", "--data-root",
            str(synth_root), "--device", "cpu", "--workers", "1", "--out", str(out),
        ],
        env={"ECG_CACHE_DIR": str(session_cache)},
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "multiseed.json").read_text())
    assert doc["class_names"] == list(load_ptbxl(synth_root, task="form").class_names)
    assert doc["grid"]["configs"][0]["options"]["task"] == "form"
