"""Batched, seeded ECG augmentations for self-supervised views.

Every augmentation takes a whole batch ``x`` of shape ``(B, 12, T)`` in millivolts and returns
a new tensor of the same shape, dtype and device. Why batched: the reference study augmented
one record at a time in numpy/scipy, which cost about as much as a training step on CPU; here
each op is a handful of tensor operations over the batch, so it runs wherever the batch is (a
GPU included) and never leaves the device.

Conventions shared by every op:

- Randomness comes only from the ``generator`` argument (a ``torch.Generator`` on ``x``'s
  device): the same seed gives the same output, bit for bit, on the same device.
- Each sample is augmented independently with probability ``p`` (a per-sample Bernoulli
  mask); an unselected record comes out bit-for-bit unchanged. ``p == 0`` returns ``x``
  itself, with no computation and no random draws; ``p == 1`` skips the mask.
- Parameters are drawn per sample (and per lead where the docstring says so) from the stated
  ranges; times and frequencies are in seconds and Hz, converted with the sampling rate ``fs``.

:class:`ECGAugment` applies the enabled ops in the fixed order of :data:`AUGMENTATIONS`:

1. ``mixup`` and ``cutmix`` first, so the partner record is mixed in clean rather than
   already carrying its own artefacts;
2. ``time_warp`` and ``bandpass`` (physiology and acquisition front-end);
3. ``amplitude_scale`` and ``temporal_dropout`` (gain changes, lost samples);
4. ``baseline_wander``, ``channel_noise`` and ``jitter`` last, so the band-pass cannot remove
   the wander it is meant to be robust to and the linear fill of a dropout still gets noise.
   When both noises are enabled they are drawn as one Gaussian (same distribution, half the
   random numbers; see :func:`_gaussian_noise`).

Cost, for the record: random-number generation dominates on CPU (a ``torch.randn`` of
256 x 12 x 1000 takes about 8 ms on one core, longer than any other op), then the band-pass
FFT; everything else is one to three memory passes over the batch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
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


def _draw(x: Tensor, p: float, g: Generator | None) -> Tensor | None:
    """Which records to augment: a ``(B,)`` Bernoulli(p) mask, or ``None`` for all (p >= 1).

    Ops fold the mask into their parameters (scale 1, span empty, sigma 0, ...) wherever that
    leaves an unselected record *exactly* unchanged, so there is no extra select pass; the
    costlier ops (time warp, FFT band-pass, Gaussian noise) compute on the selected rows only.
    """
    if p >= 1.0:
        return None
    return torch.rand(x.shape[0], generator=g, device=x.device) < p


def _fold(take: Tensor | None, value: Tensor, neutral: float) -> Tensor:
    """``value`` for selected records, ``neutral`` (which leaves a record as is) for others."""
    if take is None:
        return value
    return torch.where(take.view(-1, *([1] * (value.ndim - 1))), value, neutral)


def _fresh(x: Tensor, p: float, fill: Callable[[Tensor], None]) -> Tensor:
    """The functional form of an in-place op: ``x`` itself when ``p <= 0``, else a copy of
    ``x`` modified by ``fill``."""
    _check_batch(x)
    if p <= 0:
        return x
    out = x.clone()
    fill(out)
    return out


def _selected(take: Tensor | None, batch: int, device: torch.device) -> Tensor:
    """Indices of the records ``take`` selects (all of them for ``None``)."""
    if take is None:
        return torch.arange(batch, device=device)
    return take.nonzero().squeeze(1)


def _update_rows(out: Tensor, take: Tensor | None, fn: Callable[[Tensor, Tensor | None], Tensor]) -> None:
    """``out[rows] = fn(out[rows], rows)`` in place (``rows`` is None for all records)."""
    if take is None:
        out.copy_(fn(out, None))
        return
    rows = take.nonzero().squeeze(1)
    if rows.numel():
        out.index_copy_(0, rows, fn(out.index_select(0, rows), rows).to(out.dtype))


def _span_index(start: Tensor, span: Tensor) -> Tensor:
    """``(n, max span)`` time indices of each record's span; positions past a shorter span
    repeat its last sample, so writing there rewrites that sample with its own value."""
    width = int(span.max().item())
    idx = start.unsqueeze(1) + torch.arange(width, device=start.device, dtype=start.dtype)
    return torch.minimum(idx, (start + span - 1).unsqueeze(1)).long()


def _pick(t: Tensor, rows: Tensor | None) -> Tensor:
    return t if rows is None else t.index_select(0, rows)


def _partner(batch: int, g: Generator | None, device: torch.device) -> Tensor:
    """Index of another sample for each sample: a random single cycle, so never itself (B >= 2).

    A plain random permutation leaves about one sample per batch mixed with itself, which
    makes mixup/cutmix a silent no-op for it; following the cycle of a permutation avoids that.
    """
    perm = torch.randperm(batch, generator=g, device=device)
    partner = torch.empty_like(perm)
    partner[perm] = perm.roll(-1)
    return partner


def _reflect(pos: Tensor, length: int) -> Tensor:
    """Mirror positions into ``[0, length - 1]`` about the end samples (``np.pad`` "reflect")."""
    last = length - 1
    return last - (torch.remainder(pos, 2 * last) - last).abs()


def _reflect_pad(x: Tensor, left: int, right: int) -> Tensor:
    """``x`` mirrored about its end samples by ``left``/``right`` samples along time.

    Slices and flips (one copy each): ``index_select``/``F.pad(mode="reflect")`` along the
    last axis are several times slower on CPU. Pads longer than the record (tiny ``T`` only)
    reflect repeatedly through an index.
    """
    length = x.shape[-1]
    if max(left, right) <= length - 1:
        parts = [x[..., 1 : left + 1].flip(-1), x, x[..., length - 1 - right : length - 1].flip(-1)]
        return torch.cat(parts, dim=-1)
    source = _reflect(torch.arange(-left, length + right, device=x.device), length)
    return x[..., source]


def _span(fraction: Range, x: Tensor, g: Generator | None, margin: int = 0) -> tuple[Tensor, Tensor]:
    """Per record, a contiguous span of ``fraction`` of the window, at least ``margin``
    samples from either end: ``(start (B,), span (B,))`` in samples (float, whole numbers)."""
    batch, _, length = x.shape
    span = (_uniform(fraction, (batch,), g, x) * length).round().clamp_(1, length - 2 * margin)
    n_starts = length - 2 * margin - span + 1
    start = margin + (_uniform((0.0, 1.0), (batch,), g, x) * n_starts).floor()
    return torch.minimum(start, margin + n_starts - 1), span


def _lead_std(x: Tensor) -> Tensor:
    """Per record and lead standard deviation ``(B, C, 1)`` (unbiased), from the sum and the
    sum of squares: two reads of ``x`` and no temporary copy. ECG amplitudes (a few mV around
    a mean of at most a few mV) lose nothing to the cancellation in float32."""
    n = x.shape[-1]
    total = x.sum(dim=-1, keepdim=True)
    squares = torch.linalg.vecdot(x, x).unsqueeze(-1)
    var = (squares - total * total / n) / max(n - 1, 1)
    return var.clamp_min(0.0).sqrt()


def _check_p(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"{name}: probability p must be in [0, 1], got {p}")


def _check_range(name: str, what: str, bounds: Range, lo: float, hi: float) -> None:
    a, b = bounds
    if not (lo <= a <= b <= hi):
        raise ConfigError(f"{name}: {what} must satisfy {lo} <= low <= high <= {hi}, got {bounds}")


# --------------------------------------------------------------------------------------------
# the augmentations (functional form)


def time_warp(x: Tensor, generator: Generator | None, *, p: float = 0.5, max_change: float = 0.05) -> Tensor:
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
    return _fresh(x, p, lambda out: _time_warp_(out, generator, p=p, max_change=max_change))


def _time_warp_(x: Tensor, generator: Generator | None, *, p: float, max_change: float) -> None:
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


def _beta(alpha: float, shape: tuple[int, ...], g: Generator | None, x: Tensor) -> Tensor:
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
    return _fresh(x, p, lambda out: _mixup_(out, generator, p=p, alpha=alpha))


def _mixup_(x: Tensor, generator: Generator | None, *, p: float, alpha: float) -> None:
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


def _fft_size(n: int) -> int:
    """Smallest ``2^k``, ``3 * 2^k`` or ``5 * 2^k`` >= n: MKL/cuFFT are several times faster
    there than at sizes with a large prime factor (2 T - 2 = 9998 = 2 x 4999 at 500 Hz)."""
    best = 1 << max(n - 1, 1).bit_length()
    for odd in (3, 5):
        k = max(math.ceil(math.log2(n / odd)), 0)
        while odd << k < n:
            k += 1
        best = min(best, odd << k)
    return best


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
    (``rfft``/``irfft``) on the record mirror-extended about its end samples (``np.pad``
    "reflect") by about a second on each side, to a fast FFT size (1280 at 100 Hz). The mirror
    is continuous at the record's edges, so the circular FFT does not ring there (even a
    Nyquist-rate alternation continues unbroken and is removed entirely); the one seam of the
    extension lies over a second from the record, where the filter's response has decayed.
    """
    return _fresh(
        x,
        p,
        lambda out: _bandpass_(
            out, generator, fs=fs, p=p, low=low, high=high, order=order, max_high_fraction=max_high_fraction
        ),
    )


def _bandpass_(
    x: Tensor,
    generator: Generator | None,
    *,
    fs: float,
    p: float,
    low: Range,
    high: Range,
    order: int,
    max_high_fraction: float,
) -> None:
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


def cutmix(x: Tensor, generator: Generator | None, *, p: float = 0.3, fraction: Range = (0.1, 0.3)) -> Tensor:
    """Segment CutMix (Yun et al., 2019, along time): a contiguous span replaced by a partner's.

    The span covers ``fraction`` of the window (drawn per record), at a uniform position, and
    takes the *same* time span of another record of the batch, so lead relations stay intact
    inside the span and the anchor keeps at least 70% of its own signal with the defaults.
    """
    return _fresh(x, p, lambda out: _cutmix_(out, generator, p=p, fraction=fraction))


def _cutmix_(x: Tensor, generator: Generator | None, *, p: float, fraction: Range) -> None:
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
    the movement through a different electrode geometry. Computed as
    ``A cos(phi) sin(2 pi f t) + A sin(phi) cos(2 pi f t)``: the sines are per record, not per
    lead, which saves 11 of 12 transcendental evaluations.
    """
    return _fresh(
        x, p, lambda out: _baseline_wander_(out, generator, fs=fs, p=p, freq=freq, amplitude=amplitude)
    )


def _baseline_wander_(
    x: Tensor, generator: Generator | None, *, fs: float, p: float, freq: Range, amplitude: Range
) -> None:
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


def _gaussian_noise_(
    x: Tensor,
    g: Generator | None,
    *,
    p_relative: float,
    relative_std: Range,
    p_absolute: float,
    sigma: float,
) -> None:
    """Add lead-relative and absolute white Gaussian noise, each with its own probability.

    Both are independent zero-mean Gaussians, so their sum is one Gaussian of variance
    ``(r std)^2 + sigma^2``: one normal draw per sample serves both. On CPU drawing normals is
    the single most expensive step of the policy, so this halves it when both are enabled.
    """
    batch, leads, length = x.shape
    take_rel = _draw(x, p_relative, g) if p_relative > 0 else None
    take_abs = _draw(x, p_absolute, g) if p_absolute > 0 else None
    rel = _uniform(relative_std, (batch, leads, 1), g, x) if p_relative > 0 else None
    if p_relative <= 0:
        take = take_abs
    elif p_absolute <= 0:
        take = take_rel
    else:
        take = None if take_rel is None or take_abs is None else take_rel | take_abs
    rows = _selected(take, batch, x.device)
    if not rows.numel():
        return
    xs = x.index_select(0, rows) if take is not None else x
    var = torch.zeros(len(rows), leads, 1, device=x.device, dtype=_work_dtype(x))
    if rel is not None:
        sel = None if take_rel is None else take_rel[rows]
        # every other sample estimates a lead's std as well as all of them, at half the reads
        var += _fold(sel, (rel[rows] * _lead_std(xs[..., ::2])).square(), 0.0)
    if p_absolute > 0:
        sel = None if take_abs is None else take_abs[rows]
        var += _fold(sel, var.new_full((len(rows), 1, 1), sigma**2), 0.0)
    noise, sign = _white_noise(torch.Size((len(rows), leads, length)), g, x.device, x.dtype)
    noise.mul_((var.sqrt() * sign).to(x.dtype))
    if take is None:
        x.add_(noise)
    else:
        x.index_add_(0, rows, noise)


def _white_noise(
    shape: torch.Size, g: Generator | None, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """Unit Gaussian white noise of ``shape`` ``(B, C, T)`` at about a third of ``randn``'s
    cost, and a random sign per ``(B, C)`` row to multiply into the noise's scale.

    Random-number generation is the policy's most expensive step on CPU (one core, about
    3 ns a number), so each row of noise is read as a random window of a bank an eighth as
    tall and two rows long: every sample is still N(0, 1) and white, and the random sign
    (free, folded into the scale) keeps two rows sharing a bank row from adding up
    coherently. For a noise augmentation of 0.5-2% of a lead's amplitude that is as good as
    fresh noise; small batches just call ``randn``.
    """
    batch, leads, length = shape
    rows = batch * leads
    sign = torch.randint(0, 2, (batch, leads, 1), generator=g, device=device).mul_(2).sub_(1)
    if rows < 64:
        return torch.randn(shape, generator=g, device=device, dtype=dtype), sign
    bank_rows, bank_len = rows // 8, 2 * length
    bank = torch.randn(bank_rows, bank_len, generator=g, device=device, dtype=dtype)
    pick = torch.randint(bank_rows, (rows,), generator=g, device=device)
    start = torch.randint(bank_len - length + 1, (rows,), generator=g, device=device)
    return bank.unfold(1, length, 1)[pick, start].view(shape), sign


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
    return _fresh(
        x,
        p,
        lambda out: _gaussian_noise_(
            out, generator, p_relative=p, relative_std=relative_std, p_absolute=0.0, sigma=0.0
        ),
    )


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
    return _fresh(x, p, lambda out: _temporal_dropout_(out, generator, p=p, fraction=fraction))


def _temporal_dropout_(x: Tensor, generator: Generator | None, *, p: float, fraction: Range) -> None:
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


def jitter(x: Tensor, generator: Generator | None, *, p: float = 0.5, sigma: float = 0.01) -> Tensor:
    """Weak white noise: add Gaussian noise of ``sigma`` mV (0.01 mV, about the ADC's 1 uV
    resolution times ten), independent of the lead's amplitude."""
    return _fresh(
        x,
        p,
        lambda out: _gaussian_noise_(
            out, generator, p_relative=0.0, relative_std=(0.0, 0.0), p_absolute=p, sigma=sigma
        ),
    )


def amplitude_scale(
    x: Tensor, generator: Generator | None, *, p: float = 0.5, scale: Range = (0.9, 1.1)
) -> Tensor:
    """Gain change: multiply the record by one factor from ``scale``, the same for all leads,
    so inter-lead relations (Einthoven's law, axis) are preserved."""
    return _fresh(x, p, lambda out: _amplitude_scale_(out, generator, p=p, scale=scale))


def _amplitude_scale_(x: Tensor, generator: Generator | None, *, p: float, scale: Range) -> None:
    if p <= 0:
        return
    take = _draw(x, p, generator)
    x.mul_(_fold(take, _uniform(scale, (x.shape[0], 1, 1), generator, x), 1.0).to(x.dtype))


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
        """A new tensor: ``x`` with this augmentation applied (``x`` itself when ``p == 0``)."""
        return _fresh(x, self.p, lambda out: self.apply_(out, generator, fs))

    def apply_(self, x: Tensor, generator: Generator | None, fs: float) -> None:
        """Apply in place to a batch the caller owns (what :class:`ECGAugment` does)."""
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

    def apply_(self, x: Tensor, generator: Generator | None, fs: float) -> None:
        _time_warp_(x, generator, p=self.p, max_change=self.max_change)


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

    def apply_(self, x: Tensor, generator: Generator | None, fs: float) -> None:
        _mixup_(x, generator, p=self.p, alpha=self.alpha)


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
            raise ConfigError(f"bandpass: max_high_fraction must be in (0, 1), got {self.max_high_fraction}")

    def apply_(self, x: Tensor, generator: Generator | None, fs: float) -> None:
        _bandpass_(x, generator, fs=fs, p=self.p, **self.params())


@dataclass(frozen=True)
class CutMix(_Op):
    """See :func:`cutmix`."""

    name: ClassVar[str] = "cutmix"
    p: float = 0.3
    fraction: Range = (0.1, 0.3)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range(self.name, "fraction", self.fraction, 0.0, 1.0)

    def apply_(self, x: Tensor, generator: Generator | None, fs: float) -> None:
        _cutmix_(x, generator, p=self.p, fraction=self.fraction)


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

    def apply_(self, x: Tensor, generator: Generator | None, fs: float) -> None:
        _baseline_wander_(x, generator, fs=fs, p=self.p, **self.params())


@dataclass(frozen=True)
class ChannelNoise(_Op):
    """See :func:`channel_noise`."""

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
    """See :func:`temporal_dropout`."""

    name: ClassVar[str] = "temporal_dropout"
    p: float = 0.3
    fraction: Range = (0.05, 0.2)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range(self.name, "fraction", self.fraction, 0.0, 1.0)

    def apply_(self, x: Tensor, generator: Generator | None, fs: float) -> None:
        _temporal_dropout_(x, generator, p=self.p, fraction=self.fraction)


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

    def apply_(self, x: Tensor, generator: Generator | None, fs: float) -> None:
        _gaussian_noise_(
            x, generator, p_relative=0.0, relative_std=(0.0, 0.0), p_absolute=self.p, sigma=self.sigma
        )


@dataclass(frozen=True)
class AmplitudeScale(_Op):
    """See :func:`amplitude_scale`."""

    name: ClassVar[str] = "amplitude_scale"
    p: float = 0.5
    scale: Range = (0.9, 1.1)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_range(self.name, "scale", self.scale, 0.0, math.inf)

    def apply_(self, x: Tensor, generator: Generator | None, fs: float) -> None:
        _amplitude_scale_(x, generator, p=self.p, scale=self.scale)


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
                    f"{name}: settings must be a mapping with keys from {', '.join(fields)}, got {entry!r}"
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
        cfg, enabled = self.config, self.enabled
        fuse_noise = "channel_noise" in enabled and "jitter" in enabled
        out = x.clone()  # the one copy: every augmentation then works in place on it
        for name in enabled:
            if fuse_noise and name == "channel_noise":
                _gaussian_noise_(
                    out,
                    generator,
                    p_relative=cfg.channel_noise.p,
                    relative_std=cfg.channel_noise.relative_std,
                    p_absolute=cfg.jitter.p,
                    sigma=cfg.jitter.sigma,
                )
            elif not (fuse_noise and name == "jitter"):  # jitter was drawn with channel_noise
                cfg.op(name).apply_(out, generator, cfg.fs)
        return out

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
