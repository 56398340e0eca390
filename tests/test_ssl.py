"""SimCLR and BYOL: losses against hand-computed values, EMA arithmetic, one training step."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ecgcli.errors import ConfigError
from ecgcli.ssl import (
    BYOL,
    PredictorHead,
    ProjectionHead,
    SimCLR,
    byol_loss,
    cosine_tau,
    ema_update,
    nt_xent_loss,
)


def tiny_encoder(width: int = 16) -> nn.Module:
    """Stand-in encoder (B, 12, T) -> (B, width): Conv1d-BN-ReLU, global average pool."""
    return nn.Sequential(
        nn.Conv1d(12, width, kernel_size=7, padding=3, bias=False),
        nn.BatchNorm1d(width),
        nn.ReLU(),
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(),
    )


def reference_nt_xent(z1: list[list[float]], z2: list[list[float]], tau: float) -> list[float]:
    """Per-row NT-Xent written out with plain math, one row at a time."""
    rows = z1 + z2
    unit = [[v / math.sqrt(sum(c * c for c in r)) for v in r] for r in rows]
    n = len(z1)
    losses = []
    for i, qi in enumerate(unit):
        positive = i + n if i < n else i - n
        sims = {j: sum(a * b for a, b in zip(qi, kj, strict=True)) / tau for j, kj in enumerate(unit)}
        denominator = sum(math.exp(s) for j, s in sims.items() if j != i)
        losses.append(-math.log(math.exp(sims[positive]) / denominator))
    return losses


# ------------------------------------------------------------------ NT-Xent


def test_nt_xent_swapped_unit_vectors_by_hand() -> None:
    # row 0 = (1,0): positive (0,1) has cos 0, negatives (0,1) cos 0 and (1,0) cos 1;
    # at tau 0.5 the logits are 0 (positive), 0 and 2: loss = log(e^0 + e^0 + e^2) - 0.
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    per_row = nt_xent_loss(z1, z2, temperature=0.5, reduction="none")
    assert per_row.shape == (4,)
    assert torch.allclose(per_row, torch.full((4,), math.log(2 + math.e**2)))
    assert nt_xent_loss(z1, z2, 0.5).item() == pytest.approx(math.log(2 + math.e**2))


def test_nt_xent_identical_views_by_hand() -> None:
    # positive cos 1, the two negatives cos 0, tau 1: loss = -log(e / (e + 2)) = log(1 + 2/e)
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert nt_xent_loss(z, z.clone(), 1.0).item() == pytest.approx(math.log(1 + 2 / math.e))


def test_nt_xent_matches_plain_math_on_unnormalised_vectors() -> None:
    z1 = [[1.0, 2.0], [3.0, -1.0], [-0.5, 0.25]]  # N = 3: an odd batch
    z2 = [[2.0, 1.0], [-1.0, 1.0], [0.1, -2.0]]
    expected = reference_nt_xent(z1, z2, 0.1)
    a, b = torch.tensor(z1, dtype=torch.float64), torch.tensor(z2, dtype=torch.float64)
    assert nt_xent_loss(a, b, 0.1, reduction="none").tolist() == pytest.approx(expected, rel=1e-9)
    assert nt_xent_loss(a, b, 0.1).item() == pytest.approx(sum(expected) / 6, rel=1e-9)
    # float32 agrees to float32 precision of the logits (about 1e-6 absolute)
    got32 = nt_xent_loss(a.float(), b.float(), 0.1, reduction="none")
    assert got32.tolist() == pytest.approx(expected, abs=1e-5)


def test_identical_views_reach_the_minimum_for_every_row() -> None:
    n, tau = 8, 0.07
    z = torch.eye(n, 16, dtype=torch.float64)  # orthogonal records, both views identical
    per_row = nt_xent_loss(z, z.clone(), tau, reduction="none")
    # positive cos 1, 2N - 2 negatives at cos 0: loss = log(1 + (2N - 2) e^(-1/tau))
    minimum = math.log(1 + (2 * n - 2) * math.exp(-1 / tau))
    assert torch.allclose(per_row, torch.full((2 * n,), minimum, dtype=torch.float64), rtol=1e-9)
    assert per_row.max().item() < 1e-4
    g = torch.Generator().manual_seed(0)
    random_views = nt_xent_loss(
        torch.randn(n, 16, generator=g, dtype=torch.float64),
        torch.randn(n, 16, generator=g, dtype=torch.float64),
        tau,
        reduction="none",
    )
    assert random_views.min().item() > 1000 * per_row.max().item()


def test_nt_xent_rejects_bad_temperature_and_single_record() -> None:
    z = torch.randn(4, 8)
    for tau in (0.0, -0.1):
        with pytest.raises(ConfigError, match="temperature"):
            nt_xent_loss(z, z, tau)
    with pytest.raises(ConfigError, match="at least 2"):
        nt_xent_loss(z[:1], z[:1])
    with pytest.raises(ConfigError):
        SimCLR(tiny_encoder(), 16, 32, 8, temperature=0.0)


def test_nt_xent_gather_hook_reproduces_the_global_batch() -> None:
    """Two simulated ranks: each scores its local rows against everyone's keys."""
    g = torch.Generator().manual_seed(1)
    world, n, dim = 2, 3, 5
    z1_all, z2_all = (
        torch.randn(world * n, dim, generator=g),
        torch.randn(world * n, dim, generator=g),
    )
    expected = nt_xent_loss(z1_all, z2_all, 0.2)

    per_rank = []
    for rank in range(world):
        local = slice(rank * n, (rank + 1) * n)
        z1 = z1_all[local].clone().requires_grad_()
        z2 = z2_all[local].clone().requires_grad_()
        others = iter([F.normalize(z1_all, dim=1), F.normalize(z2_all, dim=1)])

        def gather(z: torch.Tensor, rank: int = rank, others=others) -> tuple[torch.Tensor, int]:
            full = next(others)  # like all_gather: other ranks' rows, ours with gradient
            return torch.cat([full[: rank * n], z, full[(rank + 1) * n :]]), rank * n

        loss = nt_xent_loss(z1, z2, 0.2, gather=gather)
        loss.backward()
        assert z1.grad is not None and z1.grad.abs().sum() > 0
        per_rank.append(loss.item())
    assert sum(per_rank) / world == pytest.approx(expected.item(), rel=1e-5)

    # a one-process "gather" is the plain loss
    z1, z2 = z1_all[:n], z2_all[:n]
    plain = nt_xent_loss(z1, z2, 0.2)
    assert nt_xent_loss(z1, z2, 0.2, gather=lambda z: (z, 0)).item() == pytest.approx(plain.item())


def test_projection_head_shape() -> None:
    head = ProjectionHead(16, 32, 8)
    assert head(torch.randn(5, 16)).shape == (5, 8)
    assert [type(m) for m in head.net] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    with pytest.raises(ConfigError):
        ProjectionHead(0, 32, 8)


# ------------------------------------------------------------------ BYOL loss and EMA


def test_byol_loss_by_hand_and_cross_view_pairing() -> None:
    p1 = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    p2 = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    t1 = torch.tensor([[2.0, 0.0], [0.0, -1.0]])
    t2 = torch.tensor([[0.0, 1.0], [0.0, 2.0]])
    # p1 vs t2: cos 0 and 1 -> 2 and 0, mean 1; p2 vs t1: cos 1/sqrt2 and -1 -> 2 - sqrt2 and 4
    expected = 1.0 + (2 - math.sqrt(2) + 4) / 2
    assert byol_loss(p1, p2, t1, t2).item() == pytest.approx(expected)
    # symmetric in the two views
    assert byol_loss(p2, p1, t2, t1).item() == pytest.approx(expected)
    # and it really pairs view 1's prediction with view 2's target
    same_view = 2 - 2 * (F.cosine_similarity(p1, t1).mean() + F.cosine_similarity(p2, t2).mean())
    assert byol_loss(p1, p2, t1, t2).item() != pytest.approx(2 + same_view.item())
    assert byol_loss(p1, p2, t2, t1).item() == pytest.approx(2 + same_view.item())


def test_byol_loss_detaches_targets_and_is_zero_for_aligned_pairs() -> None:
    p = torch.randn(4, 8, requires_grad=True)
    t = (3 * p).detach().requires_grad_()
    loss = byol_loss(p, p, t, t)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    byol_loss(p, p.flip(0), t, t.flip(0)).backward()
    assert t.grad is None and p.grad is not None


def linear_bn() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def test_ema_update_is_exact_and_copies_buffers() -> None:
    torch.manual_seed(0)
    target, online = linear_bn(), linear_bn()
    online(torch.randn(8, 3))  # gives the online BN running stats of its own
    before = {k: v.clone() for k, v in target.state_dict().items()}
    ema_update(target, online, 0.9)
    for (name, t), o in zip(target.named_parameters(), online.parameters(), strict=True):
        torch.testing.assert_close(t, 0.9 * before[name] + 0.1 * o, rtol=1e-6, atol=1e-7)
    for name, buf in online.named_buffers():
        assert torch.equal(target.get_buffer(name), buf)
    assert int(target[1].num_batches_tracked) == 1


def test_ema_update_endpoints_and_validation() -> None:
    target, online = linear_bn(), linear_bn()
    frozen = [p.clone() for p in target.parameters()]
    ema_update(target, online, 1.0)
    assert all(torch.equal(a, b) for a, b in zip(target.parameters(), frozen, strict=True))
    ema_update(target, online, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(target.parameters(), online.parameters(), strict=True))
    for tau in (-0.01, 1.01):
        with pytest.raises(ConfigError, match="tau"):
            ema_update(target, online, tau)
    with pytest.raises(ValueError):
        ema_update(target, nn.Linear(3, 4), 0.5)


def test_cosine_tau_schedule() -> None:
    assert cosine_tau(0.99, 0, 100) == pytest.approx(0.99, abs=1e-12)
    assert cosine_tau(0.99, 100, 100) == 1.0
    assert cosine_tau(0.99, 50, 100) == pytest.approx(0.995)
    taus = [cosine_tau(0.996, s, 10) for s in range(11)]
    assert taus == sorted(taus)
    assert cosine_tau(0.99, 500, 100) == 1.0  # clamped past the end
    with pytest.raises(ConfigError):
        cosine_tau(1.2, 0, 100)
    with pytest.raises(ConfigError):
        cosine_tau(0.99, 0, 0)


# ------------------------------------------------------------------ modules, one step each


def views(batch: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 12, 1000, generator=g)
    return x + 0.1 * torch.randn(x.shape, generator=g), x + 0.1 * torch.randn(x.shape, generator=g)


def test_simclr_takes_an_optimiser_step() -> None:
    torch.manual_seed(0)
    encoder = tiny_encoder()
    model = SimCLR(encoder, feature_dim=16, hidden_dim=32, projection_dim=8, temperature=0.1)
    assert model.encoder is encoder
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    v1, v2 = views()
    weight = encoder[0].weight.detach().clone()
    loss = model(v1, v2)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert math.log(1) < loss.item() < math.log(2 * 8 - 1) + 1 / 0.1 * 2  # within CE bounds
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert not torch.equal(encoder[0].weight, weight)
    assert torch.isfinite(model(*views(3, seed=1)))  # an odd short batch


def test_byol_target_starts_as_a_frozen_copy() -> None:
    model = BYOL(tiny_encoder(), feature_dim=16, hidden_dim=32, projection_dim=8)
    assert isinstance(model.predictor, PredictorHead)
    for online, target in (
        (model.encoder, model.target_encoder),
        (model.projector, model.target_projector),
    ):
        pairs = list(zip(online.state_dict().values(), target.state_dict().values(), strict=True))
        assert pairs and all(torch.equal(o, t) for o, t in pairs)
        assert all(not p.requires_grad for p in target.parameters())
        assert all(p.requires_grad for p in online.parameters())
        assert all(
            o.data_ptr() != t.data_ptr()
            for o, t in zip(online.parameters(), target.parameters(), strict=True)
        )
    with pytest.raises(ConfigError):
        BYOL(tiny_encoder(), 16, 32, 8, base_tau=1.5)


def test_byol_step_leaves_target_to_the_ema() -> None:
    torch.manual_seed(0)
    model = BYOL(tiny_encoder(), feature_dim=16, hidden_dim=32, projection_dim=8, base_tau=0.9)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    target_before = [p.clone() for p in model.target_encoder.parameters()]
    online_before = [p.clone() for p in model.encoder.parameters()]
    loss = model(*views())
    assert loss.ndim == 0 and torch.isfinite(loss) and 0 <= loss.item() <= 8
    opt.zero_grad()
    loss.backward()
    opt.step()
    target = list(model.target_encoder.parameters())
    assert all(p.grad is None for p in target)
    assert all(torch.equal(a, b) for a, b in zip(target, target_before, strict=True))
    online = list(model.encoder.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(online, online_before, strict=True))

    tau = model.tau_at(0, 10)
    assert tau == pytest.approx(0.9)
    model.update_target(tau)
    for t, t0, o in zip(target, target_before, online, strict=True):
        torch.testing.assert_close(t, tau * t0 + (1 - tau) * o, rtol=1e-6, atol=1e-7)
