"""Batched, seeded ECG augmentations for self-supervised views.

Every augmentation takes a whole batch ``x`` of shape ``(B, 12, T)`` in millivolts and returns
a new tensor of the same shape, dtype and device. Why batched: the reference study augmented
one record at a time in numpy/scipy, which cost about as much as a training step on CPU; here
each op is a handful of tensor operations over the batch, so it runs wherever the batch is (a
GPU included) and never leaves the device.

Conventions shared by every op:

- Randomness comes only from the ``generator`` argument (a ``torch.Generator`` on ``x``'s
  device): the same seed gives the same output, bit for bit, on the same device.
- Each sample is augmented independently with probability ``p``: a per-sample Bernoulli mask
  selects between the augmented and the original batch (``torch.where``). ``p == 0`` returns
  ``x`` itself, with no computation and no random draws; ``p == 1`` skips the mask.
- Parameters are drawn per sample (and per lead where the docstring says so) from the stated
  ranges; times and frequencies are in seconds and Hz, converted with the sampling rate ``fs``.

:class:`ECGAugment` applies the enabled ops in the fixed order of :data:`AUGMENTATIONS`:

1. ``mixup`` and ``cutmix`` first, so the partner record is mixed in clean rather than
   already carrying its own artefacts;
2. ``time_warp`` and ``bandpass`` (physiology and acquisition front-end);
3. ``amplitude_scale`` and ``temporal_dropout`` (gain changes, lost samples);
4. ``baseline_wander``, ``channel_noise`` and ``jitter`` last, so the band-pass cannot remove
   the wander it is meant to be robust to and the linear fill of a dropout still gets noise.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Generator, Tensor

from ecgcli.errors import ConfigError

#: Augmentation names, in the order :class:`ECGAugment` applies them.
AUGMENTATIONS: tuple[str, ...] = (
    "mixup",
    "cutmix",
    "time_warp",
    "bandpass",
    "amplitude_scale",
    "temporal_dropout",
    "baseline_wander",
    "channel_noise",
    "jitter",
)

Range = tuple[float, float]


# --------------------------------------------------------------------------------------------
# helpers


def _check_batch(x: Tensor) -> None:
    if x.ndim != 3 or not x.is_floating_point():
        raise ValueError(f"expected a float tensor (B, leads, T), got {x.dtype} {tuple(x.shape)}")


def _work_dtype(x: Tensor) -> torch.dtype:
    """dtype for random parameters and index arithmetic: float64 stays float64, else float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _uniform(bounds: Range, shape: tuple[int, ...], g: Generator | None, x: Tensor) -> Tensor:
    lo, hi = bounds
    u = torch.rand(shape, generator=g, device=x.device, dtype=_work_dtype(x))
    return lo + (hi - lo) * u


def _select(x: Tensor, y: Tensor, p: float, g: Generator | None) -> Tensor:
    """Per sample: ``y`` with probability ``p``, else ``x`` (one Bernoulli draw per sample)."""
    y = y.to(x.dtype)
    if p >= 1.0:
        return y
    take = torch.rand(x.shape[0], 1, 1, generator=g, device=x.device) < p
    return torch.where(take, y, x)


def _partner(batch: int, g: Generator | None, device: torch.device) -> Tensor:
    """Index of another sample for each sample: a random single cycle, so never itself (B >= 2).

    A plain random permutation leaves about one sample per batch mixed with itself, which
    makes mixup/cutmix a silent no-op for it; following the cycle of a permutation avoids that.
    """
    perm = torch.randperm(batch, generator=g, device=device)
    partner = torch.empty_like(perm)
    partner[perm] = perm.roll(-1)
    return partner


def _check_p(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"{name}: probability p must be in [0, 1], got {p}")


def _check_range(name: str, what: str, bounds: Range, lo: float, hi: float) -> None:
    a, b = bounds
    if not (lo <= a <= b <= hi):
        raise ConfigError(f"{name}: {what} must satisfy {lo} <= low <= high <= {hi}, got {bounds}")


# --------------------------------------------------------------------------------------------
# the augmentations (functional form)


def time_warp(
    x: Tensor, generator: Generator | None, *, p: float = 0.5, max_change: float = 0.05
) -> Tensor:
    """Heart-rate change: resample each record in time by its own factor in ``1 +- max_change``.

    Output sample ``t`` reads the input at ``c + s (t - c)`` (``c`` the window centre, linear
    interpolation), so every frequency, the heart rate included, is multiplied by ``s``. The
    length stays ``T``: a slowed record (``s < 1``) is cropped symmetrically, a sped-up one
    reads up to ``max_change / 2`` of the window past each end, which is filled by mirror
    reflection (continuous, unlike edge padding, which would draw a flat line).
    """
    _check_batch(x)
    if p <= 0:
        return x
    batch, leads, length = x.shape
    if length < 2:
        return x
    s = _uniform((1.0 - max_change, 1.0 + max_change), (batch, 1), generator, x)
    t = torch.arange(length, device=x.device, dtype=s.dtype)
    centre = (length - 1) / 2
    pos = centre + (t - centre) * s  # (B, T) source positions
    last = float(length - 1)
    pos = last - (torch.remainder(pos, 2 * last) - last).abs()  # reflect into [0, T-1]
    i0 = pos.floor().clamp_(0, length - 2)
    w = (pos - i0).to(x.dtype).unsqueeze(1)
    i0 = i0.long().unsqueeze(1).expand(batch, leads, length)
    x0 = torch.gather(x, 2, i0)
    x1 = torch.gather(x, 2, i0 + 1)
    return _select(x, torch.lerp(x0, x1, w), p, generator)


def _beta(alpha: float, shape: tuple[int, ...], g: Generator | None, x: Tensor):
    """Beta(alpha, alpha) from two Gamma draws (torch.distributions.Beta takes no generator)."""
    conc = torch.full(shape, alpha, device=x.device, dtype=_work_dtype(x))
    a = torch._standard_gamma(conc, generator=g)
    b = torch._standard_gamma(conc, generator=g)
    total = a + b
    return torch.where(total > 0, a / total.clamp_min(torch.finfo(total.dtype).tiny), 1.0)


def mixup(x: Tensor, generator: Generator | None, *, p: float = 0.3, alpha: float = 0.4) -> Tensor:
    """ECG-aware mixup (Zhang et al., 2018): ``lam * x + (1 - lam) * x[partner]``.

    ``lam ~ Beta(alpha, alpha)`` per record, then ``lam = max(lam, 1 - lam)`` so the anchor
    always contributes at least half: a view must stay a view *of its own record*, otherwise
    the SSL positive pair would be two records blended half and half, and the two views of one
    record could each be dominated by a different stranger. The partner is another record of
    the batch (never itself when ``B >= 2``).
    """
    _check_batch(x)
    if p <= 0:
        return x
    batch = x.shape[0]
    lam = _beta(alpha, (batch, 1, 1), generator, x)
    lam = torch.maximum(lam, 1.0 - lam).to(x.dtype)
    other = x[_partner(batch, generator, x.device)]
    return _select(x, lam * x + (1.0 - lam) * other, p, generator)


def _butterworth_gain(freqs: Tensor, low: Tensor, high: Tensor, fs: float, order: int) -> Tensor:
    """Zero-phase band-pass gain: ``|H_hp|^2 |H_lp|^2`` of order-``order`` digital Butterworths.

    Digital (bilinear-transform) Butterworth magnitudes use ``tan(pi f / fs)`` in place of the
    analogue frequency, so the low-pass gain is exactly 0 at Nyquist and the high-pass gain
    exactly 0 at DC. The squared magnitude is what ``scipy.signal.filtfilt`` applies with
    ``butter(order, ...)`` (forward and backward pass), so this matches the reference study's
    filter without its phase concerns.
    """
    t = torch.tan(math.pi * freqs / fs).pow(2 * order)  # (F,)
    t_lo = torch.tan(math.pi * low / fs).pow(2 * order)  # (B, 1)
    t_hi = torch.tan(math.pi * high / fs).pow(2 * order)
    gain = (t / (t + t_lo)) * (t_hi / (t + t_hi))
    return torch.where(freqs >= fs / 2, 0.0, gain)  # Nyquist bin: no pass, whatever rounding


def bandpass(
    x: Tensor,
    generator: Generator | None,
    *,
    fs: float,
    p: float = 0.5,
    low: Range = (0.5, 1.5),
    high: Range = (40.0, 60.0),
    order: int = 2,
    max_high_fraction: float = 0.9,
) -> Tensor:
    """Random front-end filter: per-record low cut in ``low`` Hz and high cut in ``high`` Hz.

    The high-cut range is first clipped to ``max_high_fraction * fs / 2`` (45 Hz at 100 Hz,
    where the default 40-60 Hz becomes 40-45 Hz), so the pass band always ends strictly below
    Nyquist; the 500 Hz records keep the full range. Filtering is done in the frequency domain
    (``rfft``/``irfft``) on the record followed by its mirror image (reflected about the end
    samples, ``np.pad(mode="reflect")`` style): the extended signal is periodic without a jump,
    so the circular FFT does not ring at the window edges, and even a Nyquist-rate alternation
    continues unbroken across the seam and is removed entirely.
    """
    _check_batch(x)
    if p <= 0 or x.shape[-1] < 2:
        return x
    nyquist = fs / 2
    cap = max_high_fraction * nyquist
    if low[1] >= min(high[0], cap):
        raise ConfigError(
            f"bandpass: low cut up to {low[1]} Hz does not lie below the high cut "
            f"({min(high[0], cap):g} Hz at fs={fs:g})"
        )
    batch, _, length = x.shape
    high_range = (min(high[0], cap), min(high[1], cap))
    # cut-offs in float64: tan() near Nyquist is ill-conditioned in float32
    lo_f = _uniform(low, (batch, 1), generator, x).double()
    hi_f = _uniform(high_range, (batch, 1), generator, x).double()
    n = 2 * length - 2  # the record, then its mirror image without repeating the end samples
    freqs = torch.fft.rfftfreq(n, d=1.0 / fs, device=x.device, dtype=torch.float64)
    gain = _butterworth_gain(freqs, lo_f, hi_f, fs, order)
    work = torch.promote_types(x.dtype, torch.float32)
    xw = x.to(work)
    spec = torch.fft.rfft(torch.cat([xw, xw.flip(-1)[..., 1:-1]], dim=-1), dim=-1)
    y = torch.fft.irfft(spec * gain.to(work).unsqueeze(1), n=n, dim=-1)[..., :length]
    return _select(x, y, p, generator)


def cutmix(
    x: Tensor,
    generator: Generator | None,
    *,
    p: float = 0.3,
    fraction: Range = (0.1, 0.3),
) -> Tensor:
    """Segment CutMix (Yun et al., 2019, along time): a contiguous span replaced by a partner's.

    The span covers ``fraction`` of the window (drawn per record), at a uniform position, and
    takes the *same* time span of another record of the batch, so lead relations stay intact
    inside the span and the anchor keeps at least 70% of its own signal with the defaults.
    """
    _check_batch(x)
    if p <= 0:
        return x
    batch, _, length = x.shape
    span = (_uniform(fraction, (batch, 1), generator, x) * length).round().clamp_(1, length)
    start = (_uniform((0.0, 1.0), (batch, 1), generator, x) * (length - span + 1)).floor()
    start = torch.minimum(start, length - span)
    t = torch.arange(length, device=x.device, dtype=span.dtype)
    inside = ((t >= start) & (t < start + span)).unsqueeze(1)  # (B, 1, T)
    other = x[_partner(batch, generator, x.device)]
    return _select(x, torch.where(inside, other, x), p, generator)


def baseline_wander(
    x: Tensor,
    generator: Generator | None,
    *,
    fs: float,
    p: float = 0.5,
    freq: Range = (0.5, 2.0),
    amplitude: Range = (0.01, 0.05),
) -> Tensor:
    """Motion/respiration artefact: add ``A sin(2 pi f t + phi)``.

    One frequency ``f`` (Hz) per record, since breathing or movement moves the whole body at
    once; amplitude ``A`` (mV) and phase ``phi`` per record *and lead*, since each lead sees
    the movement through a different electrode geometry.
    """
    _check_batch(x)
    if p <= 0:
        return x
    batch, leads, length = x.shape
    f = _uniform(freq, (batch, 1, 1), generator, x)
    amp = _uniform(amplitude, (batch, leads, 1), generator, x)
    phase = _uniform((0.0, 2 * math.pi), (batch, leads, 1), generator, x)
    t = torch.arange(length, device=x.device, dtype=f.dtype) / fs
    wander = amp * torch.sin(2 * math.pi * f * t + phase)
    return _select(x, x + wander.to(x.dtype), p, generator)


def channel_noise(
    x: Tensor,
    generator: Generator | None,
    *,
    p: float = 0.5,
    relative_std: Range = (0.005, 0.02),
) -> Tensor:
    """Electrode noise scaled to each lead: Gaussian with ``sigma = r * std(lead)``.

    ``r`` is drawn per record and lead from ``relative_std`` (0.5-2% by default), so a
    low-voltage lead gets proportionally little noise instead of being drowned by a fixed
    sigma; a flat lead stays flat.
    """
    _check_batch(x)
    if p <= 0:
        return x
    batch, leads, _ = x.shape
    rel = _uniform(relative_std, (batch, leads, 1), generator, x).to(x.dtype)
    sigma = rel * x.std(dim=-1, keepdim=True)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return _select(x, x + sigma * noise, p, generator)


def temporal_dropout(
    x: Tensor,
    generator: Generator | None,
    *,
    p: float = 0.3,
    fraction: Range = (0.05, 0.2),
) -> Tensor:
    """Lost samples: one contiguous block (``fraction`` of the window) linearly interpolated.

    The block never touches the window edges, so it always has a kept sample on each side;
    every lead of the block is replaced by the straight line between those two samples, the
    way a recorder bridges a short signal dropout. Zero-filling would instead plant an
    artificial step that an encoder can learn to spot.
    """
    _check_batch(x)
    if p <= 0:
        return x
    batch, leads, length = x.shape
    if length < 3:
        return x
    span = (_uniform(fraction, (batch, 1), generator, x) * length).round().clamp_(1, length - 2)
    n_starts = length - 1 - span  # valid starts: 1 .. T-1-span
    start = 1 + (_uniform((0.0, 1.0), (batch, 1), generator, x) * n_starts).floor()
    start = torch.minimum(start, n_starts)
    left, right = start - 1, start + span  # the kept neighbours
    t = torch.arange(length, device=x.device, dtype=span.dtype)
    w = ((t - left) / (right - left)).to(x.dtype).unsqueeze(1)  # (B, 1, T)
    x_left = torch.gather(x, 2, left.long().unsqueeze(1).expand(batch, leads, 1))
    x_right = torch.gather(x, 2, right.long().unsqueeze(1).expand(batch, leads, 1))
    inside = ((t >= start) & (t < start + span)).unsqueeze(1)
    filled = torch.where(inside, x_left + (x_right - x_left) * w, x)
    return _select(x, filled, p, generator)


def jitter(
    x: Tensor, generator: Generator | None, *, p: float = 0.5, sigma: float = 0.01
) -> Tensor:
    """Weak white noise: add Gaussian noise of ``sigma`` mV (0.01 mV, about the ADC's 1 uV
    resolution times ten), independent of the lead's amplitude."""
    _check_batch(x)
    if p <= 0:
        return x
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return _select(x, x + sigma * noise, p, generator)


def amplitude_scale(
    x: Tensor, generator: Generator | None, *, p: float = 0.5, scale: Range = (0.9, 1.1)
) -> Tensor:
    """Gain change: multiply the record by one factor from ``scale``, the same for all leads,
    so inter-lead relations (Einthoven's law, axis) are preserved."""
    _check_batch(x)
    if p <= 0:
        return x
    factor = _uniform(scale, (x.shape[0], 1, 1), generator, x).to(x.dtype)
    return _select(x, x * factor, p, generator)


# --------------------------------------------------------------------------------------------
# configuration: one frozen dataclass per augmentation, gathered in AugmentConfig


@dataclass(frozen=True)
class _Op:
    """Base of the per-augmentation settings: a probability and the op's parameters."""

    name: ClassVar[str]
    p: float

    def __post_init__(self) -> None:
        _check_p(self.name, self.p)

    def params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "p"}

    def apply(self, x: Tensor, generator: Generator | None, fs: float) -> Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class TimeWarp(_Op):
    """See :func:`time_warp`."""

    name: ClassVar[str] = "time_warp"
    p: float = 0.5
    max_change: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.max_change < 0.5:
            raise ConfigError(f"time_warp: max_change must be in [0, 0.5), got {self.max_change}")

    def apply(self, x: Tensor, generator: Generator | None, fs: float) -> Tensor:
        return time_warp(x, generator, p=self.p, max_change=self.max_change)


@dataclass(frozen=True)
class Mixup(_Op):
    """See :func:`mixup`."""

    name: ClassVar[str] = "mixup"
    p: float = 0.3
    alpha: float = 0.4

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.alpha > 0:
            raise ConfigError(f"mixup: alpha must be > 0, got {self.alpha}")

    def apply(self, x: Tensor, generator: Generator | None, fs: float) -> Tensor:
        return mixup(x, generator, p=self.p, alpha=self.alpha)


@dataclass(frozen=True)
class Bandpass(_Op):
    """See :func:`bandpass`."""

    name: ClassVar[str] = "bandpass"
    p: float = 0.5
    low: Range = (0.5, 1.5)
    high: Range = (40.0, 60.0)
    order: int = 2
    max_high_fraction: float = 0.9

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range(self.name, "low cut (Hz)", self.low, 0.0, math.inf)
        _check_range(self.name, "high cut (Hz)", self.high, 0.0, math.inf)
        if self.low[0] <= 0:
            raise ConfigError(f"bandpass: low cut must be > 0 Hz, got {self.low}")
        if not 1 <= self.order <= 8:
            raise ConfigError(f"bandpass: order must be 1..8, got {self.order}")
        if not 0 < self.max_high_fraction < 1:
            raise ConfigError(
                f"bandpass: max_high_fraction must be in (0, 1), got {self.max_high_fraction}"
            )

    def apply(self, x: Tensor, generator: Generator | None, fs: float) -> Tensor:
        return bandpass(x, generator, fs=fs, p=self.p, **self.params())


@dataclass(frozen=True)
class CutMix(_Op):
    """See :func:`cutmix`."""

    name: ClassVar[str] = "cutmix"
    p: float = 0.3
    fraction: Range = (0.1, 0.3)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range(self.name, "fraction", self.fraction, 0.0, 1.0)

    def apply(self, x: Tensor, generator: Generator | None, fs: float) -> Tensor:
        return cutmix(x, generator, p=self.p, fraction=self.fraction)


@dataclass(frozen=True)
class BaselineWander(_Op):
    """See :func:`baseline_wander`."""

    name: ClassVar[str] = "baseline_wander"
    p: float = 0.5
    freq: Range = (0.5, 2.0)
    amplitude: Range = (0.01, 0.05)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range(self.name, "frequency (Hz)", self.freq, 0.0, math.inf)
        _check_range(self.name, "amplitude (mV)", self.amplitude, 0.0, math.inf)

    def apply(self, x: Tensor, generator: Generator | None, fs: float) -> Tensor:
        return baseline_wander(x, generator, fs=fs, p=self.p, **self.params())


@dataclass(frozen=True)
class ChannelNoise(_Op):
    """See :func:`channel_noise`."""

    name: ClassVar[str] = "channel_noise"
    p: float = 0.5
    relative_std: Range = (0.005, 0.02)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range(self.name, "relative_std", self.relative_std, 0.0, math.inf)

    def apply(self, x: Tensor, generator: Generator | None, fs: float) -> Tensor:
        return channel_noise(x, generator, p=self.p, relative_std=self.relative_std)


@dataclass(frozen=True)
class TemporalDropout(_Op):
    """See :func:`temporal_dropout`."""

    name: ClassVar[str] = "temporal_dropout"
    p: float = 0.3
    fraction: Range = (0.05, 0.2)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range(self.name, "fraction", self.fraction, 0.0, 1.0)

    def apply(self, x: Tensor, generator: Generator | None, fs: float) -> Tensor:
        return temporal_dropout(x, generator, p=self.p, fraction=self.fraction)


@dataclass(frozen=True)
class Jitter(_Op):
    """See :func:`jitter`."""

    name: ClassVar[str] = "jitter"
    p: float = 0.5
    sigma: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sigma < 0:
            raise ConfigError(f"jitter: sigma must be >= 0 mV, got {self.sigma}")

    def apply(self, x: Tensor, generator: Generator | None, fs: float) -> Tensor:
        return jitter(x, generator, p=self.p, sigma=self.sigma)


@dataclass(frozen=True)
class AmplitudeScale(_Op):
    """See :func:`amplitude_scale`."""

    name: ClassVar[str] = "amplitude_scale"
    p: float = 0.5
    scale: Range = (0.9, 1.1)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range(self.name, "scale", self.scale, 0.0, math.inf)

    def apply(self, x: Tensor, generator: Generator | None, fs: float) -> Tensor:
        return amplitude_scale(x, generator, p=self.p, scale=self.scale)


_OPS: dict[str, type[_Op]] = {
    op.name: op
    for op in (
        Mixup,
        CutMix,
        TimeWarp,
        Bandpass,
        AmplitudeScale,
        TemporalDropout,
        BaselineWander,
        ChannelNoise,
        Jitter,
    )
}
assert tuple(_OPS) == AUGMENTATIONS


@dataclass(frozen=True)
class AugmentConfig:
    """Every augmentation's probability and parameters, plus the sampling rate.

    Saved with checkpoints (``to_dict`` is plain JSON), so a run records exactly which views
    its encoder was trained on. A disabled augmentation is one with ``p == 0``.
    """

    fs: int = 100
    mixup: Mixup = field(default_factory=Mixup)
    cutmix: CutMix = field(default_factory=CutMix)
    time_warp: TimeWarp = field(default_factory=TimeWarp)
    bandpass: Bandpass = field(default_factory=Bandpass)
    amplitude_scale: AmplitudeScale = field(default_factory=AmplitudeScale)
    temporal_dropout: TemporalDropout = field(default_factory=TemporalDropout)
    baseline_wander: BaselineWander = field(default_factory=BaselineWander)
    channel_noise: ChannelNoise = field(default_factory=ChannelNoise)
    jitter: Jitter = field(default_factory=Jitter)

    def __post_init__(self) -> None:
        if isinstance(self.fs, bool) or not isinstance(self.fs, int) or self.fs <= 0:
            raise ConfigError(f"sampling rate fs must be a positive integer, got {self.fs!r}")
        bp = self.bandpass
        if bp.p > 0 and bp.low[1] >= min(bp.high[0], bp.max_high_fraction * self.fs / 2):
            raise ConfigError(
                f"bandpass: low cut up to {bp.low[1]} Hz is not below the high cut at fs={self.fs}"
            )

    def op(self, name: str) -> _Op:
        return getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable form: ``{"fs": 100, "mixup": {"p": 0.3, "alpha": 0.4}, ...}``."""
        out: dict[str, Any] = {"fs": self.fs}
        for name in AUGMENTATIONS:
            op = self.op(name)
            entry: dict[str, Any] = {"p": op.p}
            for key, value in op.params().items():
                entry[key] = list(value) if isinstance(value, tuple) else value
            out[name] = entry
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AugmentConfig:
        """Inverse of :meth:`to_dict`; missing entries take their defaults, unknown ones fail."""
        unknown = set(data) - {"fs", *AUGMENTATIONS}
        if unknown:
            raise ConfigError(
                f"unknown augmentation setting(s) {', '.join(sorted(unknown))}; "
                f"valid: fs, {', '.join(AUGMENTATIONS)}"
            )
        kwargs: dict[str, Any] = {}
        if "fs" in data:
            kwargs["fs"] = data["fs"]
        for name in AUGMENTATIONS:
            if name not in data:
                continue
            op_cls = _OPS[name]
            fields = {f.name: f for f in dataclasses.fields(op_cls)}
            entry = data[name]
            if not isinstance(entry, dict) or set(entry) - set(fields):
                raise ConfigError(
                    f"{name}: settings must be a mapping with keys from "
                    f"{', '.join(fields)}, got {entry!r}"
                )
            values = {k: tuple(v) if isinstance(v, list) else v for k, v in entry.items()}
            try:
                kwargs[name] = op_cls(**values)
            except TypeError as exc:  # e.g. a range that is not a pair
                raise ConfigError(f"{name}: invalid settings {entry!r} ({exc})") from None
        return cls(**kwargs)


class ECGAugment:
    """The SSL view generator: applies the enabled augmentations in a fixed order."""

    def __init__(self, config: AugmentConfig) -> None:
        self.config = config

    @property
    def enabled(self) -> tuple[str, ...]:
        """Names of the augmentations with ``p > 0``, in application order."""
        return tuple(name for name in AUGMENTATIONS if self.config.op(name).p > 0)

    def __call__(self, x: Tensor, generator: Generator | None) -> Tensor:
        """One random view of every record of ``x`` ``(B, leads, T)``, on ``x``'s device.

        Always a new tensor (even with nothing enabled), so callers may modify it in place.
        """
        _check_batch(x)
        out = x
        for name in self.enabled:
            out = self.config.op(name).apply(out, generator, self.config.fs)
        return out.clone() if out is x else out

    def two_views(self, x: Tensor, generator: Generator | None) -> tuple[Tensor, Tensor]:
        """Two independent views (successive draws from ``generator``) for an SSL pair."""
        return self(x, generator), self(x, generator)

    def __repr__(self) -> str:
        return f"ECGAugment(fs={self.config.fs}, enabled={list(self.enabled)})"


def build_policy(fs: int, disabled: Iterable[str] = ()) -> ECGAugment:
    """The default policy at ``fs`` Hz with the augmentations named in ``disabled`` turned off.

    Names may use ``-`` or ``_`` (``time-warp`` or ``time_warp``); an unknown name is a
    :class:`ConfigError` listing the valid ones.
    """
    names = [str(n).strip().lower().replace("-", "_") for n in disabled]
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ConfigError(
            f"unknown augmentation {', '.join(repr(n) for n in unknown)}; "
            f"valid names: {', '.join(AUGMENTATIONS)}"
        )
    base = AugmentConfig(fs=fs)
    off = {name: dataclasses.replace(base.op(name), p=0.0) for name in set(names)}
    return ECGAugment(dataclasses.replace(base, **off))
