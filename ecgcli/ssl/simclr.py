"""SimCLR: contrastive pretraining with the NT-Xent loss.

Chen, Kornblith, Norouzi, Hinton (2020), "A Simple Framework for Contrastive Learning of
Visual Representations", ICML, https://arxiv.org/abs/2002.05709.

Two augmented views of each record go through the encoder and a small projection MLP; the loss
pulls each view's projection towards the other view of the same record and away from every
other view in the batch. Only the encoder is kept for fine-tuning: the paper shows the layer
before the projection head transfers better than the projection itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ecgcli.errors import ConfigError

#: ``gather(z_local) -> (z_all, offset)``: the rows of every process (rank order, gradients
#: kept, e.g. ``torch.distributed.nn.functional.all_gather`` concatenated) and the index of
#: this process's first row in them, so ``z_all[offset : offset + len(z_local)]`` is ``z_local``.
Gather = Callable[[Tensor], tuple[Tensor, int]]


class ProjectionHead(nn.Module):
    """SimCLR's projection MLP ``g``: Linear-BatchNorm-ReLU-Linear (Chen et al., 2020, Sec. 2.1).

    The first Linear has no bias because BatchNorm's shift replaces it.
    """

    def __init__(self, in_dim: int = 256, hidden_dim: int = 2048, out_dim: int = 128) -> None:
        super().__init__()
        if min(in_dim, hidden_dim, out_dim) < 1:
            raise ConfigError(f"head dimensions must be >= 1, got {in_dim}, {hidden_dim}, {out_dim}")
        self.in_dim, self.hidden_dim, self.out_dim = in_dim, hidden_dim, out_dim
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim, bias=False),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )

    def forward(self, h: Tensor) -> Tensor:
        return self.net(h)


def nt_xent_loss(
    z1: Tensor,
    z2: Tensor,
    temperature: float = 0.07,
    gather: Gather | None = None,
    *,
    reduction: Literal["mean", "none"] = "mean",
) -> Tensor:
    """Normalised-temperature cross-entropy (NT-Xent; Chen et al., 2020, Eq. 1).

    ``z1[i]`` and ``z2[i]`` are projections of two views of record ``i`` (``(N, D)`` each).
    All 2N rows are L2-normalised; row ``i`` of ``[z1; z2]`` scores every other row by cosine
    similarity / ``temperature`` (its own similarity is masked out), and its positive is the
    *other* view of the same record (``i <-> i + N``), for every row. The loss is the
    cross-entropy of that positive, averaged over all 2N rows (``reduction="none"`` returns
    the 2N per-row losses instead). Any N >= 2 works, odd last batches included.

    ``gather`` (for data-parallel training) turns local rows into the keys of all processes:
    the local 2N rows stay the queries, and each is scored against the gathered ``[z1_all;
    z2_all]``. Self-similarity and positives are found through the returned offset, so with
    ``gather=None`` (or one process) this is exactly the plain loss, and the mean of the
    per-process losses equals the loss of the whole global batch.

    Raises :class:`ConfigError` for ``temperature <= 0`` or fewer than two records.
    """
    if not temperature > 0:
        raise ConfigError(f"NT-Xent temperature must be > 0, got {temperature}")
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must both be (N, D), got {tuple(z1.shape)}, {tuple(z2.shape)}")
    n = z1.shape[0]
    if n < 2:
        raise ConfigError(
            f"contrastive loss needs at least 2 records per batch (got {n}): "
            "raise the batch size or drop the last short batch"
        )
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    if gather is None:
        k1, k2, offset = z1, z2, 0
    else:
        k1, offset = gather(z1)
        k2, offset2 = gather(z2)
        if offset != offset2 or k1.shape != k2.shape or not 0 <= offset <= k1.shape[0] - n:
            raise ValueError("gather must return the same layout for both views, local rows included")
    m = k1.shape[0]
    queries = torch.cat([z1, z2])  # (2N, D)
    keys = torch.cat([k1, k2])  # (2M, D)
    logits = queries @ keys.T / temperature  # (2N, 2M)
    rows = torch.arange(n, device=z1.device)
    own = torch.cat([offset + rows, m + offset + rows])  # column of each query itself
    positive = torch.cat([m + offset + rows, offset + rows])  # column of its other view
    is_self = torch.zeros_like(logits, dtype=torch.bool)
    is_self[torch.arange(2 * n, device=z1.device), own] = True
    logits = logits.masked_fill(is_self, float("-inf"))
    return F.cross_entropy(logits, positive, reduction=reduction)


class SimCLR(nn.Module):
    """Encoder + projection head trained with NT-Xent (Chen et al., 2020).

    ``forward(v1, v2)`` encodes both views in one pass (their concatenation), so BatchNorm sees
    the statistics of the whole 2N batch, as in the paper's global BN, then returns the loss.
    """

    def __init__(
        self,
        encoder: nn.Module,
        feature_dim: int = 256,
        hidden_dim: int = 2048,
        projection_dim: int = 128,
        temperature: float = 0.07,
        *,
        gather: Gather | None = None,
    ) -> None:
        super().__init__()
        if not temperature > 0:
            raise ConfigError(f"NT-Xent temperature must be > 0, got {temperature}")
        self.encoder = encoder
        self.projector = ProjectionHead(feature_dim, hidden_dim, projection_dim)
        self.temperature = temperature
        self.gather = gather

    def forward(self, v1: Tensor, v2: Tensor) -> Tensor:
        if v1.shape != v2.shape:
            raise ValueError(f"views differ in shape: {tuple(v1.shape)} vs {tuple(v2.shape)}")
        z1, z2 = self.projector(self.encoder(torch.cat([v1, v2]))).chunk(2)
        return nt_xent_loss(z1, z2, self.temperature, self.gather)
