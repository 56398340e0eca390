"""XResNet1d: the "bag of tricks" ResNet (He et al. 2019, "Bag of Tricks for Image
Classification with Convolutional Neural Networks"), in one dimension, as the PTB-XL benchmark
uses it (Strodthoff et al. 2021, where ``xresnet1d101`` is among the strongest models).

The tricks, from the paper: a stem of three convolutions instead of one wide one (ResNet-C);
the stride on the middle convolution of each bottleneck, not the first 1x1 (ResNet-B); an
average pool before the 1x1 projection of a strided shortcut, so it sees every input step
(ResNet-D); each block's last BatchNorm scale initialised to zero, so every residual block
starts as the identity. The benchmark's 1-D variant keeps every stage at the same width
(64 bottleneck channels, 256 out) and uses kernel size 5 throughout.

Shapes: ``(B, in_ch, T)`` -> stem (stride 2) -> max pool (2) -> four stages (strides 1, 2, 2, 2)
-> ``(B, 4 * width, ~T / 32)``: a 10 s record at 100 Hz (T = 1000) becomes 32 steps of 256
channels; a 2.5 s crop (T = 250) becomes 8.
"""

from __future__ import annotations

import torch
from torch import nn

from ecgcli.errors import ConfigError
from ecgcli.models.base import Encoder

EXPANSION = 4


def conv_bn(
    ni: int, nf: int, kernel: int, stride: int = 1, relu: bool = True, zero: bool = False
) -> nn.Sequential:
    """Conv1d (no bias) -> BatchNorm (scale 0 when ``zero``) -> ReLU (when ``relu``)."""
    bn = nn.BatchNorm1d(nf)
    if zero:
        nn.init.zeros_(bn.weight)
    layers: list[nn.Module] = [nn.Conv1d(ni, nf, kernel, stride=stride, padding=kernel // 2, bias=False), bn]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    """1x1 down to ``planes``, ``kernel`` conv (strided), 1x1 up to ``4 * planes``; plus shortcut."""

    def __init__(self, ni: int, planes: int, stride: int, kernel: int) -> None:
        super().__init__()
        nf = planes * EXPANSION
        self.convs = nn.Sequential(
            conv_bn(ni, planes, 1),
            conv_bn(planes, planes, kernel, stride=stride),
            conv_bn(planes, nf, 1, relu=False, zero=True),
        )
        shortcut: list[nn.Module] = []
        if stride != 1:
            shortcut.append(nn.AvgPool1d(stride, ceil_mode=True))
        if ni != nf:
            shortcut.append(conv_bn(ni, nf, 1, relu=False))
        self.shortcut = nn.Sequential(*shortcut)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.convs(x) + self.shortcut(x))


class XResNet1d(Encoder):
    """Stem, max pool, four stages of bottleneck blocks; ``layers`` blocks per stage."""

    config_keys = ("in_ch", "width", "kernel_size")

    layers: tuple[int, ...] = (3, 4, 6, 3)

    def __init__(self, in_ch: int = 12, width: int = 64, kernel_size: int = 5) -> None:
        super().__init__()
        if in_ch < 1 or width < 2 or kernel_size < 1 or kernel_size % 2 == 0:
            raise ConfigError(
                "xresnet1d needs in_ch >= 1, width >= 2 and an odd kernel_size, "
                f"got {in_ch}, {width}, {kernel_size}"
            )
        self.in_ch, self.width, self.kernel_size = in_ch, width, kernel_size
        half = width // 2
        self.stem = nn.Sequential(
            conv_bn(in_ch, half, kernel_size, stride=2),
            conv_bn(half, half, kernel_size),
            conv_bn(half, width, kernel_size),
            nn.MaxPool1d(3, stride=2, padding=1),
        )
        stages: list[nn.Module] = []
        ni = width
        for i, n in enumerate(self.layers):
            blocks = []
            for j in range(n):
                blocks.append(Bottleneck(ni, width, 2 if i > 0 and j == 0 else 1, kernel_size))
                ni = width * EXPANSION
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.out_dim = ni
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


class XResNet1d50(XResNet1d):
    """16 bottleneck blocks (3, 4, 6, 3): 50 layers in the 2-D original."""

    layers = (3, 4, 6, 3)


class XResNet1d101(XResNet1d):
    """33 bottleneck blocks (3, 4, 23, 3): 101 layers in the 2-D original."""

    layers = (3, 4, 23, 3)
