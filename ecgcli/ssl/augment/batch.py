"""Tensor building blocks shared by the augmentations: per-record random draws and masks,
spans, mirror padding, Butterworth gains, and the cheap white-noise bank.

Every function works on a whole batch ``(B, leads, T)`` at once; randomness comes only from
the ``generator`` passed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Generator, Tensor

from ecgcli.errors import ConfigError

Range = tuple[float, float]


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


def _beta(alpha: float, shape: tuple[int, ...], g: Generator | None, x: Tensor) -> Tensor:
    """Beta(alpha, alpha) from two Gamma draws (torch.distributions.Beta takes no generator)."""
    conc = torch.full(shape, alpha, device=x.device, dtype=_work_dtype(x))
    a = torch._standard_gamma(conc, generator=g)
    b = torch._standard_gamma(conc, generator=g)
    total = a + b
    return torch.where(total > 0, a / total.clamp_min(torch.finfo(total.dtype).tiny), 1.0)


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
