"""The classifier: an encoder and a head producing one logit per class."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ecgcli.models.encoders import build_encoder
from ecgcli.models.heads import build_head


class ECGClassifier(nn.Module):
    """``encoder`` then a head (:mod:`ecgcli.models.heads`); outputs logits (no sigmoid).

    The ``linear`` head reads ``encoder(x)`` (average-pooled features), exactly as before
    heads could be chosen; the ``benchmark`` head reads ``encoder.forward_features(x)``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        n_classes: int = 5,
        head: str = "linear",
        head_args: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = build_head(head, encoder, n_classes, **(head_args or {}))
        self.head_name = head
        self.encoder_name = "cnn1d"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.head.takes_feature_map:
            return self.head(self.encoder.forward_features(x))
        return self.head(self.encoder(x))

    @classmethod
    def build(
        cls,
        encoder: str = "cnn1d",
        n_classes: int = 5,
        head: str = "linear",
        head_args: dict[str, Any] | None = None,
        **encoder_args: Any,
    ) -> ECGClassifier:
        model = cls(build_encoder(encoder, **encoder_args), n_classes, head, head_args)
        model.encoder_name = encoder
        return model

    def architecture(self) -> dict[str, Any]:
        """What a checkpoint records to rebuild this model without pickling it."""
        arch = {
            "encoder": self.encoder_name,
            "encoder_args": self.encoder.config(),
            "feature_dim": self.encoder.out_dim,
            "head": self.head_name,
            "n_classes": self.head.out_features,
        }
        if self.head_name != "linear":
            arch["head_args"] = self.head.config()
        return arch
