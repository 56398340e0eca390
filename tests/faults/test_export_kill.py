"""Crash consistency of ``ecg export`` (issue 31 K): SIGKILL while the exported file is being
written leaves its temporary (SIGKILL cannot be caught); the next export to the same path must
remove it and write a complete model."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from conftest import untrained_checkpoint
from injector import ecg, run, temporaries

from ecgcli import SUPERCLASSES

pytestmark = pytest.mark.faults
pytest.importorskip("onnxruntime")




def test_sigkill_during_export_then_export_again(tmp_path: Path) -> None:
    from ecgcli.inference.onnx_runtime import OnnxPredictor

    ckpt = untrained_checkpoint(tmp_path / "run" / "model.safetensors")
    out = tmp_path / "k1.onnx"
    args = ["export", str(ckpt), "--out", str(out), "--check-records", "100"]
    env = {"OMP_NUM_THREADS": "1", "FAULT_WRITE_DELAY": "2"}
    killed = run(ecg(*args), watch=str(tmp_path / ".k1.onnx.tmp-*"), sig=signal.SIGKILL, env=env)
    assert killed.fired is not None and killed.returncode == -signal.SIGKILL, killed.output
    assert not out.exists() and len(temporaries(tmp_path)) == 1  # what the issue saw

    again = run(ecg(*args), env={**env, "FAULT_WRITE_DELAY": "0"})
    assert again.returncode == 0, again.output
    assert temporaries(tmp_path) == []
    assert OnnxPredictor.from_file(out).class_names == tuple(SUPERCLASSES)
