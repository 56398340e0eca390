"""An ensemble of trained classifiers as one module (``ecg ensemble``'s checkpoint kind).

Every consumer of a classifier checkpoint (predict, explain, export, the ONNX check) feeds the
model *normalised* windows and applies ``sigmoid(logit / T)`` itself, with the normalisation and
temperature of the sidecar. Members may differ in both (their own training statistics, their
own fitted temperatures), so the ensemble's sidecar carries the identity normalisation and no
temperature, and each member does its own inside the module::

    p = mean_i sigmoid(member_i((x - mean_i) / std_i) / T_i)        (calibrated probabilities)
    forward(x) = logit(p)                                           (what consumers expect)

so that the consumers' ``sigmoid(forward(x))`` is the mean of the members' calibrated
probabilities (to float rounding; ``p`` is clamped to ``[EPS, 1 - EPS]`` so the logit stays
finite). State-dict keys are ``member{i}.model.*`` (the member's own tensors) plus
``member{i}.mean/std/inv_temperature``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

EPS = 1e-7


class CalibratedMember(nn.Module):
    """One member: millivolts in, its calibrated probabilities out."""

    def __init__(
        self, model: nn.Module, mean: np.ndarray, std: np.ndarray, temperature: np.ndarray | None
    ) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean), dtype=torch.float32)[:, None])
        self.register_buffer("std", torch.as_tensor(np.asarray(std), dtype=torch.float32)[:, None])
        n = model.head.out_features
        inv_t = np.ones(n) if temperature is None else 1.0 / np.asarray(temperature, dtype=np.float64)
        self.register_buffer("inv_temperature", torch.as_tensor(inv_t, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model((x - self.mean) / self.std) * self.inv_temperature)


class _Classes:
    """What callers read of a classifier's head (its class count); not a module, no tensors."""

    def __init__(self, out_features: int) -> None:
        self.out_features = out_features


class EnsembleClassifier(nn.Module):
    """The mean of members' calibrated probabilities, returned as its logit (see the module
    docstring). ``head.out_features`` is the class count, as for :class:`ECGClassifier`."""

    def __init__(self, members: Sequence[CalibratedMember]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs members")
        self.n_members = len(members)
        for i, member in enumerate(members):
            self.add_module(f"member{i}", member)
        self.head = _Classes(members[0].model.head.out_features)

    def members(self) -> list[CalibratedMember]:
        return [getattr(self, f"member{i}") for i in range(self.n_members)]

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        probs = [m(x) for m in self.members()]
        return torch.stack(probs, dim=0).mean(dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.probabilities(x).clamp(EPS, 1.0 - EPS)
        return torch.log(p) - torch.log(1.0 - p)
