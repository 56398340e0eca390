"""Records of other WFDB folders added to SSL pretraining (``ecg train ssl --pretrain-data``).

Self-supervised pretraining reads no labels, so any 12-lead set can add records to folds 1-8.
Each added record goes through :func:`ecgcli.data.records.prepare_record`, the path ``ecg
predict`` takes (12 leads matched by name, mV, polyphase resampling to the run's rate), and
its first window of the cache's length is kept (a shorter record is zero-padded). Samples are
stored as the signal cache stores them: int16 at 1 µV (the cache's 0.001 mV precision).

**Leakage guard.** Folds 9 and 10 are PTB-XL's validation and test folds; a record of theirs
in pretraining would leak them into the encoder. Two checks, either of which counts a record:

1. *content*: a hash of the prepared signal, rounded to 1 µV, against the same hash of every
   fold-9/10 record of the run's signal cache; a copied or renamed record matches exactly;
2. *name*: a file called ``NNNNN_lr`` or ``NNNNN_hr`` (PTB-XL's pattern) whose ``ecg_id``
   NNNNN is in fold 9 or 10 of the run's table; this also catches the 500 Hz copy of a
   record whose resampled samples differ from the 100 Hz file's.

Added records that duplicate a folds 1-8 record (same checks) or each other are dropped.

Reading is parallel (:func:`ecgcli.data.parallel.map_chunks`); the prepared records of a
folder are cached under the cache directory, keyed by the folder, the rate, the length and
every record file's size and mtime, so a rerun or ``--resume`` does not read them again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecgcli import LEADS
from ecgcli.data.cache import SignalStore
from ecgcli.data.parallel import map_chunks
from ecgcli.data.ptbxl import PTBXL
from ecgcli.data.records import file_stamp, prepare_record, resolve_records
from ecgcli.errors import ConfigError, RecordError
from ecgcli.events import Callback, Message, ignore
from ecgcli.files import atomic_write_bytes

EXTRA_CACHE_VERSION = 1
_PTBXL_NAME = re.compile(r"^(\d{5})_(lr|hr)$")
_HELD_OUT = (9, 10)
_CHUNK = 1024


@dataclass
class ExtraRecords:
    """Records added to pretraining: ``signals`` ``(N, 12, T)`` int16 in µV, and per folder
    what was found and added (saved in metrics.json and the checkpoint sidecar)."""

    signals: np.ndarray
    sources: list[dict]

    def __len__(self) -> int:
        return len(self.signals)

    def millivolts(self) -> np.ndarray:
        return self.signals.astype(np.float32) / 1000.0


def fingerprints(signals_uv: np.ndarray) -> list[bytes]:
    """One hash per record of int16 µV signals ``(N, 12, T)``: equal records, equal hashes."""
    x = np.ascontiguousarray(signals_uv, dtype=np.int16)
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in x]


def store_fingerprints(store: SignalStore, rows: np.ndarray) -> list[bytes]:
    """:func:`fingerprints` of cache rows, each converted to mV and rounded to 1 µV.

    A row stored at 1000 ADC units per mV with baseline 0 (every PTB-XL record) already *is*
    its µV signal, so its int16 samples are hashed as they are, without the float round trip
    (measured: 0.2 s instead of 2.6 s for 4,000 records at 100 Hz; the result is the same).
    """
    out: list[bytes] = []
    rows = np.asarray(rows)
    for s in range(0, len(rows), _CHUNK):
        chunk = rows[s : s + _CHUNK]
        if np.all(store.gain[chunk] == 1000.0) and np.all(store.baseline[chunk] == 0.0):
            out += fingerprints(store.signals[chunk])
            continue
        mv = store.get(chunk)
        out += fingerprints(np.clip(np.round(mv * 1000.0), -32767, 32767).astype(np.int16))
    return out


def _read_chunk(
    start: int, stems: list[str], fs: int, length: int
) -> tuple[int, np.ndarray, list[int], list[str]]:
    """Worker: prepare ``stems``; returns the µV signals of those that worked, their indices
    into the chunk, and one line per record that failed."""
    sig = np.zeros((len(stems), len(LEADS), length), dtype=np.int16)
    ok: list[int] = []
    failed: list[str] = []
    for k, stem in enumerate(stems):
        try:
            rec = prepare_record(stem, fs, length)
        except RecordError as exc:
            failed.append(f"{exc.record}: {exc.problem}")
            continue
        sig[k] = np.clip(np.round(rec.windows[0] * 1000.0), -32767, 32767)
        ok.append(k)
    return start, sig[ok], ok, failed


def _folder_key(folder: Path, stems: list[Path], fs: int, length: int) -> str:
    h = hashlib.sha256(f"{EXTRA_CACHE_VERSION}\n{folder.resolve()}\n{fs}\n{length}\n".encode())
    for stem in stems:
        parts = [os.path.relpath(stem, folder), *file_stamp(stem, missing="-")]
        h.update(("\t".join(parts) + "\n").encode())
    return h.hexdigest()[:16]


def read_folder(
    folder: Path, fs: int, length: int, cache_dir: Path | None, workers: int = 1, callback: Callback = ignore
) -> tuple[np.ndarray, list[str], list[str]]:
    """Every record under ``folder`` prepared to ``fs`` Hz and ``length`` samples: the µV
    signals, the stems they came from, and one line per record that could not be used."""
    try:
        stems = resolve_records([folder])
    except RecordError as exc:
        raise ConfigError(f"--pretrain-data: {exc.record}: {exc.problem}") from None
    key = _folder_key(folder, stems, fs, length)
    path = Path(cache_dir) / "pretrain-data" / f"{key}.npz" if cache_dir else None
    if path is not None and path.is_file():
        try:
            with np.load(path) as z:
                return z["signals"], json.loads(str(z["stems"])), json.loads(str(z["failed"]))
        except (OSError, ValueError, KeyError):
            pass  # unreadable: read the folder again
    parts: list[tuple[int, np.ndarray, list[int], list[str]]] = list(
        map_chunks(
            _read_chunk,
            [str(s) for s in stems],
            fs,
            length,
            workers=workers,
            task="pretrain-data",
            description=f"reading {len(stems)} records of {folder}",
            callback=callback,
        )
    )
    parts.sort(key=lambda p: p[0])
    signals = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, len(LEADS), length), np.int16)
    used = [str(stems[start + k]) for start, _, ok, _ in parts for k in ok]
    failed = [line for p in parts for line in p[3]]
    if path is not None:
        import io

        buf = io.BytesIO()
        np.savez(buf, signals=signals, stems=json.dumps(used), failed=json.dumps(failed))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buf.getvalue())
    return signals, used, failed


def _named_ecg_id(stem: str) -> int | None:
    m = _PTBXL_NAME.match(Path(stem).name)
    return int(m.group(1)) if m else None


def load_extra_records(
    folders: list[str],
    dataset: PTBXL,
    store: SignalStore,
    pretrain_rows: np.ndarray,
    cache_dir: Path | None,
    workers: int = 1,
    callback: Callback = ignore,
) -> ExtraRecords:
    """The records of ``folders`` to add to the pretraining rows, after the leakage guard.

    Raises :class:`ConfigError` (one line) when any record is a fold 9-10 record, or when a
    folder has no usable record.
    """
    fs, length = dataset.sampling_rate, store.length
    held_out_rows = np.flatnonzero(np.isin(dataset.folds, _HELD_OUT))
    held_out = set(store_fingerprints(store, held_out_rows))
    seen = set(store_fingerprints(store, pretrain_rows))
    fold_of = dict(zip(dataset.ecg_ids.tolist(), dataset.folds.tolist(), strict=True))
    kept: list[np.ndarray] = []
    sources: list[dict] = []
    leaked = 0
    for folder in folders:
        signals, stems, failed = read_folder(Path(folder), fs, length, cache_dir, workers, callback)
        if failed:
            callback(
                Message(
                    f"--pretrain-data {folder}: skipped {len(failed)} of {len(failed) + len(stems)} "
                    f"record(s) that cannot be read or mapped to 12 leads (first: {failed[0]})",
                    "warning",
                )
            )
        if not stems:
            raise ConfigError(f"--pretrain-data {folder}: none of its {len(failed)} record(s) is usable")
        keep = np.ones(len(stems), dtype=bool)
        duplicates = 0
        for i, (fp, stem) in enumerate(zip(fingerprints(signals), stems, strict=True)):
            eid = _named_ecg_id(stem)
            fold = fold_of.get(eid) if eid is not None else None
            if fp in held_out or fold in _HELD_OUT:
                leaked += 1
                keep[i] = False
            elif fp in seen or fold is not None:
                duplicates += 1
                keep[i] = False
            seen.add(fp)
        if duplicates:
            callback(
                Message(
                    f"--pretrain-data {folder}: dropped {duplicates} record(s) that duplicate "
                    "folds 1-8 records already in pretraining (or each other)",
                    "warning",
                )
            )
        kept.append(signals[keep])
        sources.append(
            {
                "dir": str(folder),
                "n_found": len(stems) + len(failed),
                "n_unusable": len(failed),
                "n_duplicates": duplicates,
                "n_added": int(keep.sum()),
            }
        )
    if leaked:
        raise ConfigError(
            f"--pretrain-data: {leaked} record{'s are' if leaked != 1 else ' is'} PTB-XL folds 9-10 "
            "(the validation and test folds); remove them"
        )
    return ExtraRecords(np.concatenate(kept), sources)
