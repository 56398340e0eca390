"""`ecg train ssl --pretrain-data`: another WFDB folder added to pretraining, leakage-guarded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgcli import LEADS
from ecgcli.cli.app import app
from ecgcli.data.extra import read_folder
from ecgcli.data.ptbxl import load_ptbxl
from ecgcli.data.synth import write_record
from ecgcli.errors import ConfigError
from ecgcli.events import Message
from ecgcli.storage.checkpoint import load_encoder
from ecgcli.train.config import SSLConfig
from ecgcli.train.ssl import train_ssl

runner = CliRunner()


def _signal(fs: int, seconds: float, n_leads: int, seed: int) -> np.ndarray:
    """Samples x leads of a smooth random signal in ADC units (1000 per mV)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(fs * seconds)) / fs
    freq = rng.uniform(0.5, 3.0, n_leads)
    x = 0.8 * np.sin(2 * np.pi * freq[None, :] * t[:, None]) + 0.05 * rng.standard_normal((len(t), n_leads))
    return np.round(x * 1000).astype(np.int16)


@pytest.fixture()
def extra_dir(tmp_path: Path) -> Path:
    """Two 100 Hz records, one 500 Hz record (resampled), one 3-lead record (unusable)."""
    root = tmp_path / "other-db"
    (root / "a").mkdir(parents=True)
    write_record(root / "a" / "r1", _signal(100, 10, 12, 1), list(LEADS), 100)
    write_record(root / "a" / "r2", _signal(100, 12, 12, 2), list(LEADS), 100)  # longer: cropped
    write_record(root / "r3", _signal(500, 10, 12, 3), list(LEADS), 500)
    write_record(root / "r4", _signal(100, 10, 3, 4), ["I", "II", "V1"], 100)
    return root


def _copy_record(stem: Path, dest: Path) -> None:
    """A copy of a record under another name (its header names the new signal file)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(f"{stem}.dat", f"{dest}.dat")
    text = Path(f"{stem}.hea").read_text().replace(stem.name, dest.name)
    Path(f"{dest}.hea").write_text(text)


def _kwargs(synth_root: Path, session_cache: Path, tmp_path: Path, **extra) -> dict:
    return {
        "data_root": str(synth_root),
        "cache_dir": str(session_cache),
        "runs_dir": str(tmp_path / "runs"),
        "device": "cpu",
        "epochs": 1,
        "batch_size": 64,
        "width": 16,
        "hidden_dim": 32,
        "projection_dim": 16,
        "probe_every": 0,
        **extra,
    }


def test_records_are_resampled_cropped_and_non_12_lead_ones_skipped(extra_dir: Path) -> None:
    signals, stems, failed = read_folder(extra_dir, 100, 1000, None)
    assert signals.shape == (3, 12, 1000) and signals.dtype == np.int16
    assert [Path(s).name for s in stems] == ["r1", "r2", "r3"]
    assert len(failed) == 1 and "r4" in failed[0] and "missing lead" in failed[0]
    # the 500 Hz record became 100 Hz: the same 10 s in 1000 samples, same amplitude in µV
    src = _signal(500, 10, 12, 3)[::5].T.astype(np.float64)
    assert np.abs(signals[2, :, 50:-50] - src[:, 50:-50]).mean() < 60  # µV; only the noise differs


def test_pretrain_data_adds_records_and_records_them(
    synth_root: Path,
    session_cache: Path,
    tmp_path: Path,
    extra_dir: Path,
    one_torch_thread: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ds = load_ptbxl(synth_root)
    fold1 = int(np.flatnonzero(ds.folds == 1)[0])
    _copy_record(ds.record_paths[fold1], extra_dir / "dup" / "renamed")  # a duplicate: dropped
    events: list = []
    cfg = SSLConfig(**_kwargs(synth_root, session_cache, tmp_path, pretrain_data=[str(extra_dir)]))
    result = train_ssl(cfg, events.append)
    n_folds = len(ds.split(0.1, 42).pretrain)
    data = result.metrics["data"]
    assert data["n_pretrain"] == n_folds + 3 and data["n_pretrain_folds"] == n_folds
    (source,) = data["pretrain_data"]
    assert source == {
        "dir": str(extra_dir),
        "n_found": 5,
        "n_unusable": 1,
        "n_duplicates": 1,
        "n_added": 3,
    }
    saved = json.loads((result.run_dir / "metrics.json").read_text())["data"]
    assert saved["n_pretrain"] == n_folds + 3
    _, meta = load_encoder(result.checkpoint)
    assert meta["data"]["pretrain_data"][0]["n_added"] == 3 and meta["data"]["n_pretrain"] == n_folds + 3
    texts = [e.text for e in events if isinstance(e, Message)]
    assert any("skipped 1 of 5 record(s)" in t for t in texts)
    assert any("dropped 1 record(s) that duplicate folds 1-8" in t for t in texts)
    assert any(f"{n_folds} records of folds 1-8" in t and "+ 3 added" in t for t in texts)

    # the prepared records were cached: a second read prepares no record
    def unexpected(*args: object, **kwargs: object) -> None:
        raise AssertionError("read again")

    monkeypatch.setattr("ecgcli.data.extra.prepare_record", unexpected)
    signals, stems, _ = read_folder(extra_dir, 100, 1000, session_cache)
    assert signals.shape == (4, 12, 1000) and len(stems) == 4  # the duplicate is dropped later


def test_fold_9_10_records_are_refused_by_content_and_by_name(
    synth_root: Path, session_cache: Path, tmp_path: Path, extra_dir: Path
) -> None:
    ds = load_ptbxl(synth_root)
    rows = np.flatnonzero(ds.folds == 10)[:2].tolist() + np.flatnonzero(ds.folds == 9)[:1].tolist()
    _copy_record(ds.record_paths[rows[0]], extra_dir / "leak" / "innocent_name")  # content only
    _copy_record(ds.record_paths[rows[1]], extra_dir / "leak" / ds.record_paths[rows[1]].name)
    _copy_record(ds.record_paths[rows[2]], extra_dir / "leak" / "x" / "copy9")
    cfg = SSLConfig(**_kwargs(synth_root, session_cache, tmp_path, pretrain_data=[str(extra_dir)]))
    with pytest.raises(ConfigError, match=r"^--pretrain-data: 3 records are PTB-XL folds 9-10 "):
        train_ssl(cfg)
    assert not (tmp_path / "runs").exists()  # refused before any run directory was made
    result = runner.invoke(
        app,
        ["train", "ssl", "--data-root", str(synth_root), "--pretrain-data", str(extra_dir), "--epochs", "1"],
        env={"ECG_CACHE_DIR": str(session_cache), "ECG_RUNS_DIR": str(tmp_path / "cli-runs")},
    )
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip() and "skipped" not in ln]
    assert len(lines) == 1 and "3 records are PTB-XL folds 9-10 (the validation and test folds)" in lines[0]
    assert "Traceback" not in result.output


def test_a_name_matching_ptbxl_pattern_of_fold_10_is_refused(
    synth_root: Path, session_cache: Path, tmp_path: Path
) -> None:
    """The 500 Hz file of a fold-10 record resamples to other samples than the 100 Hz one:
    the name check catches it."""
    from ecgcli.data.cache import ensure_cache
    from ecgcli.data.extra import load_extra_records

    ds = load_ptbxl(synth_root)
    store = ensure_cache(ds, session_cache)
    row = int(np.flatnonzero(ds.folds == 10)[0])
    folder = tmp_path / "hr-copy"
    folder.mkdir()
    name = ds.record_paths[row].name.replace("_lr", "_hr")
    write_record(folder / name, _signal(500, 10, 12, 9), list(LEADS), 500)
    with pytest.raises(ConfigError, match="1 record is PTB-XL folds 9-10"):
        load_extra_records([str(folder)], ds, store, ds.split(0.1, 42).pretrain, None)


def test_bad_pretrain_data_folders_are_one_line(synth_root: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, message in ((tmp_path / "nope", "is not a folder"), (empty, "no WFDB records")):
        result = runner.invoke(
            app, ["train", "ssl", "--data-root", str(synth_root), "--pretrain-data", str(folder)]
        )
        assert result.exit_code == 2 and message in result.output, result.output
        assert len([ln for ln in result.output.splitlines() if ln.strip()]) == 1


def test_store_fingerprints_fast_path_equals_the_rounded_signal(
    synth_root: Path, session_cache: Path
) -> None:
    from ecgcli.data.cache import ensure_cache
    from ecgcli.data.extra import fingerprints, store_fingerprints

    store = ensure_cache(load_ptbxl(synth_root), session_cache)
    rows = np.arange(5)
    assert (store.gain[rows] == 1000).all()  # the fast path is the one taken
    slow = fingerprints(np.round(store.get(rows) * 1000.0).astype(np.int16))
    assert store_fingerprints(store, rows) == slow
