"""Size and cost of every registered encoder: parameters and forward FLOPs (``ecg models``).

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass of one
record: torch counts 2 FLOPs per multiply-add of convolutions and matrix products. It does not
see into the LSTM's fused CPU kernel, so we count its gate products the same way; attention
layers are counted on their unfused path (the fused one does the same products, unseen) and
their CPU attention kernel like the GPU's. The counter has no formula for FFTs (the S4 encoder
convolves by FFT), so a real FFT of n points is counted analytically as 2.5 n log2 n (half a
complex radix-2 FFT's 5 n log2 n); the complex products between the FFTs are not counted.
Nothing is counted for BatchNorm, activations and pooling, which are cheap beside them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ecgcli.models.classifier import ECGClassifier
from ecgcli.models.encoders import encoder_names

FLOPS_NOTE = (
    "counted by torch.utils.flop_counter.FlopCounterMode: 2 FLOPs per multiply-add of convolutions, "
    "matrix products, attention and LSTM gates; real FFTs (s4) as 2.5 n log2 n each; normalisation, "
    "activations and pooling not counted"
)


@dataclass(frozen=True)
class EncoderProfile:
    """One row of ``ecg models``."""

    name: str
    params: int  # encoder and a linear head
    flops: int  # forward pass of one record of ``samples`` steps, encoder and head
    out_dim: int
    feature_steps: int  # T' of the feature map for that record
    args: dict[str, Any]  # the default constructor arguments (``config()``)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rnn_layer_flops(input_shape: Any, w_ih_shape: Any, w_hh_shape: Any, *args: Any, **kwargs: Any) -> int:
    """One fused LSTM layer and direction (oneDNN's CPU kernel, which torch's counter misses):
    at every step the gates multiply the input by ``w_ih`` and the state by ``w_hh``."""
    steps = 1
    for n in input_shape[:-1]:
        steps *= n
    return 2 * steps * (w_ih_shape[0] * w_ih_shape[1] + w_hh_shape[0] * w_hh_shape[1])


def _cpu_attention_flops(q_shape: Any, k_shape: Any, v_shape: Any, *args: Any, **kwargs: Any) -> int:
    """Scaled dot-product attention's CPU kernel (which torch's counter misses): ``q k^T`` and
    ``softmax(.) v``, each ``B x heads x L x S x d`` multiply-adds."""
    b, h, lq, d = q_shape
    s, dv = k_shape[-2], v_shape[-1]
    return 2 * b * h * lq * s * d + 2 * b * h * lq * s * dv


def _real_fft_flops(n: int, transforms: int) -> int:
    """``transforms`` real FFTs of ``n`` points: 2.5 n log2 n each (half of a complex FFT)."""
    return int(2.5 * n * math.log2(max(n, 2)) * transforms)


def _fft_r2c_flops(input_shape: Any, dim: Any, *args: Any, **kwargs: Any) -> int:
    n = 1
    for d in dim:
        n *= input_shape[d]
    total = 1
    for size in input_shape:
        total *= size
    return _real_fft_flops(n, total // max(n, 1))


def _fft_c2r_flops(
    input_shape: Any, dim: Any, normalization: Any, last_dim_size: int, *args: Any, **kwargs: Any
) -> int:
    transforms = 1
    for i, size in enumerate(input_shape):
        if i not in {d % len(input_shape) for d in dim}:
            transforms *= size
    return _real_fft_flops(int(last_dim_size), transforms)


def count_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    """FLOPs of ``model(x)`` as torch counts them (no gradient, eval mode)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    custom = {
        torch.ops.aten.mkldnn_rnn_layer: _rnn_layer_flops,
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops,
        torch.ops.aten._fft_r2c: _fft_r2c_flops,
        torch.ops.aten._fft_c2r: _fft_c2r_flops,
    }
    counter = FlopCounterMode(display=False, custom_mapping=custom)
    # the fused inference kernel of attention layers hides their products from the counter
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        model.train(was_training)
    return int(counter.get_total_flops())


def profile_encoder(name: str, n_classes: int = 5, leads: int = 12, samples: int = 1000) -> EncoderProfile:
    """Build ``name`` at its defaults with a ``n_classes`` linear head and measure it."""
    model = ECGClassifier.build(name, n_classes, in_ch=leads)
    x = torch.zeros(1, leads, samples)  # counts depend on shapes only
    with torch.no_grad():
        steps = model.eval().encoder.forward_features(x).shape[-1]
    return EncoderProfile(
        name=name,
        params=sum(p.numel() for p in model.parameters()),
        flops=count_flops(model, x),
        out_dim=model.encoder.out_dim,
        feature_steps=int(steps),
        args=model.encoder.config(),
    )


def profile_encoders(n_classes: int = 5, leads: int = 12, samples: int = 1000) -> list[EncoderProfile]:
    """Every registered encoder, the default (``cnn1d``) first, then by name."""
    names = sorted(encoder_names(), key=lambda n: (n != "cnn1d", n))
    return [profile_encoder(n, n_classes, leads, samples) for n in names]
