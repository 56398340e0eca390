"""A split's signals for training: streamed from the memory-mapped cache, or one tensor.

Training never reads WFDB files. On a CPU a split's records stay in the int16 cache
(:class:`CachedRows`): each batch (a training batch, or a pass of evaluation windows) is gathered
from the memory map and normalised when it is drawn, so a run holds one batch of float32 signals
instead of whole folds (17,111 PTB-XL training records are 821 MB in float32, folds 9 and 10 another
206 MB; a batch of 128 is 6 MB, and reading it costs milliseconds against a training step's
second). On a GPU the rows are normalised once into one preallocated float32 tensor
(:func:`signals_tensor`), read in chunks through the same :class:`CachedRows`, so both paths give
the same numbers bit for bit.
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


class CachedRows:
    """Records of a split left in the memory-mapped cache; :meth:`take` reads and normalises a
    batch of them when it is drawn (every lead of the cache, or the cache rows ``leads``;
    ``norm`` then has one entry per selected lead)."""

    device = torch.device("cpu")

    def __init__(
        self, store: SignalStore, rows: np.ndarray, norm: LeadNorm, leads: list[int] | None = None
    ) -> None:
        self.store, self.rows, self.norm, self.leads = store, np.asarray(rows), norm, leads
        n_leads = store.signals.shape[1] if leads is None else len(leads)
        self.shape = (len(self.rows), n_leads, store.length)

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, positions: torch.Tensor | np.ndarray | slice) -> torch.Tensor:
        """Normalised float32 signals ``(b, L, T)`` of the records at ``positions``."""
        if isinstance(positions, torch.Tensor):
            positions = positions.cpu().numpy()
        x = self.store.get(self.rows[positions])
        return torch.from_numpy(self.norm.apply(x if self.leads is None else x[:, self.leads]))

    def __getitem__(self, rows: slice) -> torch.Tensor:
        """``x[a:b]`` as a tensor's: what evaluation passes read (see ``scoring.evaluate``)."""
        if not isinstance(rows, slice):
            raise TypeError("CachedRows are sliced by a range of records; use take() for others")
        return self.take(rows)


def signals_tensor(
    store: SignalStore, rows: np.ndarray, norm: LeadNorm, leads: list[int] | None = None
) -> torch.Tensor:
    """Normalised signals of ``rows`` as one contiguous float32 CPU tensor ``(N, L, T)`` (see
    :class:`CachedRows` for ``leads`` and ``norm``)."""
    source = CachedRows(store, rows, norm, leads)
    out = torch.empty(source.shape, dtype=torch.float32)
    for s in range(0, len(source), _CHUNK):
        out[s : s + _CHUNK] = source.take(slice(s, s + _CHUNK))
    return out


def split_signals(
    store: SignalStore,
    rows: np.ndarray,
    norm: LeadNorm,
    device: torch.device,
    leads: list[int] | None = None,
) -> torch.Tensor | CachedRows:
    """A split's records as a run reads them: left in the cache on a CPU (see the module's
    docstring), one tensor on the accelerator otherwise."""
    if device.type == "cpu":
        return CachedRows(store, rows, norm, leads)
    return signals_tensor(store, rows, norm, leads).to(device)


def take_rows(x: torch.Tensor | CachedRows, rows: torch.Tensor) -> torch.Tensor:
    """The records ``rows`` of a tensor or of :class:`CachedRows`, as a float32 tensor."""
    return x.take(rows) if isinstance(x, CachedRows) else x.index_select(0, rows)


def labels_tensor(labels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(labels.astype(np.float32))


def random_crop(x: torch.Tensor, window: int, generator: torch.Generator) -> torch.Tensor:
    """An independent random ``window``-sample crop of each record (one gather, no loop)."""
    b, c, t = x.shape
    start = torch.randint(0, t - window + 1, (b,), generator=generator, device=x.device)
    idx = start[:, None] + torch.arange(window, device=x.device)
    return x.gather(2, idx[:, None, :].expand(b, c, window))
