"""ECG encoders and the registry that builds them by name (checkpoints store the name).

Every encoder follows one contract, so heads, SSL and checkpoints treat them alike:
constructor ``(in_ch=12, width=..., ...)`` with keyword defaults; ``out_dim`` (channels of
the feature map); ``config()`` (the constructor arguments, stored in checkpoints);
``forward_features(x)``: ``(B, in_ch, T) -> (B, out_dim, T')``, the feature map before
pooling; ``forward(x)``: ``(B, in_ch, T) -> (B, out_dim)``, its average over time. Every
encoder takes ``width``, the channel count that scales it (its own default), so callers can
shrink any of them the same way.

``ECGEncoder1DCNN`` is the reference study's encoder, unchanged, so numbers stay comparable:
six Conv1d-BatchNorm-ReLU blocks (kernels 11, 7, 7, 5, 5, 3; strides 2, 1, 2, 1, 2, 1; widths
w, w, 2w, 2w, 4w, 4w), then global average pooling to a ``4w``-dimensional latent (256 at the
default width 64). Strides total 8, so a 10 s record at 100 Hz becomes 125 time steps before
pooling.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from ecgcli.errors import CheckpointError, ConfigError
from ecgcli.models.base import Encoder
from ecgcli.models.inception1d import Inception1d
from ecgcli.models.lstm import BiLSTMEncoder, LSTMEncoder
from ecgcli.models.s4 import BiS4Encoder, S4Encoder
from ecgcli.models.transformer import ECGTransformer
from ecgcli.models.wang import FCNWang, ResNet1dWang
from ecgcli.models.xresnet1d import XResNet1d50, XResNet1d101

_KERNELS = (11, 7, 7, 5, 5, 3)
_STRIDES = (2, 1, 2, 1, 2, 1)
_WIDTHS = (1, 1, 2, 2, 4, 4)


class ECGEncoder1DCNN(Encoder):
    """The reference 1D-CNN: ``(B, in_ch, T)`` -> ``(B, 4 * width)``."""

    def __init__(self, in_ch: int = 12, width: int = 64) -> None:
        super().__init__()
        if in_ch < 1 or width < 1:
            raise ConfigError(f"encoder needs in_ch >= 1 and width >= 1, got {in_ch}, {width}")
        self.in_ch, self.width = in_ch, width
        layers: list[nn.Module] = []
        channels = in_ch
        for k, s, m in zip(_KERNELS, _STRIDES, _WIDTHS, strict=True):
            out = width * m
            layers += [
                nn.Conv1d(channels, out, kernel_size=k, stride=s, padding=k // 2, bias=False),
                nn.BatchNorm1d(out),
                nn.ReLU(inplace=True),
            ]
            channels = out
        self.features = nn.Sequential(*layers)
        self.out_dim = channels


_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_encoder(name: str, factory: Callable[..., nn.Module]) -> None:
    """Add an encoder; it must follow the contract in this module's docstring."""
    _REGISTRY[name] = factory


def encoder_names() -> list[str]:
    return sorted(_REGISTRY)


def default_widths() -> dict[str, int]:
    """Each registered encoder's own width: its constructor's ``width`` default."""
    return {
        name: inspect.signature(factory).parameters["width"].default for name, factory in _REGISTRY.items()
    }


# The reference encoder (the default) and the PTB-XL benchmark's (Strodthoff et al. 2021). The
# family modules import nothing from here, so the import graph stays one-way.
register_encoder("cnn1d", ECGEncoder1DCNN)
register_encoder("xresnet1d50", XResNet1d50)
register_encoder("xresnet1d101", XResNet1d101)
register_encoder("inception1d", Inception1d)
register_encoder("resnet1d_wang", ResNet1dWang)
register_encoder("fcn_wang", FCNWang)
register_encoder("lstm", LSTMEncoder)
register_encoder("lstm_bidir", BiLSTMEncoder)
register_encoder("transformer", ECGTransformer)  # patch tokens, Vaswani et al. 2017 / ST-MEM 2024
register_encoder("s4", S4Encoder)  # diagonal state spaces, S4D (Gu et al. 2022)
register_encoder("s4_bidir", BiS4Encoder)


def build_encoder(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered encoder; unknown names or arguments are a clear error."""
    if name not in _REGISTRY:
        raise CheckpointError(f"unknown encoder {name!r} (known: {', '.join(encoder_names())})")
    try:
        return _REGISTRY[name](**kwargs)
    except TypeError as exc:
        raise CheckpointError(f"encoder {name!r} cannot be built from {kwargs}: {exc}") from None
