"""The random streams every epoch and every rank derive from ``(seed, epoch)``, so resumed and
distributed runs see the same batches as a plain one-process run.
"""

from __future__ import annotations


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A seed for one epoch (and one random stream), the same in every process."""
    return (seed * 1_000_003 + epoch * 7919 + stream * 104_729) % (2**63 - 1)


def rank_stream(stream: int, rank: int) -> int:
    """Rank ``rank``'s own version of a random stream; rank 0's is the one-process stream."""
    return stream + 1000 * rank
