"""The signal cache: every record read once, in parallel, into one memory-mapped int16 array.

Why int16: PTB-XL stores format-16 samples at 1000 ADC units per mV, so keeping the raw ADC
values with a per-record, per-lead gain and baseline is lossless and half the size of float32
(21,837 x 12 x 1000 is 524 MB instead of 1 GB, 2.6 GB at 500 Hz instead of 5.2 GB). float16
would not be lossless (its step at 4 mV is 0.004 mV). Conversion to mV happens per batch.

Layout of a cache directory (one per data root and sampling rate):

- ``signals.npy``: ``(N, 12, T)`` int16, leads in :data:`ecgcli.LEADS` order, table row order
- ``gain.npy``, ``baseline.npy``: ``(N, 12)`` float32, ``mV = (adc - baseline) / gain``
- ``ecg_ids.npy``: ``(N,)`` int64, the table's ``ecg_id`` of each row
- ``manifest.json``: version, rate, length, count and a fingerprint of the sources (every
  record file's size and mtime, and a hash of their change times: see
  :func:`source_fingerprints`), written last: a directory without it is incomplete.

A cache whose manifest matches the dataset is reused; a stale, incomplete or corrupt one is
rebuilt (into a temporary directory, swapped in atomically) and the caller is told why.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecgcli import LEADS, __version__
from ecgcli.data.parallel import map_chunks
from ecgcli.data.ptbxl import PTBXL, RootGuard
from ecgcli.data.records import INVALID_INT16, read_standard_record
from ecgcli.errors import DataError, RecordError
from ecgcli.events import Callback, Message, ignore
from ecgcli.files import ctrl_c_deferred, remove_stale_temporaries, temp_path

CACHE_VERSION = 1


@dataclass
class SignalStore:
    """A built cache, memory-mapped: rows in the dataset's table order."""

    path: Path
    signals: np.ndarray  # (N, 12, T) int16 memmap
    gain: np.ndarray  # (N, 12) float32
    baseline: np.ndarray  # (N, 12) float32
    ecg_ids: np.ndarray
    manifest: dict

    def __len__(self) -> int:
        return len(self.ecg_ids)

    @property
    def cache_id(self) -> str:
        """Short identifier of the data this cache was built from (stored in checkpoints)."""
        return str(self.manifest["cache_id"])

    @property
    def length(self) -> int:
        return int(self.signals.shape[2])

    def get(self, rows: np.ndarray | list[int]) -> np.ndarray:
        """Signals of ``rows`` in mV as float32 ``(len(rows), 12, T)``."""
        rows = np.asarray(rows, dtype=np.int64)
        x = self.signals[rows].astype(np.float32)
        x -= self.baseline[rows, :, None]
        x /= self.gain[rows, :, None]
        return x


def cache_dir_for(cache_root: Path, data_root: Path, sampling_rate: int) -> Path:
    """The cache directory of a data root: readable name plus a hash of its absolute path."""
    absolute = str(Path(data_root).resolve())
    digest = hashlib.sha1(absolute.encode()).hexdigest()[:8]
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(absolute).name)
    return Path(cache_root) / f"{name}-{digest}-{sampling_rate}hz"


def source_fingerprint(dataset: PTBXL) -> str:
    """Hash of every record's identity, path within the root, and header/signal file sizes
    and mtimes."""
    return source_fingerprints(dataset)[0]


def source_fingerprints(dataset: PTBXL) -> tuple[str, str]:
    """``(sources, changed)``: :func:`source_fingerprint`, and a hash of every record file's
    change time (ctime), from the same ``stat`` calls, so it costs nothing more.

    Size and mtime miss a file rewritten in place with its old mtime put back (``touch -d``,
    ``os.utime``, an extractor that keeps mtimes); its ctime moves with any write or
    ``utime`` and no program can set it back. Reading file contents instead was measured on
    the 21,837 PTB-XL records (three 1 KiB blocks of each .hea and .dat): +3.5 s over the
    3.2 s of the stat pass with the files in the page cache, +35 s from a cold disk, at every
    training start; ctime is free. Copying or chmod-ing the folder also moves ctimes, which
    costs one rebuild, never a stale cache.
    """
    sources = hashlib.sha256()
    changed = hashlib.sha256()
    sources.update(f"{dataset.sampling_rate}\n".encode())
    root = os.path.normpath(dataset.root)
    for eid, stem in zip(dataset.ecg_ids, dataset.record_paths, strict=True):
        stamp: list[str] = []
        for suffix in (".hea", ".dat"):  # the same text as records.file_stamp
            try:
                st = os.stat(f"{stem}{suffix}")
            except OSError:
                stamp.append("missing")
                continue
            stamp += [str(st.st_size), str(st.st_mtime_ns)]
            changed.update(f"{st.st_ctime_ns}\n".encode())
        # relative to the root: the same folder named relatively or absolutely is one dataset
        parts = [str(eid), os.path.relpath(stem, root), *stamp]
        sources.update("\t".join(parts).encode())
        sources.update(b"\n")
    return sources.hexdigest(), changed.hexdigest()


class _Stale(Exception):
    """The cache on disk cannot be used; the message says why."""


def open_cache(path: Path, fingerprint: str | None = None, changed: str | None = None) -> SignalStore:
    """Open a built cache, checking its manifest (and, if given, the source fingerprint and
    the change-time hash; a manifest written before that hash existed is not checked for it)."""
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise _Stale("no manifest (never built, or the build was interrupted)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        raise _Stale("its manifest is corrupt") from None
    if manifest.get("version") != CACHE_VERSION:
        raise _Stale(f"cache format {manifest.get('version')} is not {CACHE_VERSION}")
    if fingerprint is not None and manifest.get("sources") != fingerprint:
        raise _Stale("the records or table changed since it was built")
    if changed is not None and manifest.get("sources_changed", changed) != changed:
        raise _Stale("a record file was rewritten since it was built (its change time moved)")
    n, t = int(manifest["n_records"]), int(manifest["length"])
    try:
        signals = np.load(path / "signals.npy", mmap_mode="r")
        gain = np.load(path / "gain.npy")
        baseline = np.load(path / "baseline.npy")
        ecg_ids = np.load(path / "ecg_ids.npy")
    except (OSError, ValueError) as exc:
        raise _Stale(f"its arrays are unreadable ({exc})") from None
    if (
        signals.shape != (n, len(LEADS), t)
        or signals.dtype != np.int16
        or gain.shape != (n, len(LEADS))
        or baseline.shape != (n, len(LEADS))
        or ecg_ids.shape != (n,)
    ):
        raise _Stale("its arrays do not have the shapes its manifest records")
    return SignalStore(path, signals, gain, baseline, ecg_ids, manifest)


def _read_chunk(
    start: int, stems: list[str], signals_path: str, sampling_rate: int, length: int, root: str
) -> tuple[int, np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """Worker: read ``stems`` into rows ``start...`` of the memmap; return gains and baselines."""
    out = np.load(signals_path, mmap_mode="r+")
    gains = np.empty((len(stems), len(LEADS)), dtype=np.float32)
    baselines = np.empty_like(gains)
    invalid: list[tuple[int, int]] = []
    guard = RootGuard(root)
    for k, stem in enumerate(stems):
        escape = guard.problem(stem)  # a symlink out of the data root is not read
        if escape is not None:
            raise RecordError(stem, f"{escape}; `ecg data verify` lists every such record")
        adc, gain, baseline, _ = read_standard_record(Path(stem), sampling_rate, length)
        bad = adc == INVALID_INT16
        if bad.any():
            # a missing sample becomes the lead's baseline (0 mV) and is counted in the manifest
            adc = np.where(bad, baseline[:, None].astype(np.int16), adc)
            invalid.append((start + k, int(bad.sum())))
        out[start + k] = adc
        gains[k] = gain
        baselines[k] = baseline
    out.flush()
    return start, gains, baselines, invalid


def build_cache(
    dataset: PTBXL,
    path: Path,
    workers: int = 1,
    callback: Callback = ignore,
    fingerprint: str | None = None,
    changed: str | None = None,
) -> SignalStore:
    """Read every record of ``dataset`` into a new cache at ``path`` (atomically replaced)."""
    t0 = time.perf_counter()
    n, length = len(dataset), dataset.record_length
    if fingerprint is None or changed is None:
        fingerprint, changed = source_fingerprints(dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        signals_path = str(tmp / "signals.npy")
        np.lib.format.open_memmap(
            signals_path, mode="w+", dtype=np.int16, shape=(n, len(LEADS), length)
        ).flush()
        gains = np.empty((n, len(LEADS)), dtype=np.float32)
        baselines = np.empty_like(gains)
        invalid: list[tuple[int, int]] = []
        stems = [str(p) for p in dataset.record_paths]
        results = map_chunks(
            _read_chunk,
            stems,
            signals_path,
            dataset.sampling_rate,
            length,
            str(dataset.root),
            workers=workers,
            task="cache",
            description=f"caching {n} records",
            callback=callback,
        )
        for start, g, b, bad in results:
            gains[start : start + len(g)], baselines[start : start + len(g)] = g, b
            invalid += bad
        # Ctrl-C held until these small writes are done: numpy turns a KeyboardInterrupt
        # that lands inside ndarray.tofile into a TypeError (seen under load in tests/faults)
        with ctrl_c_deferred():
            np.save(tmp / "gain.npy", gains)
            np.save(tmp / "baseline.npy", baselines)
            np.save(tmp / "ecg_ids.npy", dataset.ecg_ids.astype(np.int64))
        invalid.sort()
        manifest = {
            "version": CACHE_VERSION,
            "ecgcli_version": __version__,
            "data_root": str(Path(dataset.root).resolve()),
            "sampling_rate": dataset.sampling_rate,
            "length": length,
            "n_records": n,
            "dtype": "int16",
            "leads": list(LEADS),
            "sources": fingerprint,
            "sources_changed": changed,
            "cache_id": fingerprint[:12],
            "build_seconds": round(time.perf_counter() - t0, 3),
            "workers": workers,
            "invalid_samples": {
                "records": len(invalid),
                "samples": sum(k for _, k in invalid),
                "first_ecg_ids": [int(dataset.ecg_ids[r]) for r, _ in invalid[:20]],
                # every record with missing samples: [ecg_id, count], for the trainer's check
                "per_record": [[int(dataset.ecg_ids[r]), k] for r, k in invalid],
            },
        }
        with open(tmp / "manifest.json", "w") as f:  # written last, fsynced before the swap
            f.write(json.dumps(manifest, indent=2))
            f.flush()
            os.fsync(f.fileno())
        _swap_in(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return open_cache(path, fingerprint, changed)

    return True


def _swap_in(tmp: Path, path: Path) -> None:
    """Replace ``path`` by the finished ``tmp`` directory; a reader never sees a half cache."""
    old = path.parent / f".{path.name}.old-{socket.gethostname()}-{os.getpid()}"
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


INVALID_LIMIT = 0.01
"""A record with more than this fraction of its samples missing is refused for training."""


def check_invalid_samples(store: SignalStore, allow: bool = False, callback: Callback = ignore) -> None:
    """Warn about records with missing samples (WFDB's 0x8000, cached as 0 mV), naming them;
    refuse when any record is more than :data:`INVALID_LIMIT` missing, since it would be
    trained on as flat lines, unless ``allow`` (``--allow-invalid``)."""
    info = store.manifest.get("invalid_samples") or {}
    if not info.get("records"):
        return
    per_samples = len(LEADS) * store.length
    if "per_record" in info:
        counts = [(int(e), int(k)) for e, k in info["per_record"]]
    else:  # a cache built before per-record counts: the first ids, with the mean count
        mean = int(info["samples"]) // max(int(info["records"]), 1)
        counts = [(int(e), mean) for e in info.get("first_ecg_ids", [])]
    over = [(e, k) for e, k in counts if k > INVALID_LIMIT * per_samples]

    def listed(items: list[tuple[int, int]]) -> str:
        shown = ", ".join(f"{e} ({_share(k / per_samples)})" for e, k in items[:5])
        return shown + (f" and {len(items) - 5} more" if len(items) > 5 else "")

    summary = (
        f"{info['records']} record(s) have {info['samples']} missing samples (cached as 0 mV); "
        f"ecg_id (share missing): {listed(counts)}"
    )
    if over and not allow:
        raise DataError(
            f"{len(over)} record(s) are more than {INVALID_LIMIT:.0%} missing samples and would be "
            f"trained on as flat 0 mV lines: ecg_id {listed(over)}; fix or remove them "
            "(`ecg data verify` lists them), or pass --allow-invalid to train anyway"
        )
    callback(Message(summary, "warning"))


def _share(x: float) -> str:
    return f"{x:.0%}" if x >= 0.01 else f"{x:.1%}"


def ensure_cache(
    dataset: PTBXL,
    cache_root: Path,
    workers: int = 1,
    callback: Callback = ignore,
    rebuild: bool = False,
) -> SignalStore:
    """The dataset's cache: reused when its manifest matches, (re)built otherwise.

    Builds of one cache are serialised by a lock file beside it (``.NAME.lock``): a second
    process waits for the first and then reuses its result instead of doing the work twice.
    Temporaries left by builds whose process is gone (a kill) are removed first.
    """
    from filelock import FileLock, Timeout

    path = cache_dir_for(cache_root, dataset.root, dataset.sampling_rate)
    fingerprint, changed = source_fingerprints(dataset)
    # a live builder's temporaries are kept: the pid in their name says whose they are
    for left in remove_stale_temporaries(path.parent, path.name):
        callback(Message(f"removed {left.name}, left by an interrupted cache build", "warning"))
    if not rebuild:
        try:
            return open_cache(path, fingerprint, changed)  # the common case takes no lock
        except _Stale:
            pass
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path.parent / f".{path.name}.lock"))
    waited = False
    try:
        lock.acquire(timeout=0)
    except Timeout:
        callback(Message(f"waiting for another process to finish building the signal cache {path}"))
        lock.acquire()
        waited = True
    try:
        if path.exists():
            try:
                store = open_cache(path, fingerprint, changed)
            except _Stale as why:
                callback(Message(f"signal cache {path} is stale: {why}; rebuilding", "warning"))
            else:
                if not rebuild or waited:  # a forced rebuild reuses one that finished meanwhile
                    return store
        elif not rebuild:
            callback(Message(f"building the signal cache in {path} (first use of this dataset)"))
        return build_cache(dataset, path, workers, callback, fingerprint, changed)
    finally:
        lock.release()
