"""Batched ECG augmentations: contracts (shape, seed, p), and each op's measured effect."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from ecgcli.errors import ConfigError
from ecgcli.ssl import augment as A
from ecgcli.ssl.augment import AUGMENTATIONS, AugmentConfig, ECGAugment, build_policy

FS = 100
T = 1000


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ecg_like(batch: int = 8, length: int = T, fs: int = FS, seed: int = 0) -> torch.Tensor:
    """Random multi-sine records with lead-specific amplitudes (mV), no two alike."""
    g = gen(seed)
    t = torch.arange(length) / fs
    freqs = 0.5 + 20 * torch.rand(batch, 12, 4, 1, generator=g)
    amps = 0.1 + torch.rand(batch, 12, 4, 1, generator=g)
    phase = 2 * math.pi * torch.rand(batch, 12, 4, 1, generator=g)
    x = (amps * torch.sin(2 * math.pi * freqs * t + phase)).sum(dim=2)
    return x + 0.05 * torch.randn(batch, 12, length, generator=g)


def op_always(name: str, fs: int = FS) -> A._Op:
    """The default settings of augmentation ``name`` with p = 1."""
    return dataclasses.replace(AugmentConfig(fs=fs).op(name), p=1.0)


def apply(name: str, x: torch.Tensor, seed: int = 0, fs: int = FS, **params) -> torch.Tensor:
    op = dataclasses.replace(op_always(name, fs), **params)
    return op.apply(x, gen(seed), fs)


# ------------------------------------------------------------------ contracts, every op


@pytest.mark.parametrize("name", AUGMENTATIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_device_kept_and_signal_changed(name: str, dtype: torch.dtype) -> None:
    x = ecg_like().to(dtype)
    before = x.clone()
    y = apply(name, x)
    assert y.shape == x.shape and y.dtype == dtype and y.device == x.device
    assert torch.isfinite(y).all()
    assert torch.equal(x, before), "input modified in place"
    assert not torch.equal(y, x), f"{name} with p=1 left the batch unchanged"


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_p_zero_is_exact_identity(name: str) -> None:
    x = ecg_like()
    g = gen(3)
    state = g.get_state()
    y = apply(name, x, p=0.0)
    assert y is x  # no copy, no compute
    # and no random draws either: the generator is untouched
    op = dataclasses.replace(op_always(name), p=0.0)
    op.apply(x, g, FS)
    assert torch.equal(g.get_state(), state)


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_same_seed_same_output_other_seed_other_output(name: str) -> None:
    x = ecg_like()
    a, b, c = apply(name, x, seed=5), apply(name, x, seed=5), apply(name, x, seed=6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_probability_is_per_sample(name: str) -> None:
    x = ecg_like(batch=200, length=200)
    y = apply(name, x, p=0.5, seed=1)
    changed = (y != x).flatten(1).any(dim=1).float().mean().item()
    assert 0.35 < changed < 0.65, changed
    untouched = ~(y != x).flatten(1).any(dim=1)
    assert torch.equal(y[untouched], x[untouched])


# ------------------------------------------------------------------ band-pass


def sines(freqs_hz: list[float], fs: int, length: int, offset: float = 0.0) -> torch.Tensor:
    t = torch.arange(length, dtype=torch.float64) / fs
    sig = offset + sum(torch.sin(2 * math.pi * f * t) for f in freqs_hz)
    return sig.expand(4, 12, length).contiguous().float()


def rms(x: torch.Tensor) -> float:
    return x.pow(2).mean().sqrt().item()


@pytest.mark.parametrize("fs", [100, 500])
def test_bandpass_never_passes_nyquist(fs: int) -> None:
    alternating = torch.cos(math.pi * torch.arange(10 * fs, dtype=torch.float64))
    x = alternating.expand(4, 12, -1).contiguous().float()
    for seed in range(3):
        assert apply("bandpass", x, seed=seed, fs=fs).abs().max().item() < 1e-5


@pytest.mark.parametrize("fs", [100, 500])
def test_bandpass_removes_drift_and_offset(fs: int) -> None:
    length = 10 * fs
    t = torch.arange(length, dtype=torch.float64) / fs
    drift = (0.5 + 0.3 * torch.sin(2 * math.pi * 0.1 * t)).expand(6, 12, length).float()
    y = apply("bandpass", drift.contiguous(), fs=fs)
    assert rms(y) < 0.01 * rms(drift)
    # away from the mirrored ends, what is left is under 1% of the 0.8 mV peak
    assert y[..., length // 10 : -length // 10].abs().max().item() < 0.008 * 0.8


@pytest.mark.parametrize("fs", [100, 500])
def test_bandpass_keeps_band_removes_above_high_cut(fs: int) -> None:
    length = 10 * fs
    in_band = apply("bandpass", sines([10.0], fs, length), fs=fs)
    assert rms(in_band) == pytest.approx(math.sqrt(0.5), rel=0.01)
    # above the largest high cut: 48 Hz at 100 Hz (cap 45), 150 Hz at 500 Hz (cut <= 60)
    above = 48.0 if fs == 100 else 150.0
    mixed = sines([10.0, above], fs, length)
    y = apply("bandpass", mixed, fs=fs)
    spec_in = torch.fft.rfft(mixed.double(), dim=-1).abs()
    spec_out = torch.fft.rfft(y.double(), dim=-1).abs()
    k_above, k_in = round(above * length / fs), round(10.0 * length / fs)
    assert (spec_out[..., k_above] / spec_in[..., k_above]).max().item() < 0.03
    assert (spec_out[..., k_in] / spec_in[..., k_in]).min().item() > 0.98


def test_bandpass_high_cut_capped_below_nyquist_at_100hz() -> None:
    # at 100 Hz the default 40-60 Hz high cut becomes 40-45 Hz: 46 Hz is already past the
    # -3 dB point of every draw, so it loses more than half its amplitude in every record
    x = sines([46.0], 100, 1000)
    for seed in range(3):
        y = apply("bandpass", x, seed=seed)
        per_record = y.pow(2).mean(dim=(1, 2)).sqrt() / math.sqrt(0.5)
        assert per_record.max().item() < 0.5


def test_bandpass_impossible_at_tiny_rate() -> None:
    with pytest.raises(ConfigError, match="bandpass"):
        A.Bandpass(p=1.0).apply(ecg_like(), gen(), fs=2)
    with pytest.raises(ConfigError, match="bandpass"):
        AugmentConfig(fs=2)


# ------------------------------------------------------------------ time warp


def zero_crossing_frequency(sig: np.ndarray, fs: float) -> float:
    """Frequency from the mean spacing of upward zero crossings (linearly interpolated)."""
    idx = np.nonzero((sig[:-1] < 0) & (sig[1:] >= 0))[0]
    times = (idx + sig[idx] / (sig[idx] - sig[idx + 1])) / fs
    return (len(times) - 1) / (times[-1] - times[0])


def test_time_warp_changes_frequency_by_at_most_five_percent() -> None:
    f0 = 5.0
    x = sines([f0], FS, T)[:1].expand(64, 12, T).contiguous()
    y = apply("time_warp", x, seed=2)
    core = slice(T // 10, -T // 10)  # away from the mirrored ends
    ratios = np.array([zero_crossing_frequency(y[b, 0, core].numpy(), FS) / f0 for b in range(64)])
    assert ratios.min() >= 0.95 - 1e-3 and ratios.max() <= 1.05 + 1e-3
    assert ratios.min() < 0.97 and ratios.max() > 1.03  # it does warp, both ways
    # all leads of one record get the same factor
    assert torch.allclose(y[:, 0], y[:, 5])


def test_time_warp_without_change_is_identity() -> None:
    # up to the float32 grid of grid_sample: about 1e-4 of a sample
    x = ecg_like()
    y = apply("time_warp", x, max_change=0.0)
    slope = (x.diff(dim=-1).abs().max()).item()
    assert (y - x).abs().max().item() < 1e-3 * slope
    x64 = x.double()
    assert torch.allclose(apply("time_warp", x64, max_change=0.0), x64, atol=1e-12)


# ------------------------------------------------------------------ mixing ops


def block_batch(batch: int = 10, length: int = 1000) -> torch.Tensor:
    """Record b is 1 in its own time block b and 0 elsewhere: mixing is readable by block."""
    x = torch.zeros(batch, 12, length, dtype=torch.float64)
    width = length // batch
    for b in range(batch):
        x[b, :, b * width : (b + 1) * width] = 1.0
    return x


def test_mixup_anchor_dominates_and_partner_is_another_record() -> None:
    batch, length = 10, 1000
    x = block_batch(batch, length)
    y = apply("mixup", x, seed=4)
    blocks = y[:, 0].reshape(batch, batch, length // batch).mean(dim=-1)  # (record, block)
    lam = blocks.diagonal()
    assert (lam >= 0.5).all() and (lam <= 1.0).all()
    others = blocks.clone()
    others.fill_diagonal_(0)
    assert torch.allclose(others.sum(dim=1), 1 - lam)  # the rest comes from ...
    assert ((others > 0).sum(dim=1) <= 1).all()  # ... exactly one partner
    assert (lam < 1).any()


def test_cutmix_replaces_one_contiguous_span_with_partner_values() -> None:
    batch, length = 16, 1000
    idx = torch.arange(batch, dtype=torch.float64)[:, None, None]
    t = torch.arange(length, dtype=torch.float64)
    x = (1000 * idx + torch.arange(12.0, dtype=torch.float64)[:, None] + t / length).contiguous()
    y = apply("cutmix", x, seed=7)
    for b in range(batch):
        diff = torch.nonzero((y[b] != x[b]).any(dim=0)).flatten()
        assert len(diff) > 0
        assert torch.equal(diff, torch.arange(diff[0], diff[-1] + 1))  # contiguous
        assert 0.1 * length - 1 <= len(diff) <= 0.3 * length + 1
        source = torch.div(y[b, :, diff], 1000, rounding_mode="floor").unique()
        assert len(source) == 1 and int(source) != b
        assert torch.equal(y[b, :, diff], x[int(source), :, diff])  # same time span


# ------------------------------------------------------------------ dropout and noise


def test_temporal_dropout_fills_a_linear_bridge_between_neighbours() -> None:
    x = ecg_like(batch=16).double()
    y = apply("temporal_dropout", x, seed=8)
    for b in range(16):
        gap = torch.nonzero((y[b] != x[b]).any(dim=0)).flatten()
        start, end = int(gap[0]), int(gap[-1]) + 1
        assert end - start == len(gap)  # contiguous
        assert 0.05 * T - 1 <= len(gap) <= 0.2 * T + 1
        assert start >= 1 and end <= T - 1
        w = torch.arange(1, end - start + 1, dtype=torch.float64) / (end - start + 1)
        expected = x[b, :, start - 1, None] + (x[b, :, end, None] - x[b, :, start - 1, None]) * w
        assert torch.allclose(y[b, :, start:end], expected, atol=1e-12)


def test_channel_noise_std_is_half_to_two_percent_of_each_lead() -> None:
    x = ecg_like(batch=16, length=5000) * torch.linspace(0.1, 3.0, 12)[:, None]
    y = apply("channel_noise", x, seed=9)
    ratio = (y - x).std(dim=-1) / x.std(dim=-1)  # (B, 12)
    assert ratio.min().item() > 0.005 * 0.95 and ratio.max().item() < 0.02 * 1.05
    assert ratio.min().item() < 0.007 and ratio.max().item() > 0.018  # spans the range


def test_baseline_wander_amplitude_and_frequency_in_range() -> None:
    x = ecg_like(batch=16)
    wander = (apply("baseline_wander", x, seed=10) - x).double()
    peak = wander.abs().amax(dim=-1)  # >= 5 cycles in 10 s, so the peak is reached
    assert peak.min().item() >= 0.01 * 0.99 and peak.max().item() <= 0.05 + 1e-6
    spectrum = torch.fft.rfft(wander, dim=-1).abs()
    f_peak = spectrum.argmax(dim=-1).double() * FS / T
    assert f_peak.min().item() >= 0.4 and f_peak.max().item() <= 2.1
    assert (f_peak == f_peak[:, :1]).all()  # one frequency per record
    assert not torch.allclose(wander[:, 0] / peak[:, :1, None], wander[:, 1] / peak[:, 1:2, None])


def test_policy_draws_both_noises_as_one_gaussian_of_the_summed_variance() -> None:
    on = {"channel_noise": A.ChannelNoise(p=1.0), "jitter": A.Jitter(p=1.0, sigma=0.05)}
    off = {n: dataclasses.replace(AugmentConfig().op(n), p=0.0) for n in AUGMENTATIONS}
    policy = ECGAugment(AugmentConfig(**{**off, **on}))
    assert policy.enabled == ("channel_noise", "jitter")
    x = ecg_like(batch=16, length=5000).double()
    noise_std = (policy(x, gen(13)) - x).std(dim=-1)
    lead_std = x.std(dim=-1)
    low = ((0.005 * lead_std) ** 2 + 0.05**2).sqrt()
    high = ((0.02 * lead_std) ** 2 + 0.05**2).sqrt()
    assert (noise_std > 0.95 * low).all() and (noise_std < 1.05 * high).all()


def test_jitter_and_amplitude_scale() -> None:
    x = ecg_like(batch=4, length=5000).double()
    noise = apply("jitter", x, seed=11) - x
    assert noise.std().item() == pytest.approx(0.01, rel=0.03)
    scaled = apply("amplitude_scale", x, seed=12)
    factor = scaled / x
    assert torch.allclose(factor, factor[:, :1, :1].expand_as(factor))
    assert factor.min().item() >= 0.9 and factor.max().item() <= 1.1


# ------------------------------------------------------------------ policy and config


def test_policy_views_are_deterministic_and_different() -> None:
    policy = build_policy(FS)
    assert policy.enabled == AUGMENTATIONS
    x = ecg_like()
    v1, v2 = policy.two_views(x, gen(1))
    w1, w2 = policy.two_views(x, gen(1))
    assert torch.equal(v1, w1) and torch.equal(v2, w2)
    assert not torch.equal(v1, v2)
    assert v1.shape == x.shape and v1.dtype == x.dtype


def test_policy_with_everything_disabled_returns_a_copy() -> None:
    policy = build_policy(FS, disabled=AUGMENTATIONS)
    assert policy.enabled == ()
    x = ecg_like()
    y = policy(x, gen())
    assert torch.equal(y, x) and y is not x


def test_disabled_names_accept_hyphens_and_reject_unknown() -> None:
    policy = build_policy(500, disabled=["time-warp", "mixup"])
    assert "time_warp" not in policy.enabled and "mixup" not in policy.enabled
    assert len(policy.enabled) == len(AUGMENTATIONS) - 2
    assert policy.config.time_warp.p == 0 and policy.config.fs == 500
    with pytest.raises(ConfigError, match="valid names: mixup, cutmix, time_warp") as info:
        build_policy(FS, disabled=["warp"])
    assert "'warp'" in str(info.value) and "\n" not in str(info.value)


def test_config_round_trips_through_json() -> None:
    config = dataclasses.replace(
        AugmentConfig(fs=500),
        bandpass=A.Bandpass(p=0.7, low=(0.4, 1.0), high=(35.0, 70.0), order=3),
        mixup=A.Mixup(p=0.0, alpha=0.2),
    )
    data = json.loads(json.dumps(config.to_dict()))
    assert data["bandpass"]["high"] == [35.0, 70.0]
    assert AugmentConfig.from_dict(data) == config
    assert AugmentConfig.from_dict({}) == AugmentConfig()


@pytest.mark.parametrize(
    "data",
    [
        {"fs": 100, "warp": {}},
        {"mixup": {"p": 1.5}},
        {"mixup": {"beta": 1.0}},
        {"cutmix": {"fraction": [0.3, 0.1]}},
        {"fs": 0},
        {"jitter": {"p": "often"}},
    ],
)
def test_bad_config_is_a_config_error(data: dict) -> None:
    with pytest.raises(ConfigError):
        AugmentConfig.from_dict(data)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_policy_stays_on_gpu() -> None:
    x = ecg_like().cuda()
    g = torch.Generator(device="cuda").manual_seed(0)
    v1, v2 = build_policy(FS).two_views(x, g)
    assert v1.is_cuda and v2.is_cuda
    g = torch.Generator(device="cuda").manual_seed(0)
    assert torch.equal(build_policy(FS)(x, g), v1)


def test_repr_lists_enabled() -> None:
    assert repr(ECGAugment(AugmentConfig(jitter=A.Jitter(p=0)))).count("jitter") == 0


def test_bank_noise_is_unit_white_and_rows_are_decorrelated() -> None:
    from ecgcli.ssl.augment import _white_noise

    g = torch.Generator().manual_seed(3)
    noise, sign = _white_noise(torch.Size((64, 12, 1000)), g, torch.device("cpu"), torch.float32)
    assert noise.shape == (64, 12, 1000) and set(sign.unique().tolist()) == {-1, 1}
    x = (noise * sign).reshape(-1, 1000).double()
    assert abs(x.mean().item()) < 0.01 and abs(x.std().item() - 1.0) < 0.01
    lag1 = (x[:, 1:] * x[:, :-1]).mean().item()
    assert abs(lag1) < 0.01  # white: no correlation between neighbouring samples
    z = (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True)
    corr = (z @ z.T) / 1000
    off = corr[~torch.eye(len(z), dtype=torch.bool)]
    assert off.abs().mean().item() < 0.05  # rows are (nearly) independent on average
    again, _ = _white_noise(
        torch.Size((64, 12, 1000)), torch.Generator().manual_seed(3), torch.device("cpu"), torch.float32
    )
    assert torch.equal(noise, again)  # seeded
