"""Multi-label classification losses (one sigmoid per superclass).

- ``bce``: binary cross-entropy, averaged over records and classes.
- ``focal``: sigmoid focal loss (Lin et al., 2017, "Focal Loss for Dense Object Detection"):
  ``-alpha_t (1 - p_t)^gamma log(p_t)`` with ``alpha_t = alpha`` for positives and
  ``1 - alpha`` for negatives (alpha 0.25, gamma 2, as in the paper and the reference study),
  averaged over records and classes.
- ``weighted``: BCE whose positive term for class c is weighted by ``(N - n_c) / n_c``, the
  inverse of the class's positive frequency relative to its negatives, counted on the labelled
  training records.
- ``class_balanced``: BCE with per-class weights from the effective number of samples (Cui et
  al., 2019, "Class-Balanced Loss Based on Effective Number of Samples"):
  ``w_c = (1 - beta) / (1 - beta^n_c)``, normalised to sum to the number of classes, beta 0.9999.

The SSL objectives (NT-Xent, BYOL) live in :mod:`ecgcli.ssl`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ecgcli.errors import ConfigError

LOSSES = ("focal", "bce", "weighted", "class_balanced")


class FocalLoss(nn.Module):
    """Sigmoid focal loss for multi-label logits."""

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0) -> None:
        super().__init__()
        self.alpha, self.gamma = alpha, gamma

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets.to(logits.dtype)
        ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        p = torch.sigmoid(logits)
        p_t = p * targets + (1 - p) * (1 - targets)
        alpha_t = self.alpha * targets + (1 - self.alpha) * (1 - targets)
        return (alpha_t * (1 - p_t) ** self.gamma * ce).mean()


class WeightedBCE(nn.Module):
    """BCE with per-class positive weights and/or per-class column weights."""

    def __init__(self, pos_weight: torch.Tensor | None = None, class_weight: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("pos_weight", pos_weight)
        self.register_buffer("class_weight", class_weight)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = F.binary_cross_entropy_with_logits(
            logits, targets.to(logits.dtype), pos_weight=self.pos_weight, reduction="none"
        )
        if self.class_weight is not None:
            loss = loss * self.class_weight
        return loss.mean()


def inverse_frequency_pos_weight(labels: np.ndarray) -> np.ndarray:
    """``(N - n_c) / n_c`` per class; a class without positives gets weight 1."""
    n = len(labels)
    pos = labels.sum(axis=0).astype(np.float64)
    return np.where(pos > 0, (n - pos) / np.maximum(pos, 1), 1.0)


def class_balanced_weights(labels: np.ndarray, beta: float = 0.9999) -> np.ndarray:
    """Cui et al.'s effective-number weights, normalised to sum to the number of classes."""
    n_c = labels.sum(axis=0).astype(np.float64)
    effective = (1.0 - np.power(beta, n_c)) / (1.0 - beta)
    w = np.where(n_c > 0, 1.0 / np.maximum(effective, 1e-12), 0.0)
    return w * len(w) / w.sum()


def build_loss(name: str, train_labels: np.ndarray, alpha: float = 0.25, gamma: float = 2.0) -> nn.Module:
    """The loss called ``name``; class weights are computed from ``train_labels`` (N, C)."""
    if name == "focal":
        return FocalLoss(alpha, gamma)
    if name == "bce":
        return WeightedBCE()
    if name == "weighted":
        w = torch.tensor(inverse_frequency_pos_weight(train_labels), dtype=torch.float32)
        return WeightedBCE(pos_weight=w)
    if name == "class_balanced":
        w = torch.tensor(class_balanced_weights(train_labels), dtype=torch.float32)
        return WeightedBCE(class_weight=w)
    raise ConfigError(f"unknown loss {name!r} (choose from {', '.join(LOSSES)})")
