"""Supervised training end to end on a synthetic PTB-XL: learns, reproduces, resumes, refuses."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ecgcli.cli.app import app
from ecgcli.data.normalize import LeadNorm
from ecgcli.errors import ConfigError, Interrupted, TrainingError
from ecgcli.events import EpochDone, EpochStarted
from ecgcli.scoring.evaluate import predict_proba
from ecgcli.storage.checkpoint import load_classifier
from ecgcli.train.config import SupervisedConfig
from ecgcli.train.data import load_training_data, signals_tensor
from ecgcli.train.supervised import resume_classifier, train_classifier

runner = CliRunner()


def test_learns_and_writes_a_complete_run(train_kwargs: dict, tmp_path: Path) -> None:
    events: list = []
    cfg = SupervisedConfig(
        **{**train_kwargs, "epochs": 4, "width": 32, "out": str(tmp_path / "o/m.safetensors")}
    )
    result = train_classifier(cfg, events.append)
    test = result.evaluation.test
    assert test.macro_auroc > 0.75, test.macro_auroc  # chance is 0.5
    assert [e.epoch for e in events if isinstance(e, EpochDone)] == [1, 2, 3, 4]
    run = result.run_dir
    for name in (
        "config.json",
        "metrics.json",
        "model.safetensors",
        "model.json",
        "train.log",
        "predictions.npz",
    ):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["history"]) == 4 and metrics["best_epoch"] in (1, 2, 3, 4)
    assert metrics["test"]["n"] == result.evaluation.test.n and metrics["val"]["n"] > 0
    assert set(metrics["test_tuned"]["per_class"]) == {"NORM", "MI", "STTC", "HYP", "CD"}
    side = json.loads((run / "model.json").read_text())
    assert side["class_names"] == ["NORM", "MI", "STTC", "HYP", "CD"]
    assert len(side["normalisation"]["mean"]) == 12 and len(side["thresholds"]) == 5
    assert side["data"]["cache_id"] == metrics["data"]["cache_id"]
    assert "epoch 4/4" in (run / "train.log").read_text()
    # the checkpoint, reloaded from its files alone, reproduces the run's fold-10 probabilities
    model, meta = load_classifier(tmp_path / "o/m.safetensors")
    data = load_training_data(cfg, cfg.label_fraction)
    x_test = signals_tensor(data.store, data.split.test, LeadNorm.from_dict(meta["normalisation"]))
    again = predict_proba(model, x_test, torch.device("cpu"))
    with np.load(run / "predictions.npz", allow_pickle=False) as preds:
        assert np.array_equal(preds["test_ecg_id"], data.dataset.ecg_ids[data.split.test])
        saved = preds["test_prob"]
    assert saved.shape == again.shape == (test.n, 5)
    assert np.abs(again - saved).max() <= 1e-6


def test_best_epoch_is_a_copy_not_the_last_weights(train_kwargs: dict) -> None:
    """The old system saved a state_dict reference: the 'best' model was the last one."""
    result = train_classifier(SupervisedConfig(**{**train_kwargs, "epochs": 3, "select_metric": "auroc"}))
    hist = json.loads((result.run_dir / "metrics.json").read_text())["history"]
    best = max(hist, key=lambda h: h["auroc"])
    assert result.metrics["best_epoch"] == best["epoch"]
    assert result.evaluation.val.macro_auroc == pytest.approx(best["auroc"], abs=1e-9)


@pytest.mark.parametrize(
    ("loss", "strategy"),
    [
        ("focal", "stratified"),
        ("bce", "standard"),
        ("weighted", "oversample"),
        ("class_balanced", "standard"),
    ],
)
def test_every_loss_and_strategy_runs(train_kwargs: dict, loss: str, strategy: str) -> None:
    cfg = SupervisedConfig(**{**train_kwargs, "epochs": 1, "loss": loss, "balance_strategy": strategy})
    result = train_classifier(cfg)
    assert np.isfinite(result.metrics["history"][0]["train_loss"])


def test_same_seed_same_numbers(train_kwargs: dict) -> None:
    a = train_classifier(SupervisedConfig(**train_kwargs, name="a")).metrics
    b = train_classifier(SupervisedConfig(**train_kwargs, name="b")).metrics
    for h1, h2 in zip(a["history"], b["history"], strict=True):
        assert h1["train_loss"] == h2["train_loss"] and h1["auroc"] == h2["auroc"]
    assert a["test"]["macro_auroc"] == b["test"]["macro_auroc"]


def test_interrupt_then_resume_matches_an_uninterrupted_run(train_kwargs: dict) -> None:
    kwargs = {**train_kwargs, "epochs": 2}
    full = train_classifier(SupervisedConfig(**kwargs, name="full")).metrics

    def stop_in_epoch_2(event: object) -> None:
        if isinstance(event, EpochStarted) and event.epoch == 1:
            time.sleep(2.0)  # the first session is long: its time must not vanish on resume
        if isinstance(event, EpochStarted) and event.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(
        Interrupted,
        match=r"interrupted in epoch 2; epoch 1 is saved\. Resume with: ecg train supervised --resume",
    ):
        train_classifier(SupervisedConfig(**kwargs, name="cut"), stop_in_epoch_2)
    cut = Path(kwargs["runs_dir"]) / "cut"
    assert not (cut / "metrics.json").exists()  # nothing half-written
    resumed = resume_classifier(cut).metrics
    for h1, h2 in zip(full["history"], resumed["history"], strict=True):
        assert h1["train_loss"] == pytest.approx(h2["train_loss"], abs=1e-7)
        assert h1["auroc"] == pytest.approx(h2["auroc"], abs=1e-7)
    assert resumed["test"]["macro_auroc"] == pytest.approx(full["test"]["macro_auroc"], abs=1e-7)
    timing = resumed["timing"]  # the whole run's time, both sessions, not the resumed one's alone
    assert timing["train_seconds"] >= 2.0
    assert timing["total_seconds"] >= timing["train_seconds"] + timing["eval_seconds"]
    with pytest.raises(ConfigError, match="already finished"):
        resume_classifier(cut)


def test_nan_loss_stops_the_run(train_kwargs: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from ecgcli.train import supervised

    monkeypatch.setattr(
        supervised.ClassifierObjective, "loss", lambda self, batch: torch.tensor(float("nan"))
    )
    with pytest.raises(TrainingError, match="loss became nan at epoch 1, batch 1"):
        train_classifier(SupervisedConfig(**train_kwargs))


def _cli(*args: str):
    return runner.invoke(app, ["train", "supervised", *args])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--loss", "hinge"], "unknown loss 'hinge'"),
        (["--balance-strategy", "smote"], "unknown balance strategy 'smote'"),
        (["--label-fraction", "0"], "--label-fraction must be in (0, 1]"),
        (["--label-fraction", "1.5"], "--label-fraction must be in (0, 1]"),
        (["--batch-size", "1"], "--batch-size must be at least 2"),
        (["--signal-length", "5000"], "--signal-length must be between 64 and 1000"),
    ],
)
def test_bad_options_are_one_line_errors(synth_root: Path, args: list[str], message: str) -> None:
    result = _cli("--data-root", str(synth_root), *args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert len([ln for ln in result.output.splitlines() if ln.strip()]) == 1


def test_unwritable_out_and_missing_data(synth_root: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = _cli("--data-root", str(synth_root), "--out", str(blocker / "m.safetensors"))
    assert result.exit_code == 2 and "cannot write --out" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _cli("--data-root", str(empty), "--run-dir", str(tmp_path / "r"))
    assert result.exit_code == 2 and "ptbxl_database.csv" in result.output


def test_records_missing_from_the_data_root(synth_copy: Path, tmp_path: Path) -> None:
    import shutil

    shutil.rmtree(synth_copy / "records100")
    result = _cli(
        "--data-root", str(synth_copy), "--run-dir", str(tmp_path / "r"), "--workers", "1", "--epochs", "1"
    )
    assert result.exit_code == 2
    assert "not found" in result.output and "00001_lr" in result.output


def test_cli_runs_and_reports_val_and_test(train_kwargs: dict, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ECG_CACHE_DIR", train_kwargs["cache_dir"])
    run_dir = tmp_path / "cli-run"
    result = _cli(
        "--data-root",
        train_kwargs["data_root"],
        "--epochs",
        "1",
        "--label-fraction",
        "1",
        "--device",
        "cpu",
        "--run-dir",
        str(run_dir),
        "--batch-size",
        "64",
    )
    assert result.exit_code == 0, result.output
    assert "val (fold 9)" in result.stdout and "TEST (fold 10)" in result.stdout
    assert "epoch 1/1" in result.output
    assert "training records (100% of folds 1-8)" in result.output  # not "(1 of folds 1-8)"
    assert (run_dir / "model.safetensors").is_file()
    again = _cli("--data-root", train_kwargs["data_root"], "--run-dir", str(run_dir))
    assert again.exit_code == 2 and "not empty" in again.output and "--resume" in again.output


def test_cli_interrupt_exits_130_with_resume_hint(train_kwargs: dict, tmp_path: Path, monkeypatch) -> None:
    from ecgcli.train import loop

    def interrupted(*args: object, **kwargs: object) -> None:
        raise Interrupted("interrupted in epoch 1; no epoch was completed. Resume with: ecg ...")

    monkeypatch.setattr(loop, "fit", interrupted)  # the run skeleton's loop
    monkeypatch.setenv("ECG_CACHE_DIR", train_kwargs["cache_dir"])
    result = _cli("--data-root", train_kwargs["data_root"], "--run-dir", str(tmp_path / "r"))
    assert result.exit_code == 130 and "Resume with" in result.output


def test_a_resume_that_changes_the_arithmetic_says_so(
    train_kwargs: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--precision auto resolves per machine: a run started where the CPU has native bf16 and
    resumed where it has not goes on in fp32, says so, and records each epoch's arithmetic."""
    from ecgcli.events import Message
    from ecgcli.train import precision

    kwargs = {**train_kwargs, "epochs": 2, "precision": "auto", "name": "moved"}

    def stop_in_epoch_2(event: object) -> None:
        if isinstance(event, EpochStarted) and event.epoch == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as mp, pytest.raises(Interrupted):  # the first machine: native bf16
        mp.setattr(precision, "CPU_AUTO_BF16", True)
        mp.setattr(precision, "cpu_bf16_native", lambda: (True, "avx512_bf16"))
        train_classifier(SupervisedConfig(**kwargs), stop_in_epoch_2)
    events: list = []
    resumed = resume_classifier(Path(kwargs["runs_dir"]) / "moved", events.append).metrics
    assert [h["precision"] for h in resumed["history"]] == ["bf16", "fp32"]
    said = [e.text for e in events if isinstance(e, Message) and e.level == "warning"]
    assert any("epochs 1-1 trained in bf16; this machine trains the rest in fp32" in t for t in said), said
