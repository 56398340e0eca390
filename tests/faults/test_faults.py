"""Crash consistency (issue 17): SIGKILL and Ctrl-C (SIGINT) at the file writes of a training
epoch, of a checkpoint save, of the cache build and of multiseed's results, each found by
watching for the write's temporary. Every case must end, after the rerun or ``--resume``, with
exactly the numbers of an uninterrupted run (or refuse with one line), and leave no temporary.

Tiny on purpose (300 synthetic records, 128-sample crops, 2 epochs): a longer sweep over every
point of the issue's 4-epoch command is ``benchmarks/fault_sweep.py``.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from injector import ecg, killed, run, temporaries

KILL, INT = signal.SIGKILL, signal.SIGINT

# subprocesses of the real CLI: about 2 minutes of CPU; `pytest -m "not faults"` skips them locally
pytestmark = pytest.mark.faults


def _train_args(data_root: Path, run_dir: Path) -> list[str]:
    return [
        "train", "supervised", "--data-root", str(data_root), "--epochs", "2", "--batch-size", "32",
        "--label-fraction", "1.0", "--seed", "7", "--workers", "1", "--device", "cpu",
        "--signal-length", "128", "--run-dir", str(run_dir),
    ]  # fmt: skip


def _numbers(run_dir: Path) -> dict:
    """What a run computed: every metric and the history without wall-clock fields."""
    m = json.loads((run_dir / "metrics.json").read_text())
    drop = {"timing", "history"}
    history = [{k: v for k, v in h.items() if k not in ("seconds", "samples_per_s")} for h in m["history"]]
    with np.load(run_dir / "predictions.npz") as p:
        probs = {k: p[k].tolist() for k in p.files}
    return {"metrics": {k: v for k, v in m.items() if k not in drop}, "history": history, "probs": probs}


@pytest.fixture(scope="module")
def env(session_cache: Path) -> dict[str, str]:
    return {"ECG_CACHE_DIR": str(session_cache), "OMP_NUM_THREADS": "1", "COLUMNS": "150"}


@pytest.fixture(scope="module")
def reference(synth_root: Path, env: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The uninterrupted run every interrupted one must reproduce."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    done = run(ecg(*_train_args(synth_root, run_dir)), env={**env, "FAULT_WRITE_DELAY": "0"})
    assert done.returncode == 0, done.output
    return _numbers(run_dir)


# (temporary to watch, the output line after which to watch, signal). The resume state is
# written after each epoch; the best checkpoint (weights, then sidecar), predictions and
# metrics.json at the end; config.json before the data are loaded.
TRAINING_POINTS = [
    pytest.param("state/.last.safetensors.tmp-*", r"^epoch 1/2", KILL, id="kill-resume-state-epoch2"),
    pytest.param("state/.last.safetensors.tmp-*", r"^epoch 1/2", INT, id="int-resume-state-epoch2"),
    pytest.param(".model.json.tmp-*", None, KILL, id="kill-between-checkpoint-weights-and-sidecar"),
    pytest.param(".predictions.npz.tmp-*", None, INT, id="int-predictions-write"),
    pytest.param(".config.json.tmp-*", None, KILL, id="kill-config-write"),
]


@pytest.mark.parametrize(("watch", "after", "sig"), TRAINING_POINTS)
def test_training_survives_a_signal_at_each_write(
    watch: str,
    after: str | None,
    sig: signal.Signals,
    synth_root: Path,
    env: dict,
    reference: dict,
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    args = _train_args(synth_root, run_dir)
    hit = run(ecg(*args), watch=str(run_dir / watch), after=after, sig=sig, env=env)
    assert hit.fired, f"{watch} never appeared:\n{hit.output}"
    assert killed(hit, sig), hit.output
    if sig == INT:  # Ctrl-C: one line that says how to continue, and the temporary removed
        errors = [line for line in hit.lines if line.startswith("error:")]
        assert len(errors) == 1 and "Resume with: ecg train supervised --resume" in errors[0], hit.output
        assert "Traceback" not in hit.output
        assert temporaries(run_dir) == []
    resumable = (run_dir / "state" / "last.safetensors").is_file()
    if resumable and sig == KILL:
        _refused_while_in_use(run_dir, env)
    again = run(ecg(*(["train", "supervised", "--resume", str(run_dir)] if resumable else args)), env=env)
    assert again.returncode == 0, again.output
    assert _numbers(run_dir) == reference
    assert temporaries(run_dir) == []
    if resumable:
        assert "epoch 1/2" not in again.output  # it continued, it did not start over


def _refused_while_in_use(run_dir: Path, env: dict) -> None:
    """Issue 17 E/A: two processes never write one run: a resume while another process holds
    the run directory is refused with one error line."""
    import fcntl

    fd = os.open(run_dir, os.O_RDONLY)  # as a live run holds it
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        second = run(ecg("train", "supervised", "--resume", str(run_dir)), env=env)
    finally:
        os.close(fd)
    assert second.returncode == 2
    assert [line for line in second.lines if line.startswith("error:")] == [
        f"error: run directory {run_dir} is in use by another running ecg process"
    ]
    assert "Traceback" not in second.output


# --- the signal cache -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_cache(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ecgcli.data.cache import ensure_cache
    from ecgcli.data.ptbxl import load_ptbxl

    return ensure_cache(load_ptbxl(synth_root), tmp_path_factory.mktemp("refcache")).path


CACHE_POINTS = [
    pytest.param(".*.tmp-*", KILL, id="kill-at-build-start"),
    pytest.param(".*.tmp-*/gain.npy", INT, id="int-after-reading-records"),
    pytest.param(".*.tmp-*/manifest.json", KILL, id="kill-just-before-the-swap"),
]


@pytest.mark.parametrize(("watch", "sig"), CACHE_POINTS)
def test_cache_build_survives_a_signal(
    watch: str, sig: signal.Signals, synth_root: Path, reference_cache: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    cmd = ecg("data", "cache", "--data-root", str(synth_root), "--cache-dir", str(cache), "--workers", "1")
    hit = run(cmd, watch=str(cache / watch), sig=sig)
    assert hit.fired and killed(hit, sig), hit.output
    if sig == INT:
        assert temporaries(cache) == [] and "Traceback" not in hit.output
    again = run(cmd)
    assert again.returncode == 0, again.output
    built = cache / reference_cache.name
    for name in ("signals.npy", "gain.npy", "baseline.npy", "ecg_ids.npy"):
        assert (built / name).read_bytes() == (reference_cache / name).read_bytes(), name
    assert (
        json.loads((built / "manifest.json").read_text())["cache_id"]
        == json.loads((reference_cache / "manifest.json").read_text())["cache_id"]
    )
    assert temporaries(cache) == []


# --- multiseed's results ----------------------------------------------------------------------


@pytest.mark.parametrize("sig", [KILL, INT], ids=["kill", "int"])
def test_multiseed_results_write_survives_a_signal(
    sig: signal.Signals, synth_root: Path, env: dict, tmp_path: Path
) -> None:
    out = tmp_path / "ms"
    cmd = ecg(
        "multiseed", "--data-root", str(synth_root), "--seeds", "7", "--epochs", "1",
        "--label-fraction", "1.0", "--batch-size", "32", "--signal-length", "128", "--device", "cpu",
        "--workers", "1", "--out", str(out), "-c", "bce+standard",
    )  # fmt: skip
    # the results are written once before training and again when the cell finished: the second
    hit = run(cmd, watch=str(out / ".multiseed.json.tmp-*"), after=r"epoch 1/1", sig=sig, env=env)
    assert hit.fired and killed(hit, sig), hit.output
    if sig == INT:  # the write finished before the interrupt: nothing half, nothing left
        assert "Traceback" not in hit.output and temporaries(out) == []
        assert json.loads((out / "multiseed.json").read_text())["results"][0]["runs"]
    again = run(cmd, env=env)
    assert again.returncode == 0, again.output
    assert "1 already finished" in again.output  # the finished cell is reused, not retrained
    doc = json.loads((out / "multiseed.json").read_text())
    (result,) = doc["results"]
    (cell,) = result["runs"]
    metrics = json.loads((out / "bce_standard" / "lf1" / "seed7" / "metrics.json").read_text())
    assert cell["test"]["auroc"] == metrics["test_tuned"]["macro_auroc"]
    assert temporaries(out) == []
