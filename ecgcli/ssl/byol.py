"""BYOL: self-supervised pretraining without negatives, with a slow-moving target network.

Grill, Strub, Altché, Tallec, Richemond, Buchatskaya, Doersch, Pires, Guo, Azar, Piot,
Kavukcuoglu, Munos, Valko (2020), "Bootstrap Your Own Latent: A New Approach to
Self-Supervised Learning", NeurIPS, https://arxiv.org/abs/2006.07733.

An online network (encoder, projector, predictor) learns to predict, from one view, the
target network's projection of the other view. The target (encoder, projector) receives no
gradients: it is an exponential moving average of the online weights, with a decay ``tau``
that rises from ``base_tau`` to 1 on a cosine schedule. No negatives are needed, so BYOL
works with small batches, which matters on a CPU.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ecgcli.errors import ConfigError
from ecgcli.ssl.simclr import ProjectionHead


class PredictorHead(ProjectionHead):
    """BYOL's predictor ``q``: the same Linear-BatchNorm-ReLU-Linear MLP as the projector,
    mapping a projection to a prediction of the same size (Grill et al., 2020, Sec. 3.3).
    Only the online branch has one; this asymmetry is what keeps BYOL from collapsing."""

    def __init__(self, in_dim: int = 128, hidden_dim: int = 2048, out_dim: int = 128) -> None:
        super().__init__(in_dim, hidden_dim, out_dim)


def _check_tau(name: str, tau: float) -> None:
    if not 0.0 <= tau <= 1.0:
        raise ConfigError(f"{name} must be in [0, 1], got {tau}")


def _normalised_mse(p: Tensor, t: Tensor) -> Tensor:
    """``|p/|p| - t/|t||^2 = 2 - 2 cos(p, t)`` per row (Grill et al., 2020, Eq. 2)."""
    return 2.0 - 2.0 * (F.normalize(p, dim=-1) * F.normalize(t.detach(), dim=-1)).sum(dim=-1)


def byol_loss(p1: Tensor, p2: Tensor, t1: Tensor, t2: Tensor) -> Tensor:
    """Symmetrised BYOL loss: each view's online prediction against the OTHER view's target.

    ``loss = mean_i[2 - 2 cos(p1_i, t2_i)] + mean_i[2 - 2 cos(p2_i, t1_i)]``

    i.e. the paper's ``L + L~`` with each term averaged over the batch, so it lies in [0, 8]
    and is 0 when every prediction points the same way as its target. Targets are detached:
    no gradient reaches the target network through the loss.
    """
    if not (p1.shape == p2.shape == t1.shape == t2.shape) or p1.ndim != 2:
        raise ValueError(
            f"predictions and targets must all be (N, D), got {tuple(p1.shape)}, "
            f"{tuple(p2.shape)}, {tuple(t1.shape)}, {tuple(t2.shape)}"
        )
    return _normalised_mse(p1, t2).mean() + _normalised_mse(p2, t1).mean()


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """In place, ``theta_t <- tau * theta_t + (1 - tau) * theta_o`` for every parameter.

    Buffers (BatchNorm running mean/var and batch counter) are *copied* from the online
    module, not averaged: they are statistics of the data rather than learned weights, the
    target normalises with batch statistics during training anyway, and copying keeps the
    integer ``num_batches_tracked`` exact. The update is one multi-tensor (``_foreach``) call
    per step, not a Python loop of small kernels.
    """
    _check_tau("EMA decay tau", tau)
    t_named, o_named = list(target.named_parameters()), list(online.named_parameters())
    t_bufs, o_bufs = list(target.named_buffers()), list(online.named_buffers())
    if [n for n, _ in t_named] != [n for n, _ in o_named] or [n for n, _ in t_bufs] != [n for n, _ in o_bufs]:
        raise ValueError("target and online modules do not have the same structure")
    t_params, o_params = [p for _, p in t_named], [p for _, p in o_named]
    if t_params and tau < 1.0:
        torch._foreach_mul_(t_params, tau)
        torch._foreach_add_(t_params, o_params, alpha=1.0 - tau)
    if t_bufs:
        torch._foreach_copy_([b for _, b in t_bufs], [b for _, b in o_bufs])


def cosine_tau(base_tau: float, step: int, total_steps: int) -> float:
    """BYOL's decay schedule: ``1 - (1 - base_tau) (cos(pi step / total_steps) + 1) / 2``.

    ``base_tau`` at step 0, rising to exactly 1 at ``total_steps`` (the target freezes as
    training ends); steps outside ``[0, total_steps]`` are clamped.
    """
    _check_tau("base tau", base_tau)
    if total_steps <= 0:
        raise ConfigError(f"total_steps must be > 0, got {total_steps}")
    step = min(max(step, 0), total_steps)
    return 1.0 - (1.0 - base_tau) * (math.cos(math.pi * step / total_steps) + 1.0) / 2.0


class BYOL(nn.Module):
    """Online encoder+projector+predictor and an EMA target encoder+projector (Grill et al.).

    The target starts as a deep copy of the online encoder and projector with
    ``requires_grad=False``; call :meth:`update_target` after each optimiser step (with
    ``tau_at(step, total_steps)`` for the paper's schedule). ``.encoder`` is the online
    encoder, the one fine-tuning keeps. Both views go through each network in one pass.
    """

    def __init__(
        self,
        encoder: nn.Module,
        feature_dim: int = 256,
        hidden_dim: int = 2048,
        projection_dim: int = 128,
        base_tau: float = 0.99,
    ) -> None:
        super().__init__()
        _check_tau("base tau", base_tau)
        self.encoder = encoder
        self.projector = ProjectionHead(feature_dim, hidden_dim, projection_dim)
        self.predictor = PredictorHead(projection_dim, hidden_dim, projection_dim)
        self.target_encoder = copy.deepcopy(encoder)
        self.target_projector = copy.deepcopy(self.projector)
        for module in (self.target_encoder, self.target_projector):
            module.requires_grad_(False)
        self.base_tau = base_tau

    def forward(self, v1: Tensor, v2: Tensor) -> Tensor:
        if v1.shape != v2.shape:
            raise ValueError(f"views differ in shape: {tuple(v1.shape)} vs {tuple(v2.shape)}")
        views = torch.cat([v1, v2])
        p1, p2 = self.predictor(self.projector(self.encoder(views))).chunk(2)
        with torch.no_grad():
            t1, t2 = self.target_projector(self.target_encoder(views)).chunk(2)
        return byol_loss(p1, p2, t1, t2)

    def update_target(self, tau: float) -> None:
        """Move the target towards the online weights by one EMA step of decay ``tau``."""
        ema_update(self.target_encoder, self.encoder, tau)
        ema_update(self.target_projector, self.projector, tau)

    def after_step(self, step: int, total_steps: int) -> None:
        """After optimiser step ``step`` (0-based) of ``total_steps``: the scheduled EMA update."""
        self.update_target(self.tau_at(step + 1, total_steps))

    def tau_at(self, step: int, total_steps: int) -> float:
        """The cosine-scheduled decay for ``step`` (see :func:`cosine_tau`)."""
        return cosine_tau(self.base_tau, step, total_steps)
