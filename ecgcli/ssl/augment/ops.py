"""The augmentations: one frozen dataclass each, holding its probability and parameters,
their checks, and the batched in-place kernel (``apply_``); ``apply`` is the functional form
(a new tensor, ``x`` itself when ``p == 0``). See the package docstring for the conventions.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Generator, Tensor

from ecgcli.errors import ConfigError
from ecgcli.ssl.augment.batch import (
    Range,
    _beta,
    _butterworth_gain,
    _check_p,
    _check_range,
    _draw,
    _fft_size,
    _fold,
    _fresh,
    _gaussian_noise_,
    _partner,
    _pick,
    _reflect,
    _reflect_pad,
    _selected,
    _span,
    _span_index,
    _uniform,
    _update_rows,
)

#: Augmentation names, in the order :class:`~ecgcli.ssl.augment.ECGAugment` applies them.
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
        """A new tensor: ``x`` with this augmentation applied (``x`` itself when ``p == 0``)."""
        return _fresh(x, self.p, lambda out: self.apply_(out, generator, fs))

    def apply_(self, x: Tensor, generator: Generator | None, fs: float) -> None:
        """Apply in place to a batch the caller owns (what :class:`ECGAugment` does)."""
        raise NotImplementedError


@dataclass(frozen=True)
class TimeWarp(_Op):
    """Heart-rate change: resample each record in time by its own factor in ``1 +- max_change``.

    Output sample ``t`` reads the input at ``c + s (t - c)`` (``c`` the window centre, linear
    interpolation), so every frequency, the heart rate included, is multiplied by ``s``. The
    length stays ``T``: a slowed record (``s < 1``) is cropped symmetrically, a sped-up one
    reads up to ``max_change / 2`` of the window past each end, which is filled by mirror
    reflection (continuous, unlike edge padding, which would draw a flat line).

    Interpolation is one ``F.grid_sample`` call (one pass, about twice as fast on CPU as two
    ``gather``s and a ``lerp``); positions go through its normalised grid, which costs about
    1e-4 of a sample in float32, far below anything a 5% warp resolves.
    """

    name: ClassVar[str] = "time_warp"
    p: float = 0.5
    max_change: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.max_change < 0.5:
            raise ConfigError(f"time_warp: max_change must be in [0, 0.5), got {self.max_change}")

    def apply_(self, x: Tensor, generator: Generator | None, fs: float) -> None:
        p, max_change = self.p, self.max_change
        batch, _, length = x.shape
        if p <= 0 or length < 2:
            return
        take = _draw(x, p, generator)
        s = _uniform((1.0 - max_change, 1.0 + max_change), (batch, 1), generator, x)
        t = torch.arange(length, device=x.device, dtype=s.dtype)
        centre = (length - 1) / 2

        def warp(xs: Tensor, rows: Tensor | None) -> Tensor:
            pos = _reflect(centre + (t - centre) * _pick(s, rows), length)  # (b, T) in [0, T-1]
            grid_x = pos * (2.0 / (length - 1)) - 1.0  # align_corners: -1 and 1 are the end samples
            grid = torch.stack([grid_x, torch.zeros_like(grid_x)], dim=-1).unsqueeze(1)
            out = F.grid_sample(
                xs.unsqueeze(2),
                grid.to(xs.dtype),
                mode="bilinear",
                padding_mode="border",
                align_corners=True,
            )
            return out.squeeze(2)

        _update_rows(x, take, warp)


@dataclass(frozen=True)
class Mixup(_Op):
    """ECG-aware mixup (Zhang et al., 2018): ``lam * x + (1 - lam) * x[partner]``.

    ``lam ~ Beta(alpha, alpha)`` per record, then ``lam = max(lam, 1 - lam)`` so the anchor
    always contributes at least half: a view must stay a view *of its own record*, otherwise
    the SSL positive pair would be two records blended half and half, and the two views of one
    record could each be dominated by a different stranger. The partner is another record of
    the batch (never itself when ``B >= 2``).
    """

    name: ClassVar[str] = "mixup"
    p: float = 0.3
    alpha: float = 0.4

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.alpha > 0:
            raise ConfigError(f"mixup: alpha must be > 0, got {self.alpha}")

    def apply_(self, x: Tensor, generator: Generator | None, fs: float) -> None:
        p, alpha = self.p, self.alpha
        if p <= 0:
            return
        batch = x.shape[0]
        take = _draw(x, p, generator)
        lam = _beta(alpha, (batch, 1, 1), generator, x)
        lam = torch.maximum(lam, 1.0 - lam)
        partner = _partner(batch, generator, x.device)
        rows = _selected(take, batch, x.device)
        if rows.numel():
            mixed = x.index_select(0, rows)  # lam * x + (1 - lam) * partner, selected rows only
            mixed.lerp_(x.index_select(0, partner.index_select(0, rows)), (1.0 - lam[rows]).to(x.dtype))
            x.index_copy_(0, rows, mixed)


@dataclass(frozen=True)
class Bandpass(_Op):
    """Random front-end filter: per-record low cut in ``low`` Hz and high cut in ``high`` Hz.

    The high-cut range is first clipped to ``max_high_fraction * fs / 2`` (45 Hz at 100 Hz,
    where the default 40-60 Hz becomes 40-45 Hz), so the pass band always ends strictly below
    Nyquist; the 500 Hz records keep the full range. Filtering is done in the frequency domain
    (``rfft``/``irfft``) on the record mirror-extended about its end samples (``np.pad``
    "reflect") by about a second on each side, to a fast FFT size (1280 at 100 Hz). The mirror
    is continuous at the record's edges, so the circular FFT does not ring there (even a
    Nyquist-rate alternation continues unbroken and is removed entirely); the one seam of the
    extension lies over a second from the record, where the filter's response has decayed.
    """

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
            raise ConfigError(f"bandpass: max_high_fraction must be in (0, 1), got {self.max_high_fraction}")

    def apply_(self, x: Tensor, generator: Generator | None, fs: float) -> None:
        p, low, high, order, max_high_fraction = (
            self.p,
            self.low,
            self.high,
            self.order,
            self.max_high_fraction,
        )
        batch, _, length = x.shape
        if p <= 0 or length < 2:
            return
        nyquist = fs / 2
        cap = max_high_fraction * nyquist
        if low[1] >= min(high[0], cap):
            raise ConfigError(
                f"bandpass: low cut up to {low[1]} Hz does not lie below the high cut "
                f"({min(high[0], cap):g} Hz at fs={fs:g})"
            )
        take = _draw(x, p, generator)
        high_range = (min(high[0], cap), min(high[1], cap))
        # cut-offs in float64: tan() near Nyquist is ill-conditioned in float32
        lo_f = _uniform(low, (batch, 1), generator, x).double()
        hi_f = _uniform(high_range, (batch, 1), generator, x).double()
        # about a second of mirror on each side: the band-pass's impulse response (0.5 Hz high cut,
        # order 2, both directions) has decayed to a few percent there, so the circular seam of
        # the FFT cannot reach the record; padding a whole record length costs 1.6x the FFT time
        n = _fft_size(length + 2 * min(length - 1, max(2, round(fs))))
        left = (n - length) // 2
        freqs = torch.fft.rfftfreq(n, d=1.0 / fs, device=x.device, dtype=torch.float64)
        work = torch.promote_types(x.dtype, torch.float32)

        def filt(xs: Tensor, rows: Tensor | None) -> Tensor:
            gain = _butterworth_gain(freqs, _pick(lo_f, rows), _pick(hi_f, rows), fs, order)
            spec = torch.fft.rfft(_reflect_pad(xs.to(work), left, n - length - left), dim=-1)
            spec.mul_(gain.to(work).unsqueeze(1))
            return torch.fft.irfft(spec, n=n, dim=-1)[..., left : left + length]

        _update_rows(x, take, filt)


@dataclass(frozen=True)
class CutMix(_Op):
    """Segment CutMix (Yun et al., 2019, along time): a contiguous span replaced by a partner's.

    The span covers ``fraction`` of the window (drawn per record), at a uniform position, and
    takes the *same* time span of another record of the batch, so lead relations stay intact
    inside the span and the anchor keeps at least 70% of its own signal with the defaults.
    """

    name: ClassVar[str] = "cutmix"
    p: float = 0.3
    fraction: Range = (0.1, 0.3)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range(self.name, "fraction", self.fraction, 0.0, 1.0)

    def apply_(self, x: Tensor, generator: Generator | None, fs: float) -> None:
        p, fraction = self.p, self.fraction
        if p <= 0:
            return
        batch, leads, _ = x.shape
        take = _draw(x, p, generator)
        start, span = _span(fraction, x, generator)
        partner = _partner(batch, generator, x.device)
        rows = _selected(take, batch, x.device)
        if not rows.numel():
            return
        t = _span_index(start[rows], span[rows])[:, None, :]  # only the spans are read and written
        c = torch.arange(leads, device=x.device)[None, :, None]
        x[rows[:, None, None], c, t] = x[partner[rows][:, None, None], c, t]


@dataclass(frozen=True)
class BaselineWander(_Op):
    """Motion/respiration artefact: add ``A sin(2 pi f t + phi)``.

    One frequency ``f`` (Hz) per record, since breathing or movement moves the whole body at
    once; amplitude ``A`` (mV) and phase ``phi`` per record *and lead*, since each lead sees
    the movement through a different electrode geometry. Computed as
    ``A cos(phi) sin(2 pi f t) + A sin(phi) cos(2 pi f t)``: the sines are per record, not per
    lead, which saves 11 of 12 transcendental evaluations.
    """

    name: ClassVar[str] = "baseline_wander"
    p: float = 0.5
    freq: Range = (0.5, 2.0)
    amplitude: Range = (0.01, 0.05)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range(self.name, "frequency (Hz)", self.freq, 0.0, math.inf)
        _check_range(self.name, "amplitude (mV)", self.amplitude, 0.0, math.inf)

    def apply_(self, x: Tensor, generator: Generator | None, fs: float) -> None:
        p, freq, amplitude = self.p, self.freq, self.amplitude
        if p <= 0:
            return
        batch, leads, length = x.shape
        take = _draw(x, p, generator)
        f = _uniform(freq, (batch, 1, 1), generator, x)
        amp = _fold(take, _uniform(amplitude, (batch, leads, 1), generator, x), 0.0)
        phase = _uniform((0.0, 2 * math.pi), (batch, leads, 1), generator, x)
        angle = 2 * math.pi * f * (torch.arange(length, device=x.device, dtype=f.dtype) / fs)
        x.addcmul_((amp * phase.cos()).to(x.dtype), angle.sin().to(x.dtype))
        x.addcmul_((amp * phase.sin()).to(x.dtype), angle.cos().to(x.dtype))


@dataclass(frozen=True)
class ChannelNoise(_Op):
    """Electrode noise scaled to each lead: Gaussian with ``sigma = r * std(lead)``.

    ``r`` is drawn per record and lead from ``relative_std`` (0.5-2% by default), so a
    low-voltage lead gets proportionally little noise instead of being drowned by a fixed
    sigma; a flat lead stays flat.
    """

    name: ClassVar[str] = "channel_noise"
    p: float = 0.5
    relative_std: Range = (0.005, 0.02)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range(self.name, "relative_std", self.relative_std, 0.0, math.inf)

    def apply_(self, x: Tensor, generator: Generator | None, fs: float) -> None:
        _gaussian_noise_(
            x, generator, p_relative=self.p, relative_std=self.relative_std, p_absolute=0.0, sigma=0.0
        )


@dataclass(frozen=True)
class TemporalDropout(_Op):
    """Lost samples: one contiguous block (``fraction`` of the window) linearly interpolated.

    The block never touches the window edges, so it always has a kept sample on each side;
    every lead of the block is replaced by the straight line between those two samples, the
    way a recorder bridges a short signal dropout. Zero-filling would instead plant an
    artificial step that an encoder can learn to spot.
    """

    name: ClassVar[str] = "temporal_dropout"
    p: float = 0.3
    fraction: Range = (0.05, 0.2)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range(self.name, "fraction", self.fraction, 0.0, 1.0)

    def apply_(self, x: Tensor, generator: Generator | None, fs: float) -> None:
        p, fraction = self.p, self.fraction
        batch, leads, length = x.shape
        if p <= 0 or length < 3:
            return
        take = _draw(x, p, generator)
        start, span = _span(fraction, x, generator, margin=1)
        rows = _selected(take, batch, x.device)
        if not rows.numel():
            return
        start, span = start[rows], span[rows]
        left, right = start - 1, start + span  # the kept neighbours
        t = _span_index(start, span)  # (n, width): only the spans are computed and written
        w = ((t - left.unsqueeze(1)) / (right - left).unsqueeze(1)).to(x.dtype).unsqueeze(1)  # (n, 1, width)
        c = torch.arange(leads, device=x.device)
        x_left = x[rows[:, None], c[None, :], left.long()[:, None]].unsqueeze(-1)  # (n, C, 1)
        x_right = x[rows[:, None], c[None, :], right.long()[:, None]].unsqueeze(-1)
        x[rows[:, None, None], c[None, :, None], t[:, None, :]] = torch.lerp(x_left, x_right, w)


@dataclass(frozen=True)
class Jitter(_Op):
    """Weak white noise: add Gaussian noise of ``sigma`` mV (0.01 mV, about the ADC's 1 uV
    resolution times ten), independent of the lead's amplitude.
    """

    name: ClassVar[str] = "jitter"
    p: float = 0.5
    sigma: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sigma < 0:
            raise ConfigError(f"jitter: sigma must be >= 0 mV, got {self.sigma}")

    def apply_(self, x: Tensor, generator: Generator | None, fs: float) -> None:
        _gaussian_noise_(
            x, generator, p_relative=0.0, relative_std=(0.0, 0.0), p_absolute=self.p, sigma=self.sigma
        )


@dataclass(frozen=True)
class AmplitudeScale(_Op):
    """Gain change: multiply the record by one factor from ``scale``, the same for all leads,
    so inter-lead relations (Einthoven's law, axis) are preserved.
    """

    name: ClassVar[str] = "amplitude_scale"
    p: float = 0.5
    scale: Range = (0.9, 1.1)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range(self.name, "scale", self.scale, 0.0, math.inf)

    def apply_(self, x: Tensor, generator: Generator | None, fs: float) -> None:
        p, scale = self.p, self.scale
        if p <= 0:
            return
        take = _draw(x, p, generator)
        x.mul_(_fold(take, _uniform(scale, (x.shape[0], 1, 1), generator, x), 1.0).to(x.dtype))


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
