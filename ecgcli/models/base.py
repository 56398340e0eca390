"""What every encoder is: ``(B, in_ch, T)`` -> a feature map ``(B, out_dim, T')``
(:meth:`Encoder.forward_features`, which heads such as the benchmark's pool themselves) ->
its average over time ``(B, out_dim)`` (:meth:`Encoder.forward`), plus the constructor
arguments a checkpoint stores to rebuild it (:meth:`Encoder.config`)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn


class Encoder(nn.Module):
    """Base of the registry's encoders: a subclass builds its layers, sets ``out_dim`` and
    either a ``features`` module or its own :meth:`forward_features`, and lists in
    ``config_keys`` the constructor arguments it keeps as attributes of the same names."""

    config_keys: ClassVar[tuple[str, ...]] = ("in_ch", "width")
    out_dim: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x).mean(dim=-1)

    def config(self) -> dict[str, Any]:
        """Constructor arguments, stored in checkpoints to rebuild the same encoder."""
        return {k: getattr(self, k) for k in self.config_keys}
