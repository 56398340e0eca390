"""The reference encoder, exactly as specified, and the registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ecgcli.errors import CheckpointError
from ecgcli.models import ECGClassifier, ECGEncoder1DCNN, build_encoder


def test_encoder_matches_the_reference_architecture() -> None:
    enc = ECGEncoder1DCNN(in_ch=12, width=64)
    convs = [m for m in enc.modules() if isinstance(m, nn.Conv1d)]
    assert [c.kernel_size[0] for c in convs] == [11, 7, 7, 5, 5, 3]
    assert [c.stride[0] for c in convs] == [2, 1, 2, 1, 2, 1]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256]
    assert convs[0].in_channels == 12
    kinds = [type(m) for m in enc.features]
    assert kinds == [nn.Conv1d, nn.BatchNorm1d, nn.ReLU] * 6
    x = torch.randn(3, 12, 1000)
    assert enc.features(x).shape == (3, 256, 125)  # strides multiply to 8
    assert enc(x).shape == (3, 256) and enc.out_dim == 256


def test_width_scales_and_classifier_outputs_five_logits() -> None:
    model = ECGClassifier.build("cnn1d", 5, in_ch=12, width=16)
    assert model(torch.randn(2, 12, 500)).shape == (2, 5)
    assert model.architecture() == {
        "encoder": "cnn1d",
        "encoder_args": {"in_ch": 12, "width": 16},
        "feature_dim": 64,
        "head": "linear",
        "n_classes": 5,
    }


def test_registry_errors() -> None:
    with pytest.raises(CheckpointError, match="unknown encoder 'resnet'.*cnn1d"):
        build_encoder("resnet")
    with pytest.raises(CheckpointError, match="cannot be built"):
        build_encoder("cnn1d", depth=3)
