"""The classifier: an encoder and a linear head producing one logit per superclass."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ecgcli.models.encoders import build_encoder


class ECGClassifier(nn.Module):
    """``encoder`` then ``Linear(encoder.out_dim, n_classes)``; outputs logits (no sigmoid)."""

    def __init__(self, encoder: nn.Module, n_classes: int = 5) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.out_dim, n_classes)
        self.encoder_name = "cnn1d"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))

    @classmethod
    def build(cls, encoder: str = "cnn1d", n_classes: int = 5, **encoder_args: Any) -> ECGClassifier:
        model = cls(build_encoder(encoder, **encoder_args), n_classes)
        model.encoder_name = encoder
        return model

    def architecture(self) -> dict[str, Any]:
        """What a checkpoint records to rebuild this model without pickling it."""
        return {
            "encoder": self.encoder_name,
            "encoder_args": self.encoder.config(),
            "feature_dim": self.encoder.out_dim,
            "head": "linear",
            "n_classes": self.head.out_features,
        }
