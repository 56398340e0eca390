"""The signal cache: built once, lossless, reused while fresh, rebuilt when stale or corrupt."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgcli.data.cache import build_cache, cache_dir_for, ensure_cache
from ecgcli.data.ptbxl import load_ptbxl
from ecgcli.errors import RecordError
from ecgcli.events import Message


def _messages(events: list) -> list[str]:
    return [e.text for e in events if isinstance(e, Message)]


def test_cache_is_lossless_and_in_table_order(synth_root: Path, cache_dir: Path) -> None:
    ds = load_ptbxl(synth_root)
    store = ensure_cache(ds, cache_dir)
    assert store.signals.shape == (300, 12, 1000) and store.signals.dtype == np.int16
    assert np.array_equal(store.ecg_ids, ds.ecg_ids)
    for row in (0, 137, 299):
        expected, _ = wfdb.rdsamp(str(ds.record_paths[row]))
        np.testing.assert_allclose(store.get([row])[0], expected.T, atol=1e-6)


def test_parallel_build_equals_serial(synth_root: Path, tmp_path: Path, monkeypatch) -> None:
    import ecgcli.data.parallel as parallel

    monkeypatch.setattr(parallel, "PARALLEL_FROM", 1)  # force worker processes on 300 records
    monkeypatch.setattr(parallel, "CHUNK", 64)
    ds = load_ptbxl(synth_root)
    serial = build_cache(ds, tmp_path / "serial", workers=1)
    forked = build_cache(ds, tmp_path / "forked", workers=2)
    assert np.array_equal(np.asarray(serial.signals), np.asarray(forked.signals))
    assert np.array_equal(serial.gain, forked.gain)
    assert serial.cache_id == forked.cache_id


def test_reuse_then_rebuild_when_stale(synth_copy: Path, cache_dir: Path) -> None:
    ds = load_ptbxl(synth_copy)
    events: list = []
    first = ensure_cache(ds, cache_dir, callback=events.append)
    assert any("building the signal cache" in m for m in _messages(events))
    built_at = first.manifest["build_seconds"], (first.path / "manifest.json").stat().st_mtime_ns

    events.clear()
    again = ensure_cache(ds, cache_dir, callback=events.append)
    assert _messages(events) == []  # reused silently
    assert (again.path / "manifest.json").stat().st_mtime_ns == built_at[1]

    dat = ds.record_paths[5].with_suffix(".dat")
    raw = np.fromfile(dat, dtype="<i2")
    raw[:12] = 1234
    raw.tofile(dat)
    st = dat.stat()
    os.utime(dat, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    events.clear()
    rebuilt = ensure_cache(ds, cache_dir, callback=events.append)
    assert any("stale" in m and "changed" in m for m in _messages(events))
    assert (rebuilt.signals[5, :, 0] == 1234).all()


def test_corrupt_cache_is_rebuilt(synth_root: Path, cache_dir: Path) -> None:
    ds = load_ptbxl(synth_root)
    store = ensure_cache(ds, cache_dir)
    signals = store.path / "signals.npy"
    del store
    with open(signals, "r+b") as f:
        f.truncate(1000)
    events: list = []
    store = ensure_cache(ds, cache_dir, callback=events.append)
    assert any("stale" in m and "unreadable" in m for m in _messages(events))
    assert store.signals.shape == (300, 12, 1000)

    (store.path / "manifest.json").write_text("{not json")
    events.clear()
    ensure_cache(ds, cache_dir, callback=events.append)
    assert any("manifest is corrupt" in m for m in _messages(events))


def test_bad_record_fails_build_naming_it(synth_copy: Path, cache_dir: Path) -> None:
    ds = load_ptbxl(synth_copy)
    victim = ds.record_paths[42]
    victim.with_suffix(".dat").write_bytes(b"\0" * 100)
    with pytest.raises(RecordError, match=rf"{victim.name}.*truncated"):
        ensure_cache(ds, cache_dir)
    # nothing half-built is left where a later run would pick it up
    assert not cache_dir_for(cache_dir, ds.root, 100).exists()
    assert not [p for p in cache_dir.iterdir() if ".tmp-" in p.name]


def test_batch_conversion_is_vectorised_and_float32(synth_root: Path, cache_dir: Path) -> None:
    store = ensure_cache(load_ptbxl(synth_root), cache_dir)
    rows = np.array([250, 3, 77, 3])
    x = store.get(rows)
    assert x.dtype == np.float32 and x.shape == (4, 12, 1000)
    np.testing.assert_array_equal(x[1], x[3])
    np.testing.assert_allclose(x[0], store.get([250])[0])


def test_relative_and_absolute_roots_share_one_cache(synth_root: Path, cache_dir: Path, monkeypatch) -> None:
    monkeypatch.chdir(synth_root.parent)
    first = ensure_cache(load_ptbxl(Path(synth_root.name)), cache_dir.resolve())
    events: list = []
    second = ensure_cache(load_ptbxl(synth_root.resolve()), cache_dir.resolve(), callback=events.append)
    assert _messages(events) == [] and first.path == second.path  # reused, not rebuilt


def _blank(stem: Path, samples: slice | None = None) -> None:
    """Overwrite a format-16 record's samples with WFDB's "no sample" value 0x8000."""
    dat = Path(f"{stem}.dat")
    raw = np.fromfile(dat, dtype="<i2")
    raw[samples if samples is not None else slice(None)] = -32768
    raw.tofile(dat)


def test_missing_samples_are_named_and_refused_above_the_limit(synth_copy: Path, cache_dir: Path) -> None:
    from ecgcli.data.cache import check_invalid_samples
    from ecgcli.errors import DataError

    ds = load_ptbxl(synth_copy)
    _blank(ds.record_paths[3])  # a whole record missing
    _blank(ds.record_paths[8], slice(0, 12 * 5))  # 5 samples of every lead: 0.5%, under the limit
    store = ensure_cache(ds, cache_dir)
    blank_id, few_id = int(ds.ecg_ids[3]), int(ds.ecg_ids[8])
    with pytest.raises(DataError) as err:
        check_invalid_samples(store)
    msg = str(err.value)
    assert "1 record(s) are more than 1% missing samples" in msg and f"{blank_id} (100%)" in msg
    assert "--allow-invalid" in msg and f"{few_id} " not in msg and "\n" not in msg
    events: list = []
    check_invalid_samples(store, allow=True, callback=events.append)
    (warning,) = _messages(events)
    assert warning.startswith("2 record(s) have 12060 missing samples")
    assert f"{blank_id} (100%)" in warning and f"{few_id} (0.5%)" in warning


def test_a_few_missing_samples_only_warn(synth_copy: Path, cache_dir: Path) -> None:
    from ecgcli.data.cache import check_invalid_samples

    ds = load_ptbxl(synth_copy)
    _blank(ds.record_paths[8], slice(0, 12 * 5))
    events: list = []
    check_invalid_samples(ensure_cache(ds, cache_dir), callback=events.append)
    assert [m.split(";")[0] for m in _messages(events)][
        -1
    ] == "1 record(s) have 60 missing samples (cached as 0 mV)"


def test_temporaries_of_dead_builds_are_removed(synth_root: Path, cache_dir: Path) -> None:
    import subprocess
    import sys

    ds = load_ptbxl(synth_root)
    name = cache_dir_for(cache_dir, ds.root, ds.sampling_rate).name
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(dead.stdout)
    cache_dir.mkdir()
    (cache_dir / f".{name}.tmp-{dead_pid}").mkdir()
    (cache_dir / f".{name}.tmp-{dead_pid}" / "signals.npy").write_bytes(b"half")
    (cache_dir / f".{name}.tmp-{os.getpid()}-live").mkdir()  # not a temporary name: kept
    live = cache_dir / f".{name}.tmp-{os.getppid()}"  # a live process's build: kept
    live.mkdir()
    events: list = []
    ensure_cache(ds, cache_dir, callback=events.append)
    assert f"removed .{name}.tmp-{dead_pid}, left by an interrupted cache build" in _messages(events)
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted(
        [name, f".{name}.lock", f".{name}.tmp-{os.getpid()}-live", live.name]
    )


def test_a_second_build_waits_for_the_first_and_reuses_it(
    synth_root: Path, cache_dir: Path, monkeypatch
) -> None:
    import threading

    from filelock import FileLock

    import ecgcli.data.cache as cache

    ds = load_ptbxl(synth_root)
    path = cache_dir_for(cache_dir, ds.root, ds.sampling_rate)
    cache_dir.mkdir()
    first = FileLock(str(cache_dir / f".{path.name}.lock"))
    first.acquire()  # "another process" is building
    build = cache.build_cache

    def must_not_build(*args, **kwargs):
        raise AssertionError("the second build did the work again")

    monkeypatch.setattr(cache, "build_cache", must_not_build)
    events: list = []
    result: list = []
    second = threading.Thread(
        target=lambda: result.append(ensure_cache(ds, cache_dir, callback=events.append))
    )
    second.start()
    for _ in range(500):
        if _messages(events):
            break
        second.join(0.01)
    assert _messages(events) == [f"waiting for another process to finish building the signal cache {path}"]
    built = build(ds, path)
    first.release()
    second.join(30)
    assert result and result[0].cache_id == built.cache_id and len(_messages(events)) == 1


def test_a_record_rewritten_with_its_old_mtime_restored_is_noticed(synth_copy: Path, cache_dir: Path) -> None:
    """Size and mtime alone miss an in-place rewrite that puts the old mtime back; the change
    time (ctime), which no program can set back, does not."""
    ds = load_ptbxl(synth_copy)
    ensure_cache(ds, cache_dir)
    dat = ds.record_paths[7].with_suffix(".dat")
    before = dat.stat()
    raw = np.fromfile(dat, dtype="<i2")
    raw[:12] = 4321
    time.sleep(0.01)  # a change time that differs even on coarse-clock filesystems
    raw.tofile(dat)
    os.utime(dat, ns=(before.st_atime_ns, before.st_mtime_ns))  # same size, same mtime
    events: list = []
    rebuilt = ensure_cache(ds, cache_dir, callback=events.append)
    assert any("stale" in m and "rewritten" in m for m in _messages(events)), _messages(events)
    assert (rebuilt.signals[7, :, 0] == 4321).all()
    events.clear()
    ensure_cache(ds, cache_dir, callback=events.append)
    assert _messages(events) == []  # and reused after that
