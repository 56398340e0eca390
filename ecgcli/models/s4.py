"""A diagonal state-space encoder (``s4``): stacked S4D layers in plain torch.

Gu, Gupta, Goel, Ré (2022), "On the parameterization and initialization of diagonal state
space models", NeurIPS, https://arxiv.org/abs/2206.11893 (S4D). After Gu, Goel, Ré (2022),
"Efficiently Modeling Long Sequences with Structured State Spaces" (S4), ICLR.

One S4D layer maps each of H channels through its own linear state-space model
``x'(t) = A x(t) + B u(t)``, ``y(t) = C x(t) + D u(t)`` with a diagonal complex ``A`` of N/2
states (``d_state`` = N; the other N/2 are the complex conjugates, which is why the kernel
below carries a factor 2 and stays real). Initialisation, S4D-Lin: ``A_n = -1/2 + i*pi*n``,
``B = 1``, ``C`` complex standard normal, a per-channel step ``Delta`` log-uniform in
``[dt_min, dt_max]`` = ``[1e-3, 1e-1]``. Zero-order hold gives ``A_bar = exp(Delta A)``,
``B_bar = (exp(Delta A) - 1) / A * B``, so the layer is a convolution with the kernel
``K_l = 2 Re(C B_bar A_bar^l)``, ``l = 0..L-1`` (a Vandermonde product, computed here in real
arithmetic so the graph exports to ONNX), applied by FFT (``rfft`` of length 2L, no wrap-around)
plus the skip ``D u``. ``A``'s real part is stored as ``log(-Re A)`` so it stays negative (a
stable, decaying system) whatever the optimiser does.

``bidirectional``: a second kernel (a second ``C``, sharing ``A`` and ``Delta``) reads the
sequence backwards, i.e. the samples strictly after each step; the two are summed, as in S4's
bidirectional mode. Unidirectional (the default) is causal, so masked modelling
refuses it (use ``s4_bidir``, the bidirectional one's registry name).

A block (pre-norm residual): ``x + Dropout(GLU(Conv1x1(Dropout(GELU(S4D(Norm(x)))))))``, the
1x1 convolution to 2H channels and the GLU being the gated output mixing the channels (S4D
mixes nothing across channels itself). Norm is LayerNorm over channels (``norm="layer"``) or
BatchNorm. The encoder: a ``Conv1d(in_ch, width, 1)`` input projection, ``depth`` blocks, a
final LayerNorm: ``(B, in_ch, T)`` -> ``(B, width, T)``, nothing strided, so the benchmark head's
max+mean pooling reads every step.

Length rule: the kernel is as long as the input, so any length computes, but fewer than
``MIN_SAMPLES`` = 16 samples (0.16 s at 100 Hz, less than a QRS complex) is refused as
a mistake with a :class:`ConfigError` (training already requires 64 samples or more).

Sizes. The ECG foundation-model benchmark's S4 (AI4HealthUOL's ``clinical_ts``, the library of
ecg-fm-benchmarking: ``S4PredictorConfig``) is model_dim 512, state_dim 64, 4 layers, dropout
0.2, post-norm LayerNorm, causal by default, with S4 (``s42``) layers rather than S4D; here that
is ``--width 512`` (depth 4, d_state 64 are the defaults). CPU cost per training step and per
PTB-XL epoch, one thread, fp32, is measured by ``benchmarks/s4_speed.py`` and recorded in
``results/s4_speed.json``: the default, width 64 x depth 4, costs less per step than
``resnet1d_wang`` (so a 50-epoch benchmark-recipe run fits the 2-core CPU as the CNN baselines
do) and keeps the published depth; the published width 512 is about 15x ``resnet1d_wang``, an
hour per epoch on one core: a GPU job.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ecgcli.errors import ConfigError
from ecgcli.models.base import Encoder

MIN_SAMPLES = 16
NORMS = ("layer", "batch")


def _direct_conv(u: torch.Tensor, k0: torch.Tensor, k1: torch.Tensor | None) -> torch.Tensor:
    """The same convolution as :func:`_fft_conv` as a depthwise ``conv1d`` (real ops only):
    used when exporting to ONNX, which has no complex tensors."""
    h, length = k0.shape
    if k1 is None:  # lags L-1..0; padded L-1 both sides, the first L outputs are the causal ones
        y = F.conv1d(u, k0.flip(-1).unsqueeze(1), padding=length - 1, groups=h)
        return y[..., :length]
    # lags L-1..0 from the forward kernel, then -1..-(L-1) from the backward one
    weight = torch.cat([k0.flip(-1), k1[:, : length - 1]], dim=-1)
    return F.conv1d(u, weight.unsqueeze(1), padding=length - 1, groups=h)


def _fft_conv(u: torch.Tensor, k0: torch.Tensor, k1: torch.Tensor | None) -> torch.Tensor:
    """``y_t = sum_l k0_l u_{t-l}`` (+ ``sum_j k1_{j-1} u_{t+j}`` backwards) by FFT of length 2L:
    the zero half keeps the circular convolution from wrapping; the backward kernel sits,
    reversed, in that half, where circular indices mean negative lags."""
    length = u.shape[-1]
    kernel = F.pad(k0, (0, length))
    if k1 is not None:
        kernel = kernel + F.pad(k1.flip(-1), (length, 0))
    n = 2 * length
    y = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(kernel, n=n), n=n)
    return y[..., :length]


class S4DLayer(nn.Module):
    """H independent diagonal SSMs: ``(B, H, L)`` -> ``(B, H, L)`` (see the module docstring)."""

    def __init__(
        self,
        channels: int,
        d_state: int = 64,
        bidirectional: bool = False,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
    ) -> None:
        super().__init__()
        half = d_state // 2
        self.channels, self.half, self.bidirectional = channels, half, bidirectional
        directions = 2 if bidirectional else 1
        log_dt = torch.rand(channels) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt)
        self.log_a_real = nn.Parameter(torch.full((channels, half), math.log(0.5)))
        self.a_imag = nn.Parameter(math.pi * torch.arange(half, dtype=torch.float32).repeat(channels, 1))
        # C ~ complex standard normal: real and imaginary parts each of variance 1/2
        self.c = nn.Parameter(torch.randn(directions, channels, half, 2) * math.sqrt(0.5))
        self.d = nn.Parameter(torch.randn(channels))

    def discrete(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Real and imaginary parts of ``Delta A`` and ``C B_bar`` (ZOH, ``B = 1``):
        ``(H, N/2)`` and ``(directions, H, N/2)``."""
        dt = self.log_dt.exp().unsqueeze(-1)
        a_re, a_im = -self.log_a_real.exp(), self.a_imag
        dta_re, dta_im = dt * a_re, dt * a_im
        mag = dta_re.exp()
        e_re, e_im = mag * dta_im.cos() - 1.0, mag * dta_im.sin()  # exp(Delta A) - 1
        den = a_re * a_re + a_im * a_im
        b_re, b_im = (e_re * a_re + e_im * a_im) / den, (e_im * a_re - e_re * a_im) / den  # / A
        c_re, c_im = self.c[..., 0], self.c[..., 1]
        return dta_re, dta_im, c_re * b_re - c_im * b_im, c_re * b_im + c_im * b_re

    def kernel(self, length: int) -> torch.Tensor:
        """``K_l = 2 Re(C B_bar exp(Delta A l))``: ``(directions, H, length)``."""
        dta_re, dta_im, cb_re, cb_im = self.discrete()
        steps = torch.arange(length, device=dta_re.device, dtype=dta_re.dtype)
        mag = (dta_re.unsqueeze(-1) * steps).exp()  # (H, N/2, L): the Vandermonde matrix
        phase = dta_im.unsqueeze(-1) * steps
        v_re, v_im = mag * phase.cos(), mag * phase.sin()
        return 2.0 * (torch.einsum("dhn,hnl->dhl", cb_re, v_re) - torch.einsum("dhn,hnl->dhl", cb_im, v_im))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        length = u.shape[-1]
        if torch.onnx.is_in_onnx_export():
            # the exported window is fixed: a constant length gives the kernel a known shape,
            # which ONNX's convolution needs (an export takes the model's one window length)
            k = self.kernel(int(length)).to(u.dtype)
            y = _direct_conv(u, k[0], k[1] if self.bidirectional else None)
        else:
            k = self.kernel(length).to(u.dtype)
            k1 = k[1] if self.bidirectional else None
            # FFTs in float32 even under autocast (half-precision FFTs need power-of-2 lengths)
            y = _fft_conv(u.float(), k[0].float(), None if k1 is None else k1.float()).to(u.dtype)
        return y + u * self.d.to(u.dtype).unsqueeze(-1)


class _ChannelNorm(nn.Module):
    """LayerNorm over the channels of ``(B, C, T)`` (normalises each time step)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class S4Block(nn.Module):
    """Pre-norm residual block: norm -> S4D -> GELU -> dropout -> 1x1 conv + GLU -> dropout."""

    def __init__(
        self,
        width: int,
        d_state: int,
        bidirectional: bool,
        dropout: float,
        norm: str,
        dt_min: float,
        dt_max: float,
    ) -> None:
        super().__init__()
        self.norm = _ChannelNorm(width) if norm == "layer" else nn.BatchNorm1d(width)
        self.ssm = S4DLayer(width, d_state, bidirectional, dt_min, dt_max)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Conv1d(width, 2 * width, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.drop(F.gelu(self.ssm(self.norm(x))))
        return x + self.drop(F.glu(self.out(z), dim=1))


class S4Encoder(Encoder):
    """Input projection -> ``depth`` S4D blocks -> LayerNorm: ``(B, in_ch, T)`` -> ``(B, width, T)``."""

    config_keys = (
        "in_ch",
        "width",
        "depth",
        "d_state",
        "bidirectional",
        "dropout",
        "norm",
        "dt_min",
        "dt_max",
    )

    def __init__(
        self,
        in_ch: int = 12,
        width: int = 64,
        depth: int = 4,
        d_state: int = 64,
        bidirectional: bool = False,
        dropout: float = 0.1,
        norm: str = "layer",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
    ) -> None:
        super().__init__()
        if min(in_ch, width, depth) < 1:
            raise ConfigError(f"s4 needs in_ch, width, depth >= 1, got {in_ch}, {width}, {depth}")
        if d_state < 2 or d_state % 2:
            raise ConfigError(f"s4 needs an even d_state >= 2 (N/2 complex-conjugate pairs), got {d_state}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"s4 dropout must be in [0, 1), got {dropout}")
        if norm not in NORMS:
            raise ConfigError(f"s4 norm must be one of {', '.join(NORMS)}, got {norm!r}")
        if not 0.0 < dt_min <= dt_max:
            raise ConfigError(f"s4 needs 0 < dt_min <= dt_max, got {dt_min}, {dt_max}")
        self.in_ch, self.width, self.depth, self.d_state = in_ch, width, depth, d_state
        self.bidirectional, self.dropout, self.norm = bool(bidirectional), dropout, norm
        self.dt_min, self.dt_max = dt_min, dt_max
        self.project = nn.Conv1d(in_ch, width, kernel_size=1)
        self.blocks = nn.Sequential(
            *(
                S4Block(width, d_state, self.bidirectional, dropout, norm, dt_min, dt_max)
                for _ in range(depth)
            )
        )
        self.final_norm = _ChannelNorm(width)
        self.out_dim = width

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] < MIN_SAMPLES:
            raise ConfigError(f"s4 needs at least {MIN_SAMPLES} samples per window, got {x.shape[-1]}")
        return self.final_norm(self.blocks(self.project(x)))


class BiS4Encoder(S4Encoder):
    """``s4_bidir``: :class:`S4Encoder` with a backward kernel in every layer (not causal, so CPC
    refuses it, as it refuses ``lstm_bidir``); the registry name makes it reachable from
    ``--encoder``, which sets no other constructor argument than ``--width``."""

    def __init__(
        self,
        in_ch: int = 12,
        width: int = 64,
        depth: int = 4,
        d_state: int = 64,
        bidirectional: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(in_ch, width, depth, d_state, bidirectional, **kwargs)
