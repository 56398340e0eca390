"""Getting a split's signals into memory once, normalised, as torch tensors.

Training never reads WFDB files: rows come from the memory-mapped cache in chunks and are
normalised into one preallocated float32 tensor (82 MB for 1,711 records at 100 Hz). Batches
are then ``index_select`` on that tensor, on the training device, so the data path costs next
to nothing per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ecgcli.data.cache import SignalStore, check_invalid_samples, ensure_cache
from ecgcli.data.normalize import LeadNorm
from ecgcli.data.ptbxl import PTBXL, Split, load_ptbxl
from ecgcli.events import Callback, Message, ignore

_CHUNK = 1024


@dataclass
class TrainingData:
    dataset: PTBXL
    split: Split
    store: SignalStore


class DataOptions(Protocol):
    """The fields of a run's configuration that say which records it reads and how (every
    configuration of :mod:`ecgcli.train.config` has them)."""

    data_root: str
    cache_dir: str
    sampling_rate: int
    workers: int
    seed: int
    task: str
    allow_invalid: bool


def load_training_data(cfg: DataOptions, label_fraction: float, callback: Callback = ignore) -> TrainingData:
    """Tables labelled for ``cfg.task``, the standard split for ``cfg.seed`` and the signal
    cache (built on first use); records with missing samples are named, and refused above the
    limit unless ``cfg.allow_invalid`` (see :func:`~ecgcli.data.cache.check_invalid_samples`);
    classes of the task that no record has are named in a warning (see ``PTBXL.dropped_classes``)."""
    ds = load_ptbxl(Path(cfg.data_root), cfg.sampling_rate, task=cfg.task)
    split_data(ds, None, label_fraction, cfg.seed)  # a task that cannot train fails before the cache
    note = ds.dropped_note()
    if note is not None:  # fewer outputs than the task names: never silently
        callback(Message(note, "warning"))
    return split_data(ds, signal_store(ds, cfg, callback), label_fraction, cfg.seed)


def load_signals(cfg: DataOptions, callback: Callback = ignore) -> tuple[PTBXL, SignalStore]:
    """The tables and the signal cache of ``cfg`` without a split: what several runs of one
    grid share (each then takes its task and split)."""
    ds = load_ptbxl(Path(cfg.data_root), cfg.sampling_rate, task=cfg.task)
    return ds, signal_store(ds, cfg, callback)


def signal_store(ds: PTBXL, cfg: DataOptions, callback: Callback = ignore) -> SignalStore:
    """The signal cache of ``ds`` (built on first use), its records with missing samples checked."""
    store = ensure_cache(ds, Path(cfg.cache_dir), cfg.workers, callback)
    check_invalid_samples(store, cfg.allow_invalid, callback)
    return store


def split_data(ds: PTBXL, store: SignalStore | None, label_fraction: float, seed: int) -> TrainingData:
    """The standard split of ``ds`` (labelled for its task) for ``seed``, checked: a class
    absent from the labelled fraction, fold 9 or fold 10 is one line, before any training."""
    split = ds.split(label_fraction, seed)
    ds.check_classes(split)
    return TrainingData(ds, split, store)


def signals_tensor(
    store: SignalStore, rows: np.ndarray, norm: LeadNorm, leads: list[int] | None = None
) -> torch.Tensor:
    """Normalised signals of ``rows`` as one contiguous float32 CPU tensor ``(N, L, T)``:
    every lead of the cache, or the cache rows ``leads`` (``norm`` then has one entry per
    selected lead)."""
    rows = np.asarray(rows)
    n_leads = store.signals.shape[1] if leads is None else len(leads)
    out = torch.empty((len(rows), n_leads, store.length), dtype=torch.float32)
    for s in range(0, len(rows), _CHUNK):
        x = store.get(rows[s : s + _CHUNK])
        out[s : s + _CHUNK] = torch.from_numpy(norm.apply(x if leads is None else x[:, leads]))
    return out


def labels_tensor(labels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(labels.astype(np.float32))


def random_crop(x: torch.Tensor, window: int, generator: torch.Generator) -> torch.Tensor:
    """An independent random ``window``-sample crop of each record (one gather, no loop)."""
    b, c, t = x.shape
    start = torch.randint(0, t - window + 1, (b,), generator=generator, device=x.device)
    idx = start[:, None] + torch.arange(window, device=x.device)
    return x.gather(2, idx[:, None, :].expand(b, c, window))
