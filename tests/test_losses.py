"""Classification losses against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ecgcli.errors import ConfigError
from ecgcli.train.losses import (
    build_loss,
    class_balanced_weights,
    inverse_frequency_pos_weight,
)


def _sig(z: float) -> float:
    return 1 / (1 + math.exp(-z))


LOGITS = torch.tensor([[2.0, -1.0], [0.5, 0.0]])
TARGETS = torch.tensor([[1.0, 0.0], [0.0, 1.0]])


def test_bce_by_hand() -> None:
    terms = [-math.log(_sig(2.0)), -math.log(1 - _sig(-1.0)), -math.log(1 - _sig(0.5)), -math.log(_sig(0.0))]
    loss = build_loss("bce", np.zeros((1, 2)))(LOGITS, TARGETS)
    assert loss.item() == pytest.approx(sum(terms) / 4, rel=1e-6)


def test_focal_by_hand() -> None:
    """Lin et al.: alpha for positives, 1 - alpha for negatives, (1 - p_t)^gamma."""
    a, g = 0.25, 2.0
    p = [[_sig(2.0), _sig(-1.0)], [_sig(0.5), _sig(0.0)]]
    y = [[1, 0], [0, 1]]
    total = 0.0
    for i in range(2):
        for j in range(2):
            pt = p[i][j] if y[i][j] else 1 - p[i][j]
            at = a if y[i][j] else 1 - a
            total += -at * (1 - pt) ** g * math.log(pt)
    loss = build_loss("focal", np.zeros((1, 2)))(LOGITS, TARGETS)
    assert loss.item() == pytest.approx(total / 4, rel=1e-6)


def test_focal_gamma_zero_alpha_half_is_half_bce() -> None:
    focal = build_loss("focal", np.zeros((1, 2)), alpha=0.5, gamma=0.0)(LOGITS, TARGETS)
    bce = build_loss("bce", np.zeros((1, 2)))(LOGITS, TARGETS)
    assert focal.item() == pytest.approx(0.5 * bce.item(), rel=1e-6)


def test_weighted_uses_inverse_positive_frequency() -> None:
    labels = np.array([[1, 0], [1, 0], [1, 1], [0, 0]])  # class 0: 3 of 4, class 1: 1 of 4
    w = inverse_frequency_pos_weight(labels)
    np.testing.assert_allclose(w, [1 / 3, 3.0])
    loss = build_loss("weighted", labels)(LOGITS, TARGETS)
    terms = [
        -(1 / 3) * math.log(_sig(2.0)),
        -math.log(1 - _sig(-1.0)),
        -math.log(1 - _sig(0.5)),
        -3.0 * math.log(_sig(0.0)),
    ]
    assert loss.item() == pytest.approx(sum(terms) / 4, rel=1e-6)


def test_class_balanced_weights_by_hand() -> None:
    labels = np.zeros((1000, 2))
    labels[:900, 0] = 1
    labels[:100, 1] = 1
    beta = 0.9999
    e = [(1 - beta**900) / (1 - beta), (1 - beta**100) / (1 - beta)]
    raw = [1 / e[0], 1 / e[1]]
    expected = [2 * r / sum(raw) for r in raw]
    np.testing.assert_allclose(class_balanced_weights(labels, beta), expected, rtol=1e-9)
    loss = build_loss("class_balanced", labels)(LOGITS, TARGETS)
    terms = [
        -expected[0] * math.log(_sig(2.0)),
        -expected[1] * math.log(1 - _sig(-1.0)),
        -expected[0] * math.log(1 - _sig(0.5)),
        -expected[1] * math.log(_sig(0.0)),
    ]
    assert loss.item() == pytest.approx(sum(terms) / 4, rel=1e-6)


def test_unknown_loss() -> None:
    with pytest.raises(ConfigError, match="unknown loss 'hinge'.*focal, bce, weighted, class_balanced"):
        build_loss("hinge", np.zeros((1, 5)))
