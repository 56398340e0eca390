"""Labelled-fraction sampling: which training records keep their labels at 1%, 10%, ... .

Two deterministic samplers (same labels, pool, fraction and seed: same rows):

- :func:`sample_by_combination` (``superdiagnostic``, ecgcli's original sampler, unchanged
  so every earlier split is reproduced): strata are exact label combinations. With five
  classes the 23 combinations PTB-XL uses are well populated, so each keeps its share.
- :func:`sample_rarest_first` (every other task): with 19-71 rare, co-occurring labels
  almost every combination is unique and combination strata degenerate into random sampling.
  Instead, in the spirit of the iterative stratification (Sechidis et al., 2011, "On the
  stratification of multi-label data") that made PTB-XL's own ``strat_fold``, classes are
  served rarest first: each gets ``max(1, round(fraction x its pool count))`` records, drawn
  at random among rows not yet chosen, preferring rows whose other classes still need records
  (so co-occurring labels do not overshoot). The sample is then brought to the exact size by
  random additions or by removing the records of the most over-served classes, never a
  class's last record.

Guarantees of :func:`sample_rarest_first`: the sample has exactly ``max(1, round(fraction x
n))`` rows unless more are needed to give every class one record (possible only when that
size is below the number of classes); every class with at least one record in the pool has
at least one in the sample; each class has about ``fraction`` of its pool records (rarest
first, so rare classes are exact up to rounding and the cap of one).
"""

from __future__ import annotations

import numpy as np

from ecgcli.errors import ConfigError


def _check(fraction: float) -> None:
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"label fraction must be in (0, 1], got {fraction}")


def sample_by_combination(labels: np.ndarray, pool: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A deterministic, label-stratified sample of ``fraction`` of the rows in ``pool``.

    Rows are grouped by their exact label combination and each group contributes its share
    (largest remainders decide the rounding), so rare combinations keep their proportion. Every
    class present in the pool is guaranteed at least one example. Returns sorted row positions.
    """
    _check(fraction)
    pool = np.asarray(pool)
    if fraction == 1.0 or len(pool) == 0:
        return np.sort(pool)
    rng = np.random.default_rng(seed)
    target = max(1, int(round(fraction * len(pool))))
    keys = labels[pool] @ (1 << np.arange(labels.shape[1]))
    groups = [rng.permutation(pool[keys == k]) for k in np.unique(keys)]
    exact = np.array([fraction * len(g) for g in groups])
    take = np.floor(exact).astype(int)
    order = np.lexsort((rng.random(len(groups)), -(exact - take)))
    take[order[: target - take.sum()]] += 1
    chosen = np.concatenate([g[:t] for g, t in zip(groups, take, strict=True)])
    for c in range(labels.shape[1]):
        if labels[pool, c].any() and not labels[chosen, c].any():
            # a class too rare to survive rounding still gets one example
            candidates = pool[labels[pool, c] == 1]
            chosen = np.append(chosen, rng.choice(candidates))
    return np.sort(np.unique(chosen))


def sample_rarest_first(labels: np.ndarray, pool: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Rarest-class-first stratified sample of ``fraction`` of ``pool`` (see the module doc).

    One pass per class, not per record: each class's candidates are ranked with array
    operations. Returns sorted row positions.
    """
    _check(fraction)
    pool = np.asarray(pool)
    if fraction == 1.0 or len(pool) == 0:
        return np.sort(pool)
    rng = np.random.default_rng(seed)
    y = labels[pool].astype(bool)
    n = len(pool)
    target = max(1, int(round(fraction * n)))
    counts = y.sum(axis=0)
    quota = np.where(counts > 0, np.maximum(1, np.round(fraction * counts)), 0).astype(np.int64)
    priority = rng.random(n)  # the random order among otherwise equal rows
    order = np.lexsort((rng.random(len(counts)), counts))
    chosen = np.zeros(n, dtype=bool)
    got = np.zeros(len(counts), dtype=np.int64)
    for c in order[counts[order] > 0]:
        want = quota[c] - got[c]
        if want <= 0:
            continue
        cand = np.flatnonzero(y[:, c] & ~chosen)
        # rows that would push an already served class further over its quota come last
        overshoot = (y[cand] & (got >= quota)).sum(axis=1)
        pick = cand[np.lexsort((priority[cand], overshoot))[:want]]
        chosen[pick] = True
        got += y[pick].sum(axis=0)
    share = np.maximum(fraction * counts, 1e-9)
    while chosen.sum() < target:
        # all quotas are met: top up with rows whose classes are the least served so far, in
        # rounds of at most a quarter of what is missing and one row per class, so that no
        # class takes the whole top-up
        served = np.where(counts > 0, got / share, np.inf)
        cand = np.flatnonzero(~chosen)
        ratio = np.where(y[cand], served, -np.inf)
        worst = ratio.max(axis=1)
        worst[~y[cand].any(axis=1)] = np.inf  # a row of no class serves none: last
        ranked = np.lexsort((priority[cand], worst))
        add = _one_per_class(cand[ranked], ratio[ranked].argmax(axis=1))[: _round_size(target - chosen.sum())]
        chosen[add] = True
        got += y[add].sum(axis=0)
    while chosen.sum() > target:
        # remove rows of the most over-served classes, in the same rounds, never a class's
        # last record
        cand = np.flatnonzero(chosen & ~(y & (got <= 1)).any(axis=1))
        if len(cand) == 0:
            break  # every chosen row holds some class's only record
        excess = np.where(y[cand], got / share, -np.inf)
        ranked = np.lexsort((priority[cand], -excess.max(axis=1)))
        drop = _one_per_class(cand[ranked], excess[ranked].argmax(axis=1))[
            : _round_size(chosen.sum() - target)
        ]
        # two dropped rows may hold a class's last two records: then drop only the first
        if ((got - y[drop].sum(axis=0))[got > 0] < 1).any():
            drop = drop[:1]
        chosen[drop] = False
        got -= y[drop].sum(axis=0)
    return np.sort(pool[chosen])


def _one_per_class(rows: np.ndarray, key: np.ndarray) -> np.ndarray:
    """The first of ``rows`` (already ranked) for each distinct ``key``, in rank order."""
    _, first = np.unique(key, return_index=True)
    return rows[np.sort(first)]


def _round_size(missing: int) -> int:
    return max(1, int(missing) // 4)
