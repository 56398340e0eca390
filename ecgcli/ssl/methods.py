"""The registry of self-supervised objectives: each is a name, how many views it takes, and
how to build its module around an encoder.

An objective module wraps any registry encoder and returns the scalar loss from ``forward``:
two-view methods (SimCLR, BYOL) take ``forward(v1, v2)``, two augmented views of the same
records; one-view methods (predictive coding, masked modelling) take ``forward(x)``, the
normalised records themselves. ``.encoder`` is what fine-tuning keeps. A module may define
``after_step(step, total_steps)`` (BYOL's target update) and a ``gather`` attribute, which
data-parallel training sets to the all-gather of every rank's rows (SimCLR's negatives), and a
``generator`` attribute, which pretraining sets each epoch to its seeded ``torch.Generator`` on
the training device (the random masks of masked modelling).

``refuse(encoder_name)`` says in one line why an encoder does not suit the method, or None;
``check(config)`` raises a one-line ConfigError for the method's own settings or for what
depends on more than the encoder's name (CPC: enough time steps at ``--signal-length``);
``ecg train ssl`` checks both before reading any data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ecgcli.errors import ConfigError


def _suits_every_encoder(encoder: str) -> str | None:
    return None


def _no_further_checks(cfg: Any) -> None:
    return None


@dataclass(frozen=True)
class SSLMethod:
    name: str
    views: int  # 2: two augmented views of each record; 1: the record itself
    build: Callable[[nn.Module, Any], nn.Module]  # (encoder, config) -> module
    summary: str
    refuse: Callable[[str], str | None] = _suits_every_encoder
    check: Callable[[Any], None] = _no_further_checks  # (config) -> None, or a one-line ConfigError


_METHODS: dict[str, SSLMethod] = {}


def register_ssl_method(method: SSLMethod) -> None:
    _METHODS[method.name] = method


def ssl_method_names() -> list[str]:
    return list(_METHODS)


def ssl_method(name: str) -> SSLMethod:
    if name not in _METHODS:
        raise ConfigError(f"unknown method {name!r} (choose {', '.join(_METHODS)})")
    return _METHODS[name]


def check_ssl_method(name: str, encoder: str) -> SSLMethod:
    """The method, or a one-line ConfigError when it is unknown or refuses ``encoder``."""
    method = ssl_method(name)
    reason = method.refuse(encoder)
    if reason:
        raise ConfigError(f"--method {name} does not suit --encoder {encoder}: {reason}")
    return method


def _simclr(encoder: nn.Module, cfg: Any) -> nn.Module:
    from ecgcli.ssl.simclr import SimCLR

    return SimCLR(encoder, encoder.out_dim, cfg.hidden_dim, cfg.projection_dim, cfg.temperature)


def _byol(encoder: nn.Module, cfg: Any) -> nn.Module:
    from ecgcli.ssl.byol import BYOL

    return BYOL(encoder, encoder.out_dim, cfg.hidden_dim, cfg.projection_dim, cfg.momentum_tau)


register_ssl_method(
    SSLMethod("simclr", 2, _simclr, "contrastive, negatives from the batch (Chen et al. 2020)")
)
register_ssl_method(SSLMethod("byol", 2, _byol, "predicts an EMA target, no negatives (Grill et al. 2020)"))


def _cpc(encoder: nn.Module, cfg: Any) -> nn.Module:
    from ecgcli.ssl.cpc import CPC

    return CPC(encoder, encoder.out_dim, cfg.cpc_steps, cfg.cpc_context, cfg.cpc_hidden)


def _cpc_refuse(encoder: str) -> str | None:
    from ecgcli.ssl.cpc import refuse_encoder

    return refuse_encoder(encoder)


def _cpc_check(cfg: Any) -> None:
    from ecgcli.ssl.cpc import check_cpc

    check_cpc(cfg)


register_ssl_method(
    SSLMethod(
        "cpc",
        1,
        _cpc,
        "predicts the record's own future latents, negatives from the batch (van den Oord et al. 2018)",
        _cpc_refuse,
        _cpc_check,
    )
)


def _masked(encoder: nn.Module, cfg: Any) -> nn.Module:
    from ecgcli.ssl.masked import Masked

    return Masked(encoder, cfg.signal_length, cfg.mask_ratio, cfg.mask_patch, cfg.mask_mode)


def _masked_refuses(encoder: str) -> str | None:
    # Every other registry encoder keeps a feature map aligned with time (T' = T / stride), which
    # the decoder maps back to samples; a one-way LSTM's step has seen nothing after itself.
    if encoder == "lstm":
        return (
            "a one-way LSTM's feature at a masked step has seen nothing after it, so filling a span "
            "is forecasting, not masked modelling (use lstm_bidir)"
        )
    if encoder == "s4":  # causal kernels: the same as a one-way LSTM
        return (
            "the causal S4 encoder's feature at a masked step has seen nothing after it, so filling a "
            "span is forecasting, not masked modelling (use s4_bidir)"
        )
    return None


register_ssl_method(
    SSLMethod("masked", 1, _masked, "reconstructs masked time spans (MAE, SimMIM 2022)", _masked_refuses)
)
