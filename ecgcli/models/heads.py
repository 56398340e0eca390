"""Classifier heads: what turns an encoder's output into one logit per class.

``linear``: ``Linear(out_dim, n_classes)`` on the encoder's average-pooled features (the
reference study's head, and today's default).

``benchmark``: the head of the PTB-XL benchmark (Strodthoff et al. 2021, after fastai's
classifier head): "concat pooling" of the feature map (adaptive max and average over time,
concatenated; for recurrent encoders also the last hidden state, as the benchmark's RNN head
does), then BatchNorm -> Dropout(p / 2) -> Linear(-> hidden) -> ReLU -> BatchNorm ->
Dropout(p) -> Linear(-> n_classes), with hidden = 128 and p = 0.5 as in the benchmark.

A head says whether it wants the feature map (``takes_feature_map``) or the pooled vector.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ecgcli.errors import ConfigError

HEADS = ("linear", "benchmark")


class LinearHead(nn.Linear):
    """A plain ``nn.Linear`` on pooled features (its state-dict keys stay ``weight``/``bias``)."""

    takes_feature_map = False

    def config(self) -> dict[str, Any]:
        return {}


class ConcatPoolHead(nn.Module):
    """Concat pooling, then two BatchNorm-Dropout-Linear layers with a ReLU between them."""

    takes_feature_map = True

    def __init__(
        self,
        in_dim: int,
        n_classes: int,
        hidden: int = 128,
        dropout: float = 0.5,
        last_step: str | None = None,
    ) -> None:
        super().__init__()
        if hidden < 1 or n_classes < 1 or not 0.0 <= dropout < 1.0:
            raise ConfigError(
                f"benchmark head needs hidden >= 1, n_classes >= 1 and 0 <= dropout < 1, "
                f"got {hidden}, {n_classes}, {dropout}"
            )
        if last_step not in (None, "forward", "bidirectional"):
            raise ConfigError(
                f"benchmark head: last_step must be forward or bidirectional, got {last_step!r}"
            )
        self.hidden, self.dropout, self.last_step = hidden, dropout, last_step
        self.out_features = n_classes
        pooled = in_dim * (3 if last_step else 2)
        self.layers = nn.Sequential(
            nn.BatchNorm1d(pooled),
            nn.Dropout(dropout / 2),
            nn.Linear(pooled, hidden),
            nn.ReLU(inplace=True),
            nn.BatchNorm1d(hidden),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        )

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        """``(B, C, T)`` -> ``(B, 2C)`` (max, mean), or ``(B, 3C)`` with the last step."""
        parts = [fmap.amax(dim=-1), fmap.mean(dim=-1)]
        if self.last_step == "forward":
            parts.append(fmap[:, :, -1])
        elif self.last_step == "bidirectional":
            half = fmap.shape[1] // 2
            parts.append(torch.cat([fmap[:, :half, -1], fmap[:, half:, 0]], dim=1))
        return torch.cat(parts, dim=1)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.layers(self.pool(fmap))

    def config(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "dropout": self.dropout}


def build_head(name: str, encoder: nn.Module, n_classes: int, **args: Any) -> nn.Module:
    """The head ``name`` for ``encoder``; an unknown name or argument is one clear error."""
    try:
        if name == "linear":
            return LinearHead(encoder.out_dim, n_classes, **args)
        if name == "benchmark":
            return ConcatPoolHead(
                encoder.out_dim, n_classes, last_step=getattr(encoder, "last_step", None), **args
            )
    except TypeError as exc:
        raise ConfigError(f"head {name!r} cannot be built from {args}: {exc}") from None
    raise ConfigError(f"unknown head {name!r} (known: {', '.join(HEADS)})")
