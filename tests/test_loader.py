"""Balancing strategies: seeded, state-free, and doing what they promise."""

from __future__ import annotations

import numpy as np
import pytest

from ecgcli.data.loader import EpochSampler, batch_slices, oversample_weights
from ecgcli.errors import ConfigError


def _labels(n: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.random((n, 5)) < [0.45, 0.25, 0.25, 0.08, 0.2]).astype(np.uint8)


@pytest.mark.parametrize("strategy", ["oversample", "stratified", "standard"])
def test_order_is_a_function_of_seed_and_epoch(strategy: str) -> None:
    y = _labels()
    a, b = EpochSampler(y, strategy, 1), EpochSampler(y, strategy, 1)
    assert np.array_equal(a.order(3), b.order(3))
    assert not np.array_equal(a.order(3), a.order(4))
    assert not np.array_equal(a.order(3), EpochSampler(y, strategy, 2).order(3))
    assert len(a.order(0)) == len(y)


def test_oversample_lifts_minorities_towards_the_majority() -> None:
    y = _labels()
    before, after = EpochSampler(y, "oversample", 0).frequencies()
    assert after[3] > 2 * before[3]  # the rarest class at least doubles
    assert after.max() / after.min() < before.max() / before.min() / 2
    drawn = y[EpochSampler(y, "oversample", 0).order(0)].mean(axis=0)
    np.testing.assert_allclose(drawn, after, atol=0.03)  # the sampler delivers the report
    w = oversample_weights(y)
    assert w.sum() == pytest.approx(1.0)


def test_stratified_batches_follow_label_proportions() -> None:
    y = _labels()

    def spread(strategy: str) -> float:
        order = EpochSampler(y, strategy, 5).order(0)
        fr = np.array([y[order[s]].mean(axis=0) for s in batch_slices(len(y), 64)])
        return float(fr.std(axis=0).mean())

    assert spread("stratified") < 0.5 * spread("standard")
    assert sorted(EpochSampler(y, "stratified", 5).order(0)) == list(range(len(y)))


def test_unknown_strategy_and_batches() -> None:
    with pytest.raises(ConfigError, match="unknown balance strategy 'smote'"):
        EpochSampler(_labels(10), "smote", 0)
    assert [(s.start, s.stop) for s in batch_slices(129, 64)] == [(0, 64), (64, 129)]
    assert [(s.start, s.stop) for s in batch_slices(130, 64)] == [(0, 64), (64, 128), (128, 130)]
