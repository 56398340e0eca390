"""Shared fixtures: one small synthetic PTB-XL per test session (no real data needed)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Tests run on 2 cores: one torch thread in each of pytest-xdist's two workers (pyproject's
# addopts), two when run serially (-n 0); more would oversubscribe the cores.
os.environ.setdefault("OMP_NUM_THREADS", "1" if os.environ.get("PYTEST_XDIST_WORKER") else "2")

SYNTH_RECORDS = 300
SYNTH_SEED = 7


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only-by-convention synthetic PTB-XL folder (300 records, 100 Hz)."""
    from ecgcli.data.synth import write_synthetic_ptbxl

    root = tmp_path_factory.mktemp("synth") / "ptbxl"
    write_synthetic_ptbxl(root, SYNTH_RECORDS, seed=SYNTH_SEED, workers=2)
    return root


@pytest.fixture()
def synth_copy(synth_root: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic folder that a test may break."""
    dest = tmp_path / "ptbxl"
    shutil.copytree(synth_root, dest)
    return dest


@pytest.fixture()
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def shared_tables() -> Path:
    """The real PTB-XL tables beside the checkout (``../shared/ptbxl``), if present."""
    path = Path(__file__).resolve().parents[2] / "shared" / "ptbxl"
    if not (path / "ptbxl_database.csv").is_file():
        pytest.skip("real PTB-XL tables not available beside the checkout")
    return path


@pytest.fixture(scope="session")
def session_cache(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A signal cache of ``synth_root`` built once and shared by the training tests."""
    from ecgcli.data.cache import ensure_cache
    from ecgcli.data.ptbxl import load_ptbxl

    path = tmp_path_factory.mktemp("cache")
    ensure_cache(load_ptbxl(synth_root), path)
    return path


@pytest.fixture()
def train_kwargs(synth_root: Path, session_cache: Path, tmp_path: Path) -> dict:
    """SupervisedConfig arguments for a tiny, fast CPU run on the session's synthetic set."""
    return {
        "data_root": str(synth_root),
        "cache_dir": str(session_cache),
        "runs_dir": str(tmp_path / "runs"),
        "device": "cpu",
        "workers": 1,
        "label_fraction": 1.0,
        "epochs": 2,
        "batch_size": 32,
        "width": 16,
    }


@pytest.fixture(autouse=True, scope="session")
def consoles_follow_columns():
    """The CLI's rich consoles are made when ``ecgcli.cli.render`` is first imported, and rich
    fixes a console's width if COLUMNS is set at that moment (a user's process sees one COLUMNS).
    Tests set COLUMNS per invocation, so the module is imported here with COLUMNS unset and
    every test's own COLUMNS applies, whichever test runs first in a worker."""
    saved = os.environ.pop("COLUMNS", None)
    import ecgcli.cli.render  # noqa: F401

    if saved is not None:
        os.environ["COLUMNS"] = saved
    yield


@pytest.fixture(autouse=True, scope="session")
def fp32_by_default():
    """`--precision auto` trains in bf16 on a CPU with native bf16; the tests compare numbers to
    tight tolerances, so in-process they keep auto at fp32 (tests/test_precision.py checks the
    bf16 default itself, and subprocess tests that compare processes pass --precision fp32)."""
    from ecgcli.train import precision

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(precision, "CPU_AUTO_BF16", False)
        yield


@pytest.fixture()
def ctrl_c_raises():
    """Python's own SIGINT handler for the test, restored after. A process started in the
    background by a non-interactive shell (``cmd &``) inherits SIGINT ignored, and Python then
    keeps it ignored, so a test of what Ctrl-C does must install the handler it tests."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture()
def one_torch_thread():
    """Real training in these tests is tiny: one torch thread is as fast on an idle machine and
    many times faster on 2 cores shared with other jobs (no OpenMP spin-waiting)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def train_tiny(synth_root: Path, cache: Path, runs_dir: Path, **options):
    """A real, tiny `train supervised` run (width 16, all labelled records, one torch thread)
    for the module and session fixtures that need a trained checkpoint; returns its result."""
    import torch

    from ecgcli.train.config import SupervisedConfig
    from ecgcli.train.supervised import train_classifier

    base = {"device": "cpu", "workers": 1, "label_fraction": 1.0, "epochs": 1, "batch_size": 32, "width": 16}
    cfg = SupervisedConfig(
        data_root=str(synth_root), cache_dir=str(cache), runs_dir=str(runs_dir), **{**base, **options}
    )
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_classifier(cfg)
    finally:
        torch.set_num_threads(before)


def untrained_checkpoint(path: Path, encoder: str = "cnn1d", width: int = 8, **meta_fields) -> Path:
    """A small untrained 5-class classifier checkpoint (seed 0, identity normalisation,
    thresholds 0.5): for tests of loading, exporting, scoring and explaining, which need a
    model, not a good one. ``meta_fields`` override the sidecar's fields."""
    import torch

    from ecgcli import LEADS, SUPERCLASSES
    from ecgcli.models import ECGClassifier
    from ecgcli.storage.checkpoint import checkpoint_meta, save_checkpoint

    torch.manual_seed(0)
    model = ECGClassifier.build(encoder, n_classes=5, width=width).eval()
    fields = {
        "architecture": model.architecture(),
        "class_names": list(SUPERCLASSES),
        "leads": list(LEADS),
        "sampling_rate": 100,
        "signal_length": 1000,
        "thresholds": [0.5] * 5,
        "normalisation": {"mean": [0.0] * 12, "std": [1.0] * 12},
        **meta_fields,
    }
    return save_checkpoint(path, model, checkpoint_meta("classifier", **fields))


def strided_encoder():
    """A BatchNorm-free strided encoder (12 leads -> 6 channels, stride 4) for the 2-process
    equivalence tests of the SSL objectives: per-rank BatchNorm statistics would differ from one
    process's, so an encoder with BatchNorm could not give the same gradient."""
    import torch
    from torch import nn

    class Strided(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Conv1d(12, 6, 5, stride=4, padding=2), nn.Tanh())
            self.out_dim = 6

        def forward_features(self, x: torch.Tensor) -> torch.Tensor:
            return self.features(x)

    return Strided()
