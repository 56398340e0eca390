"""Inception1d: InceptionTime (Fawaz et al. 2020, "InceptionTime: Finding AlexNet for Time
Series Classification"), in the variant of the PTB-XL benchmark (Strodthoff et al. 2021).

Each Inception module squeezes its input to ``width`` channels with a 1x1 "bottleneck", runs
three long convolutions on it in parallel (kernels 39, 19 and 9 from ``kernel_size`` 40: the
paper's 40, 20, 10 made odd so padding keeps the length), and beside them a 3-step max pool
followed by a 1x1 convolution of the unsqueezed input; the four outputs are concatenated
(``4 * width`` channels), batch-normalised and rectified. Every third module adds a residual
shortcut (1x1 convolution + BatchNorm) from the input of the three, then a ReLU. Nothing is
strided.

Shapes: ``(B, in_ch, T)`` -> six modules -> ``(B, 4 * width, T)``: 128 channels at every one of
the 1000 steps of a 10 s record at 100 Hz with the default width 32.
"""

from __future__ import annotations

import torch
from torch import nn

from ecgcli.errors import ConfigError
from ecgcli.models.base import Encoder


def _conv(ni: int, nf: int, kernel: int) -> nn.Conv1d:
    return nn.Conv1d(ni, nf, kernel, padding=kernel // 2, bias=False)


class InceptionModule(nn.Module):
    """Bottleneck, three parallel convolutions and a pooled 1x1 branch, concatenated."""

    def __init__(self, ni: int, width: int, kernels: tuple[int, ...]) -> None:
        super().__init__()
        self.bottleneck = _conv(ni, width, 1)
        self.convs = nn.ModuleList(_conv(width, width, k) for k in kernels)
        self.pool_branch = nn.Sequential(nn.MaxPool1d(3, stride=1, padding=1), _conv(ni, width, 1))
        self.bn_relu = nn.Sequential(nn.BatchNorm1d(width * (len(kernels) + 1)), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.bottleneck(x)
        return self.bn_relu(torch.cat([c(z) for c in self.convs] + [self.pool_branch(x)], dim=1))


class Inception1d(Encoder):
    """``depth`` Inception modules with a residual shortcut around every three."""

    config_keys = ("in_ch", "width", "depth", "kernel_size")

    def __init__(self, in_ch: int = 12, width: int = 32, depth: int = 6, kernel_size: int = 40) -> None:
        super().__init__()
        if in_ch < 1 or width < 1 or depth < 3 or depth % 3 or kernel_size < 4:
            raise ConfigError(
                "inception1d needs in_ch >= 1, width >= 1, depth a multiple of 3 and kernel_size >= 4, "
                f"got {in_ch}, {width}, {depth}, {kernel_size}"
            )
        self.in_ch, self.width, self.depth, self.kernel_size = in_ch, width, depth, kernel_size
        kernels = tuple(k - 1 if k % 2 == 0 else k for k in (kernel_size, kernel_size // 2, kernel_size // 4))
        self.out_dim = width * (len(kernels) + 1)
        self.blocks = nn.ModuleList(
            InceptionModule(in_ch if d == 0 else self.out_dim, width, kernels) for d in range(depth)
        )
        self.shortcuts = nn.ModuleList(
            nn.Sequential(
                _conv(in_ch if s == 0 else self.out_dim, self.out_dim, 1), nn.BatchNorm1d(self.out_dim)
            )
            for s in range(depth // 3)
        )
        self.act = nn.ReLU(inplace=True)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        for d, module in enumerate(self.blocks):
            x = module(x)
            if d % 3 == 2:
                x = self.act(x + self.shortcuts[d // 3](residual))
                residual = x
        return x
