"""Reduced-lead models (``--leads``): lead sets, Holter names, training, predict, explain, export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import train_tiny
from typer.testing import CliRunner

from ecgcli import LEADS
from ecgcli.cli.app import app
from ecgcli.data.leads import LEAD_SETS, parse_leads
from ecgcli.data.records import prepare_record
from ecgcli.data.synth import write_record
from ecgcli.errors import CheckpointError, ConfigError, RecordError
from ecgcli.inference.export import ecg_like_windows

runner = CliRunner()
THREE = ("I", "II", "V1")


def test_parse_leads_sets_names_and_errors() -> None:
    assert parse_leads("12") == LEADS and parse_leads("6") == ("I", "II", "III", "AVR", "AVL", "AVF")
    assert parse_leads("4") == ("I", "II", "III", "V2") and parse_leads("3") == ("I", "II", "V2")
    assert parse_leads("2") == ("I", "II") and set(LEAD_SETS) == {"12", "6", "4", "3", "2"}
    assert parse_leads("II") == ("II",)
    assert parse_leads("v1, avr ,Lead I") == ("I", "AVR", "V1")  # any spelling, PTB-XL order
    with pytest.raises(ConfigError, match="unknown lead.*V7.*leads are I, II"):
        parse_leads("I,V7")
    with pytest.raises(ConfigError, match="MLII.*use II"):
        parse_leads("MLII")
    with pytest.raises(ConfigError, match="more than once"):
        parse_leads("II,ii")
    with pytest.raises(ConfigError, match="empty"):
        parse_leads(" , ")


def _record(folder: Path, name: str, channels: list[str], fs: int = 360, seconds: int = 10) -> Path:
    """A simulated record whose channels carry the leads named (Holter names: the lead modified)."""
    from ecgcli.data.leads import canonical_lead, holter_lead

    x = ecg_like_windows(1, fs, fs * seconds, seed=len(name))[0]
    rows = [LEADS.index(canonical_lead(c) or holter_lead(c)) for c in channels]
    write_record(folder / name, np.round(x[rows].T * 1000).astype(np.int16), channels, fs)
    return folder / name


def test_holter_channels_stand_in_with_a_warning(tmp_path: Path) -> None:
    stem = _record(tmp_path, "mitbih", ["MLII", "V1"])
    rec = prepare_record(stem, 100, 1000, ("II", "V1"))
    assert rec.windows.shape == (1, 2, 1000)
    assert rec.warnings == (f"{stem}: channel MLII is a modified lead, used as lead II",)
    # a standard lead is preferred to a modified one, silently
    both = _record(tmp_path, "both", ["MLII", "II", "V1"])
    rec = prepare_record(both, 100, 1000, ("II", "V1"))
    assert rec.warnings == ()
    # a lead the model needs and the record lacks is named, with what the model uses
    with pytest.raises(RecordError, match=r"missing lead\(s\) I \(has MLII, V1; the model uses I, II, V1\)"):
        prepare_record(stem, 100, 1000, THREE)


@pytest.fixture(scope="module")
def three_lead(synth_root: Path, session_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch of `train supervised --leads I,II,V1` (width 16) on the synthetic set."""
    result = train_tiny(synth_root, session_cache, tmp_path_factory.mktemp("runs"), leads="v1,I,ii")
    assert result.run_dir.name == "supervised-focal-oversample-leads-I-II-V1-s42"
    return result.run_dir


def test_reduced_lead_model_end_to_end(three_lead: Path, tmp_path: Path, one_torch_thread) -> None:
    from ecgcli.inference.onnx_runtime import OnnxPredictor
    from ecgcli.inference.predict import Failure, Predictor

    side = json.loads((three_lead / "model.json").read_text())
    assert side["leads"] == list(THREE) and len(side["normalisation"]["mean"]) == 3
    assert side["architecture"]["encoder_args"]["in_ch"] == 3
    predictor = Predictor.from_checkpoint(three_lead)
    assert predictor.leads == THREE
    good = _record(tmp_path, "three", ["V1", "I", "II"])  # any order, no other lead needed
    holter = _record(tmp_path, "holter", ["I", "MLII", "V1"])
    lacking = _record(tmp_path, "lacking", ["I", "II", "V2"])
    results = list(predictor.predict([good, holter, lacking]))
    assert not isinstance(results[0], Failure) and results[0].warnings == ()
    assert "modified lead, used as lead II" in results[1].warnings[0]
    assert isinstance(results[2], Failure) and "missing lead(s) V1" in results[2].problem

    result = runner.invoke(app, ["predict", str(lacking), "-c", str(three_lead)])
    assert result.exit_code == 2 and "missing lead(s) V1" in result.stderr
    result = runner.invoke(app, ["explain", str(holter), "-c", str(three_lead), "--json", "--class", "MI"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["leads"] == list(THREE) and list(doc["classes"]["MI"]["lead_totals"]) == list(THREE)
    assert "modified lead" in result.stderr

    onnx_path = tmp_path / "three.onnx"
    result = runner.invoke(app, ["export", str(three_lead), "--out", str(onnx_path), "--json"])
    assert result.exit_code == 0, result.output
    onnx = OnnxPredictor.from_file(onnx_path)
    assert onnx.leads == THREE
    np.testing.assert_allclose(
        list(onnx.predict_one(good).probabilities.values()),
        list(results[0].probabilities.values()),
        atol=1e-5,
    )


def test_bad_lead_option_and_mismatched_encoder(tmp_path: Path, synth_root: Path) -> None:
    from ecgcli.models import build_encoder
    from ecgcli.storage.checkpoint import checkpoint_meta, save_checkpoint
    from ecgcli.train.config import SupervisedConfig
    from ecgcli.train.finetune import pretrained_encoder

    result = runner.invoke(
        app, ["train", "supervised", "--data-root", str(synth_root), "--leads", "I,V9", "--epochs", "1"]
    )
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown lead(s) V9 in --leads" in lines[0], result.stderr
    encoder = build_encoder("cnn1d", in_ch=12, width=8)
    meta = checkpoint_meta(
        "encoder",
        architecture={"encoder": "cnn1d", "encoder_args": encoder.config()},
        leads=list(LEADS),
        sampling_rate=100,
        normalisation={"mean": [0.0] * 12, "std": [1.0] * 12},
    )
    path = save_checkpoint(tmp_path / "enc" / "model.safetensors", encoder, meta)
    cfg = SupervisedConfig(ssl_checkpoint=str(path), leads="6", width=None)
    with pytest.raises(CheckpointError, match=r"pretrained on 12 leads; this run uses 6 leads .*must match"):
        pretrained_encoder(cfg)
