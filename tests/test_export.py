"""``ecg export`` and ``ecg predict --runtime onnx``: verified portable models, no torch, refusals."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ecgcli import LEADS, SUPERCLASSES
from ecgcli.cli.app import app
from ecgcli.data.synth import write_record
from ecgcli.errors import CheckpointError
from ecgcli.inference import export as export_mod
from ecgcli.inference.export import ecg_like_windows, export_model
from ecgcli.inference.predict import Predictor
from ecgcli.models import ECGClassifier
from ecgcli.storage.checkpoint import checkpoint_meta, save_checkpoint

pytest.importorskip("onnxruntime")
from ecgcli.inference.onnx_runtime import OnnxPredictor  # noqa: E402

runner = CliRunner()
NORM = {"mean": [0.01 * i for i in range(12)], "std": [0.1 + 0.02 * i for i in range(12)]}


def _checkpoint(path: Path, encoder: str = "cnn1d", **extra) -> Path:
    """A small untrained classifier with non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    model = ECGClassifier.build(encoder, n_classes=5, width=8)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    meta = checkpoint_meta(
        "classifier",
        architecture=model.architecture(),
        class_names=list(SUPERCLASSES),
        leads=list(LEADS),
        sampling_rate=100,
        signal_length=1000,
        thresholds=[0.5, 0.4, 0.3, 0.6, 0.45],
        normalisation=NORM,
        **extra,
    )
    return save_checkpoint(path, model.eval(), meta)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("ckpt") / "model.safetensors")


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Six simulated records: 10 s at 500 Hz (resampled) and 25 s at 100 Hz (three windows)."""
    folder = tmp_path_factory.mktemp("records")
    stems = []
    for i, (fs, seconds) in enumerate([(500, 10), (100, 25)] * 3):
        x = ecg_like_windows(1, fs, fs * seconds, seed=i)[0]
        write_record(folder / f"r{i}", np.round(x.T * 1000).astype(np.int16), list(LEADS), fs)
        stems.append(folder / f"r{i}")
    return stems


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_is_verified_and_agrees_with_predict(
    ckpt: Path, records: list[Path], tmp_path: Path, fmt: str, one_torch_thread
) -> None:
    out = tmp_path / f"model.{fmt}"
    report = export_model(ckpt, fmt, out)
    assert report.n_checked >= 100 and 0 <= report.max_delta <= 1e-5
    assert out.is_file() and out.stat().st_size == report.size_bytes
    assert [p.name for p in tmp_path.iterdir()] == [out.name]
    torch_preds = list(Predictor.from_checkpoint(ckpt).predict(records))
    if fmt == "onnx":
        onnx_preds = list(OnnxPredictor.from_file(out).predict(records))
        for a, b in zip(torch_preds, onnx_preds, strict=True):
            assert a.positive == b.positive and a.n_windows == b.n_windows
            np.testing.assert_allclose(
                list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-5
            )
    else:
        extra = {"ecgcli.json": ""}
        with warnings.catch_warnings():  # torch.jit.load is deprecated (the file still loads)
            warnings.simplefilter("ignore")
            loaded = torch.jit.load(str(out), _extra_files=extra)
        assert json.loads(extra["ecgcli.json"])["class_names"] == list(SUPERCLASSES)
        x = ecg_like_windows(3, 100, 1000, seed=9)
        with torch.no_grad():
            p = loaded(torch.from_numpy(x)).numpy()
        assert p.shape == (3, 5) and ((p > 0) & (p < 1)).all()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_transformer_exports(tmp_path: Path, fmt: str, one_torch_thread) -> None:
    """Attention layers take a fused kernel only under no_grad; the trace must not see two graphs."""
    ckpt = _checkpoint(tmp_path / "model.safetensors", encoder="transformer")
    report = export_model(ckpt, fmt, tmp_path / f"model.{fmt}")
    assert report.n_checked >= 100 and 0 <= report.max_delta <= 1e-5


def test_temperature_is_applied_by_predict_and_baked_into_export(
    tmp_path: Path, records: list[Path], one_torch_thread
) -> None:
    temperature = [2.0, 0.5, 1.0, 3.0, 1.5]
    plain = Predictor.from_checkpoint(_checkpoint(tmp_path / "a" / "model.safetensors"))
    calibrated_ckpt = _checkpoint(tmp_path / "b" / "model.safetensors", temperature=temperature)
    calibrated = Predictor.from_checkpoint(calibrated_ckpt)
    stem = records[0]  # one window: probability = sigmoid(logit / T) exactly
    p0 = np.array(list(plain.predict_one(stem).probabilities.values()))
    p1 = np.array(list(calibrated.predict_one(stem).probabilities.values()))
    logit = np.log(p0 / (1 - p0))
    np.testing.assert_allclose(p1, 1 / (1 + np.exp(-logit / np.array(temperature))), atol=1e-6)
    export_model(calibrated_ckpt, "onnx", tmp_path / "c.onnx")
    p2 = OnnxPredictor.from_file(tmp_path / "c.onnx").predict_one(stem).probabilities
    np.testing.assert_allclose(list(p2.values()), p1, atol=1e-5)


def test_predict_runtime_onnx_never_imports_torch(ckpt: Path, records: list[Path], tmp_path: Path) -> None:
    onnx_path = tmp_path / "model.onnx"
    export_model(ckpt, "onnx", onnx_path)
    code = (
        "import json, sys\n"
        "from ecgcli.cli.app import app\n"
        "try:\n"
        f"    app(['predict', *{[str(r) for r in records]!r}, '--runtime', 'onnx', '-c', {str(onnx_path)!r},"
        " '--json'], prog_name='ecg')\n"
        "except SystemExit as e:\n"
        "    code = e.code\n"
        "torch = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print('TORCH', torch, 'EXIT', code)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    doc_text, _, tail = out.stdout.rpartition("TORCH")
    assert tail.strip() == "[] EXIT 0", out.stdout[-500:] + out.stderr
    doc = json.loads(doc_text)
    assert len(doc["predictions"]) == len(records) and not doc["errors"]
    reference = list(Predictor.from_checkpoint(ckpt).predict(records))
    for ref, got in zip(reference, doc["predictions"], strict=True):
        np.testing.assert_allclose(
            list(ref.probabilities.values()), list(got["probabilities"].values()), atol=1e-5
        )


def _one_error_line(result, *expected: str) -> None:
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(e in lines[0] for e in expected), lines[0]


def test_foreign_or_broken_onnx_refused_in_one_line(records: list[Path], tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.onnx"
    model = ECGClassifier.build("cnn1d", n_classes=5, width=8).eval()
    with pytest.warns(Warning):  # torch's deprecation notice for the TorchScript exporter
        torch.onnx.export(model, (torch.zeros(1, 12, 1000),), str(foreign), dynamo=False)
    result = runner.invoke(app, ["predict", str(records[0]), "--runtime", "onnx", "-c", str(foreign)])
    _one_error_line(result, "not an ecgcli model", "ecg export")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf at all" * 10)
    result = runner.invoke(app, ["predict", str(records[0]), "--runtime", "onnx", "-c", str(garbage)])
    _one_error_line(result, "not a readable ONNX model")
    with pytest.raises(CheckpointError, match="not found"):
        OnnxPredictor.from_file(tmp_path / "missing.onnx")


def test_export_bad_outputs_leave_nothing(
    ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = runner.invoke(app, ["export", str(ckpt), "--out", str(blocker / "m.onnx")])
    _one_error_line(result, "cannot write --out folder")
    result = runner.invoke(app, ["export", str(ckpt), "--out", str(tmp_path)])
    _one_error_line(result, "is a folder")
    # an export that fails its check writes nothing
    monkeypatch.setattr(export_mod, "TOLERANCE", -1.0)
    out = tmp_path / "new" / "m.onnx"
    result = runner.invoke(app, ["export", str(ckpt), "--out", str(out)])
    _one_error_line(result, "disagrees with", "nothing written")
    assert not out.exists() and not any(out.parent.iterdir())


def test_cli_export_prints_measured_delta(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    result = runner.invoke(app, ["export", str(ckpt), "--format", "onnx", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["checked_records"] == 128 and doc["max_abs_delta_probability"] <= 1e-5 and out.is_file()
    result = runner.invoke(app, ["export", str(ckpt), "--out", str(out), "--check-records", "50"])
    assert result.exit_code == 2  # at least 100 records


def test_without_onnx_extra_one_line_says_what_to_install(
    ckpt: Path, records: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setitem(sys.modules, "onnx", None)
    result = runner.invoke(app, ["export", str(ckpt), "--out", str(tmp_path / "m.onnx")])
    _one_error_line(result, 'pip install "ecgcli[onnx]"')
    assert not (tmp_path / "m.onnx").exists()
    result = runner.invoke(
        app, ["predict", str(records[0]), "--runtime", "onnx", "-c", str(tmp_path / "m.onnx")]
    )
    _one_error_line(result, 'pip install "ecgcli[onnx]"')


def _dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_export_removes_stale_temporaries_of_dead_writers(ckpt: Path, tmp_path: Path) -> None:
    """A SIGKILLed export leaves `.NAME.tmp-HOST-PID`; the next export to that path removes it,
    but not a live writer's temporary nor one of another target."""
    import os
    import socket

    out = tmp_path / "k1.onnx"
    host = socket.gethostname()
    stale = tmp_path / f".k1.onnx.tmp-{host}-{_dead_pid()}"
    stale.write_bytes(b"\x00" * 2048)
    live = tmp_path / f".k1.onnx.tmp-{host}-{os.getppid()}"  # pytest's parent: alive
    live.write_bytes(b"\x00")
    other = tmp_path / f".other.onnx.tmp-{host}-{_dead_pid()}"
    other.write_bytes(b"\x00")
    result = runner.invoke(app, ["export", str(ckpt), "--out", str(out), "--check-records", "100"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and not stale.exists()
    assert live.exists() and other.exists()


def test_export_refuses_to_replace_a_file_it_did_not_write(ckpt: Path, tmp_path: Path) -> None:
    precious = tmp_path / "existing.onnx"
    precious.write_text("my notes")
    args = ["export", str(ckpt), "--check-records", "100", "--out", str(precious)]
    result = runner.invoke(app, args)
    _one_error_line(result, str(precious), "--force")
    assert precious.read_text() == "my notes"
    # a checkpoint is ecgcli's, but not an export: replacing it with ONNX bytes would lose it
    result = runner.invoke(app, ["export", str(ckpt), "--check-records", "100", "--out", str(ckpt)])
    _one_error_line(result, "--force")
    assert ckpt.read_bytes()[:8] != b"\x08\x07" and Predictor.from_checkpoint(ckpt)
    result = runner.invoke(app, [*args, "--force"])
    assert result.exit_code == 0, result.output
    assert OnnxPredictor.from_file(precious).class_names == tuple(SUPERCLASSES)
    # an earlier export at that path is replaced without --force
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    # and an export is not a checkpoint to export from
    result = runner.invoke(app, ["export", str(precious), "--out", str(tmp_path / "again.onnx")])
    _one_error_line(result, "already an `ecg export` model", "safetensors checkpoint")


def test_runtime_onnx_given_a_safetensors_checkpoint_suggests_torch(ckpt: Path, records: list[Path]) -> None:
    result = runner.invoke(app, ["predict", str(records[0]), "--runtime", "onnx", "-c", str(ckpt)])
    _one_error_line(result, "--runtime torch")
