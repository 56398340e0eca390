"""The time-series baselines of Wang et al. 2017 ("Time Series Classification from Scratch with
Deep Neural Networks: A Strong Baseline"), in the variants of the PTB-XL benchmark (Strodthoff
et al. 2021), where ``resnet1d_wang`` is among the strongest models.

``fcn_wang``, the fully convolutional network: three Conv-BatchNorm-ReLU blocks, kernels 8, 5
and 3, widths ``w, 2w, w`` (128, 256, 128), nothing strided, "same" padding as in the paper.
``(B, in_ch, T)`` -> ``(B, width, T)``.

``resnet1d_wang``, the benchmark's version of Wang's ResNet: a kernel-7 stem to ``width``
(128) channels, then three basic residual blocks (kernel-5 then kernel-3 convolution, each
with BatchNorm; a strided 1x1 convolution + BatchNorm on the shortcut where the block strides)
with strides 1, 2, 2. Wang's original has three blocks of three convolutions (8, 5, 3) at
widths 64, 128, 128 without striding; the benchmark's published numbers are for this variant,
so we follow it. ``(B, in_ch, T)`` -> ``(B, width, ~T / 4)``: 250 steps of a 10 s record.
"""

from __future__ import annotations

import torch
from torch import nn

from ecgcli.errors import ConfigError
from ecgcli.models.base import Encoder


def _check(name: str, in_ch: int, width: int) -> None:
    if in_ch < 1 or width < 1:
        raise ConfigError(f"{name} needs in_ch >= 1 and width >= 1, got {in_ch}, {width}")


class FCNWang(Encoder):
    """Three Conv-BN-ReLU blocks (kernels 8, 5, 3), no pooling inside."""

    def __init__(self, in_ch: int = 12, width: int = 128) -> None:
        super().__init__()
        _check("fcn_wang", in_ch, width)
        self.in_ch, self.width = in_ch, width
        layers: list[nn.Module] = []
        ni = in_ch
        for k, nf in ((8, width), (5, 2 * width), (3, width)):
            # "same" padding; an even kernel's extra step goes on the right, as in Keras
            layers += [
                nn.ConstantPad1d(((k - 1) // 2, k // 2), 0.0),
                nn.Conv1d(ni, nf, k, bias=False),
                nn.BatchNorm1d(nf),
                nn.ReLU(inplace=True),
            ]
            ni = nf
        self.features = nn.Sequential(*layers)
        self.out_dim = width


class BasicBlock(nn.Module):
    """``kernels[0]`` conv (strided) -> BN -> ReLU -> ``kernels[1]`` conv -> BN, plus shortcut, ReLU."""

    def __init__(self, width: int, stride: int, kernels: tuple[int, int]) -> None:
        super().__init__()
        k1, k2 = kernels
        self.convs = nn.Sequential(
            nn.Conv1d(width, width, k1, stride=stride, padding=k1 // 2, bias=False),
            nn.BatchNorm1d(width),
            nn.ReLU(inplace=True),
            nn.Conv1d(width, width, k2, padding=k2 // 2, bias=False),
            nn.BatchNorm1d(width),
        )
        self.shortcut = (
            nn.Sequential(nn.Conv1d(width, width, 1, stride=stride, bias=False), nn.BatchNorm1d(width))
            if stride != 1
            else nn.Identity()
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.convs(x) + self.shortcut(x))


class ResNet1dWang(Encoder):
    """Kernel-7 stem, then three basic blocks with strides 1, 2, 2, all ``width`` channels."""

    config_keys = ("in_ch", "width", "kernel_size")

    def __init__(self, in_ch: int = 12, width: int = 128, kernel_size: int = 5) -> None:
        super().__init__()
        _check("resnet1d_wang", in_ch, width)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ConfigError(f"resnet1d_wang needs an odd kernel_size, got {kernel_size}")
        self.in_ch, self.width, self.kernel_size = in_ch, width, kernel_size
        kernels = (kernel_size, kernel_size // 2 + 1)
        self.stem = nn.Sequential(
            nn.Conv1d(in_ch, width, 7, padding=3, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True)
        )
        self.blocks = nn.Sequential(*(BasicBlock(width, s, kernels) for s in (1, 2, 2)))
        self.out_dim = width

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))
