"""Checkpoints round-trip without pickle; anything else is refused with a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ecgcli.errors import CheckpointError
from ecgcli.models import ECGClassifier
from ecgcli.storage.checkpoint import (
    checkpoint_meta,
    flatten_state,
    load_classifier,
    load_tensors,
    save_checkpoint,
    unflatten_state,
)


def _saved(tmp_path: Path) -> tuple[Path, ECGClassifier]:
    torch.manual_seed(0)
    model = ECGClassifier.build("cnn1d", 5, in_ch=12, width=8).eval()
    meta = checkpoint_meta("classifier", architecture=model.architecture(), thresholds=[0.4] * 5)
    return save_checkpoint(tmp_path / "m.safetensors", model, meta), model


def test_round_trip_gives_identical_predictions(tmp_path: Path) -> None:
    path, model = _saved(tmp_path)
    loaded, meta = load_classifier(path)
    x = torch.randn(2, 12, 1000)
    assert torch.equal(model(x), loaded(x))
    assert meta["thresholds"] == [0.4] * 5 and meta["versions"]["torch"] == torch.__version__
    assert json.loads(path.with_suffix(".json").read_text())["kind"] == "classifier"


def test_pickled_file_is_refused(tmp_path: Path) -> None:
    path, model = _saved(tmp_path)
    torch.save(model.state_dict(), path)  # a pickle where safetensors belongs
    with pytest.raises(CheckpointError, match="corrupt or not safetensors"):
        load_classifier(path)


def test_missing_corrupt_and_foreign(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_tensors(tmp_path / "none.safetensors")
    path, _ = _saved(tmp_path)
    path.with_suffix(".json").write_text("{oops")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_tensors(path)
    path.with_suffix(".json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(CheckpointError, match="not an ecgcli checkpoint"):
        load_tensors(path)
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="sidecar .* is missing"):
        load_tensors(path)


def test_wrong_kind_and_wrong_shape(tmp_path: Path) -> None:
    path, model = _saved(tmp_path)
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["kind"] = "encoder"
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="'encoder' checkpoint, not a classifier"):
        load_classifier(path)
    meta["kind"] = "classifier"
    meta["architecture"]["encoder_args"]["width"] = 16
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not fit the architecture"):
        load_classifier(path)


def test_optimizer_state_flattens_and_restores() -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors: dict = {}
    skeleton = flatten_state(opt.state_dict(), "optim", tensors)
    json.dumps(skeleton)  # the skeleton is plain JSON
    restored = unflatten_state(json.loads(json.dumps(skeleton)), tensors)
    opt2 = torch.optim.Adam(model.parameters(), lr=0.5)
    opt2.load_state_dict(restored)
    assert opt2.param_groups[0]["lr"] == 0.01
    for k, v in opt.state_dict()["state"][0].items():
        assert torch.equal(opt2.state_dict()["state"][0][k], v)
