"""Checkpoints round-trip without pickle; anything else is refused with a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ecgcli.errors import CheckpointError, ConfigError
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


def test_non_finite_weights_are_refused_at_load(tmp_path: Path) -> None:
    path, model = _saved(tmp_path)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name].view(-1)[0] = float("nan")
    meta = json.loads(path.with_suffix(".json").read_text())
    meta.pop("save_id")
    from ecgcli.storage.checkpoint import save_tensors

    save_tensors(path, state, meta)
    with pytest.raises(CheckpointError, match=f"tensor '{name}' holds 1 NaN or infinite value"):
        load_classifier(path)


def test_weights_and_sidecar_of_different_saves_are_refused(tmp_path: Path) -> None:
    """A kill between the two renames of a save leaves new weights beside the old sidecar."""
    path, model = _saved(tmp_path)
    old_sidecar = path.with_suffix(".json").read_text()
    meta = json.loads(old_sidecar)
    save_checkpoint(path, model, {**meta, "thresholds": [0.6] * 5})
    load_classifier(path)  # a complete save loads
    path.with_suffix(".json").write_text(old_sidecar)  # as if killed before the sidecar's rename
    with pytest.raises(CheckpointError, match="come from different saves"):
        load_classifier(path)


def test_bundle_keeps_tensors_and_metadata_in_one_file(tmp_path: Path) -> None:
    from ecgcli.storage.checkpoint import load_bundle, save_bundle

    path = tmp_path / "state.safetensors"
    save_bundle(path, {"w": torch.arange(3.0)}, {"epoch": 3, "best": None})
    tensors, meta = load_bundle(path)
    assert meta == {"epoch": 3, "best": None} and torch.equal(tensors["w"], torch.arange(3.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.safetensors"]
    path2, _ = _saved(tmp_path)
    assert load_bundle(path2) is None  # a plain two-file checkpoint is not a bundle


def test_ctrl_c_during_a_write_waits_for_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ctrl_c_raises: None
) -> None:
    """Issue 17 G: Ctrl-C while a file is written finishes the write, then interrupts."""
    import os
    import signal

    import ecgcli.files as files

    real_fsync = os.fsync

    def fsync_then_ctrl_c(fd: int) -> None:
        real_fsync(fd)
        signal.raise_signal(signal.SIGINT)  # arrives between the fsync and the rename

    target = tmp_path / "w.bin"
    monkeypatch.setattr(os, "fsync", fsync_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        files.atomic_write_bytes(target, b"complete")
    monkeypatch.undo()
    assert target.read_bytes() == b"complete" and [p.name for p in tmp_path.iterdir()] == ["w.bin"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_nan_encoder_is_refused_before_finetuning(tmp_path: Path) -> None:
    """Issue 17 C: fine-tuning from a NaN encoder blamed the learning rate; now one line at load."""
    from ecgcli.models import build_encoder
    from ecgcli.storage.checkpoint import load_encoder

    encoder = build_encoder("cnn1d", in_ch=12, width=8)
    with torch.no_grad():
        next(encoder.parameters()).view(-1)[0] = float("inf")
    arch = {"encoder": "cnn1d", "encoder_args": encoder.config(), "feature_dim": encoder.out_dim}
    path = save_checkpoint(
        tmp_path / "enc.safetensors", encoder, checkpoint_meta("encoder", architecture=arch)
    )
    with pytest.raises(CheckpointError, match="holds 1 NaN or infinite value.*unusable"):
        load_encoder(path)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", "must be the integer 1, got the string '1'"), (1.0, "got the float 1.0"), (True, "got true")],
)
def test_format_version_of_the_wrong_type_says_so(tmp_path: Path, value: object, expected: str) -> None:
    path, _ = _saved(tmp_path)
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["format_version"] = value
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=expected) as info:
        load_tensors(path)
    assert "reads version 1)" not in str(info.value)  # not "version 1 is not supported ... reads version 1"


def test_wrong_kind_message_uses_the_right_article(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["kind"] = "encoder"
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="is an 'encoder' checkpoint"):
        load_classifier(path)


def test_train_out_refuses_a_file_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    """`--out` names a file training writes (and NAME.json beside it): an unrelated file there is
    refused before any work, without --force; an earlier checkpoint is replaced silently."""
    from typer.testing import CliRunner

    from ecgcli.cli.app import app
    from ecgcli.storage.checkpoint import check_out_replaceable

    precious = tmp_path / "precious.txt"
    precious.write_text("do not lose me")
    result = CliRunner().invoke(
        app, ["train", "supervised", "--data-root", str(tmp_path / "none"), "--out", str(precious)]
    )
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert str(precious) in line and "--force" in line and precious.read_text() == "do not lose me"
    notes = tmp_path / "model.json"
    notes.write_text('{"mine": true}')
    with pytest.raises(ConfigError, match="model.json"):
        check_out_replaceable(tmp_path / "model.safetensors", force=False)
    with pytest.raises(ConfigError, match=r"\.json"):
        check_out_replaceable(tmp_path / "weights.json", force=False)
    check_out_replaceable(precious, force=True)
    path, _ = _saved(tmp_path)
    check_out_replaceable(path, force=False)  # an earlier ecgcli checkpoint
