"""A small transformer encoder for 12-lead ECGs: non-overlapping time patches of all leads
become tokens, a few pre-norm self-attention layers mix them.

Vaswani, Shazeer, Parmar, Uszkoreit, Jones, Gomez, Kaiser, Polosukhin (2017), "Attention Is All
You Need", NeurIPS, https://arxiv.org/abs/1706.03762 (the layers and the sinusoidal positions).
Na, Park, Choi, Kim, Lee, Ko (2024), "Guiding Masked Representation Learning to Capture
Spatio-Temporal Relationship of Electrocardiogram" (ST-MEM), ICLR,
https://arxiv.org/abs/2402.09450 (ECGs cut into fixed-length time patches of ~0.3 s as tokens).

``(B, in_ch, T)`` -> patch embedding, a ``Conv1d(in_ch, width, kernel=stride=patch)``, i.e. one
linear map of the ``in_ch x patch`` samples of each patch (default 25 samples = 0.25 s at
100 Hz, so a 2.5 s crop is 10 tokens and a 10 s record 40) -> plus sinusoidal positions, which
are computed for any number of tokens, so one model reads crops and whole records -> ``depth``
pre-norm ``nn.TransformerEncoderLayer`` (GELU, MLP 4 x width; pre-norm trains stably without a
warm-up on small data) -> LayerNorm -> feature map ``(B, width, T // patch)``. Samples after the
last whole patch are not read (as a strided convolution without padding would not).

Masked modelling (:mod:`ecgcli.ssl.masked`) replaces the embeddings of masked patches by a
learned token between :meth:`embed` and :meth:`encode_tokens`; the token lives in the SSL module,
not here, so supervised training has no parameter without a gradient.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ecgcli.errors import ConfigError
from ecgcli.models.base import Encoder


def sinusoidal_positions(n: int, dim: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(n, dim)``: ``sin(p / 10000^(2i/dim))`` in even and ``cos`` in odd columns (Vaswani et al.,
    Sec. 3.5); no parameters, so any length works and nothing is tied to a training length."""
    pos = torch.arange(n, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    out = torch.zeros(n, dim, device=device, dtype=torch.float32)
    out[:, 0::2] = torch.sin(pos * freq)
    out[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return out.to(dtype)


class ECGTransformer(Encoder):
    """Patch tokens -> ``depth`` pre-norm transformer layers: ``(B, in_ch, T)`` -> ``(B, width)``."""

    config_keys = ("in_ch", "width", "depth", "heads", "patch", "dropout")
    #: Self-attention reads the whole window both ways: a token's features have seen the future
    #: (which is why CPC refuses this encoder, as it refuses a bidirectional LSTM).
    bidirectional = True

    def __init__(
        self,
        in_ch: int = 12,
        width: int = 128,
        depth: int = 4,
        heads: int = 4,
        patch: int = 25,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if min(in_ch, width, depth, heads, patch) < 1 or width % heads or width % 2:
            raise ConfigError(
                f"transformer needs in_ch, width, depth, heads, patch >= 1 and an even width divisible "
                f"by heads, got {in_ch}, {width}, {depth}, {heads}, {patch}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"transformer dropout must be in [0, 1), got {dropout}")
        self.in_ch, self.width, self.depth, self.heads = in_ch, width, depth, heads
        self.patch, self.dropout = patch, dropout
        self.patch_embed = nn.Conv1d(in_ch, width, kernel_size=patch, stride=patch)
        layer = nn.TransformerEncoderLayer(
            width,
            heads,
            dim_feedforward=4 * width,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.out_dim = width

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_ch, T)`` -> patch tokens ``(B, T // patch, width)``, before positions."""
        if x.shape[-1] < self.patch:
            raise ValueError(
                f"transformer needs at least one patch of {self.patch} samples, got {x.shape[-1]}"
            )
        return self.patch_embed(x).transpose(1, 2)

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens ``(B, N, width)`` -> feature map ``(B, width, N)`` (positions added here)."""
        tokens = tokens + sinusoidal_positions(tokens.shape[1], self.width, tokens.device, tokens.dtype)
        return self.norm(self.blocks(tokens)).transpose(1, 2)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_tokens(self.embed(x))
