"""Balancing strategies and batches.

An epoch's order is a pure function of ``(strategy, labels, seed, epoch)``: no sampler state
to save, so an interrupted run resumes on exactly the batches it would have seen, and every
rank of a distributed run can compute the same order and take its own disjoint shard.

- ``standard``: a random permutation.
- ``oversample``: N draws with replacement, record i drawn with probability proportional to
  ``max over its classes c of n_max / n_c`` (multi-label aware: a record counts as its rarest
  class), so minority classes approach the majority's frequency.
- ``stratified``: a permutation in which every label combination is spread evenly over the
  epoch, so each batch follows the training set's label proportions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from ecgcli.errors import ConfigError

STRATEGIES = ("oversample", "stratified", "standard")

Order = TypeVar("Order")  # a numpy array or a torch tensor of positions


def oversample_weights(labels: np.ndarray) -> np.ndarray:
    """Sampling weight of each record (sums to 1); unlabelled rows get the smallest weight."""
    counts = labels.sum(axis=0).astype(np.float64)
    per_class = np.where(counts > 0, counts.max() / np.maximum(counts, 1), 0.0)
    w = (labels * per_class).max(axis=1)
    w = np.where(w > 0, w, per_class[per_class > 0].min() if (per_class > 0).any() else 1.0)
    return w / w.sum()


def class_frequencies(labels: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Expected fraction of drawn records carrying each class under ``weights``."""
    if weights is None:
        return labels.mean(axis=0)
    return weights @ labels


@dataclass(frozen=True)
class EpochSampler:
    """Positions (into ``labels``) of one epoch's records for a balancing strategy."""

    labels: np.ndarray
    strategy: str
    seed: int

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(
                f"unknown balance strategy {self.strategy!r} (choose from {', '.join(STRATEGIES)})"
            )

    def frequencies(self) -> tuple[np.ndarray, np.ndarray]:
        """Class frequencies of the training set, and as the sampler presents them."""
        before = class_frequencies(self.labels)
        if self.strategy == "oversample":
            return before, class_frequencies(self.labels, oversample_weights(self.labels))
        return before, before

    def order(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch, 0xBA7C])
        n = len(self.labels)
        if self.strategy == "standard":
            return rng.permutation(n)
        if self.strategy == "oversample":
            return rng.choice(n, size=n, replace=True, p=oversample_weights(self.labels))
        keys = self.labels @ (1 << np.arange(self.labels.shape[1]))
        position = np.empty(n)
        for k in np.unique(keys):
            members = np.flatnonzero(keys == k)
            rank = rng.permutation(len(members))
            position[members] = (rank + rng.random()) / len(members)
        return np.argsort(position + rng.random(n) * 1e-9, kind="stable")


def batch_slices(n: int, batch_size: int) -> list[slice]:
    """Consecutive batches over ``n`` items; a final batch of one is merged into the previous
    one (BatchNorm cannot train on a single record)."""
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    starts = list(range(0, n, batch_size))
    slices = [slice(s, min(s + batch_size, n)) for s in starts]
    if len(slices) > 1 and slices[-1].stop - slices[-1].start == 1:
        slices[-2] = slice(slices[-2].start, n)
        slices.pop()
    return slices


def shard_order(order: Order, rank: int, world: int) -> Order:
    """This rank's share of an epoch's ``order`` in a data-parallel run (numpy or torch).

    The order is truncated to a multiple of ``world`` (at most ``world - 1`` records of the
    epoch are left out), so every rank gets the same number of records and hence of batches:
    unequal counts would deadlock the gradient all-reduce. Rank ``r`` takes every
    ``world``-th record from position ``r``: shards are disjoint, cover the truncated order,
    and batch ``j`` of all ranks together is batch ``j`` of the order at ``world`` times the
    per-rank batch size. ``world == 1`` returns ``order`` itself.
    """
    if world == 1:
        return order
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside a world of {world}")
    usable = len(order) - len(order) % world  # type: ignore[arg-type]
    if usable == 0:
        raise ConfigError(f"{len(order)} records cannot be shared by {world} processes")  # type: ignore[arg-type]
    return order[:usable][rank::world]  # type: ignore[index]
