"""CPC: contrastive predictive coding, self-supervision by predicting the record's own future.

van den Oord, Li, Vinyals (2018), "Representation Learning with Contrastive Predictive
Coding", https://arxiv.org/abs/1807.03748. Applied to 12-lead ECG by Mehari & Strodthoff
(2022), "Self-supervised representation learning from 12-lead ECG data", Computers in
Biology and Medicine 141, 105114, https://arxiv.org/abs/2103.12676.

The paper's three parts, on a registry encoder:

- ``g_enc``: the encoder's :meth:`forward_features`, with all 12 leads as the input channels
  of one strided convolutional network, gives ``z_t`` of shape ``(B, C, T')``, one latent per
  ``T/T'`` samples (8 for ``cnn1d``: 80 ms at 100 Hz). Leads are not encoded separately: the
  fine-tuned encoder sees them together, so pretraining does too.
- ``g_ar``: a one-layer GRU (the paper's) or LSTM (Mehari & Strodthoff's choice) over
  ``z_0..z_t`` gives the context ``c_t``; it sees no latent after ``t``.
- For each of ``K`` future steps ``k = 1..K`` a linear map ``W_k`` predicts ``z_{t+k}`` from
  ``c_t`` (the paper's log-bilinear score ``f_k = exp(z_{t+k}^T W_k c_t)``); all ``K`` maps
  are one ``Linear(H, K*C)``.

InfoNCE (the paper's Eq. 4): for each record ``b``, context step ``t`` and offset ``k``, the
positive is the true ``z_{t+k}`` of record ``b``; the negatives are the latents at the *same*
step ``t+k`` of every other record in the batch (of every process under data-parallel
training, through ``gather``). Other time steps of the same record are deliberately *not*
negatives: an ECG is quasi-periodic, so the latent one heartbeat later is nearly the positive
itself, and scoring it as a negative would punish the encoder for recognising the rhythm.
Only context steps ``t`` with all ``K`` futures inside the window are used (``T' - K`` of
them), so every ``(t, k)`` pair is computed by one batched matrix product, with no loop over
records, steps or offsets.

Like the paper, CPC needs no augmentation: ``ecg train ssl`` gives it the normalised crop.
Only ``.encoder`` is kept for fine-tuning; the context network and predictors are discarded.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ecgcli.errors import ConfigError
from ecgcli.ssl.simclr import Gather

CONTEXTS = ("gru", "lstm")


def cpc_scores(pred: Tensor, keys: Tensor) -> Tensor:
    """``(P, N, M)`` scores ``pred[n, p] . keys[m, p]``: every prediction against every key at the
    same position ``p``. ``pred`` is ``(N, ..., D)``, ``keys`` ``(M, ..., D)``; the middle axes
    (context step, future offset) are flattened into the ``P`` positions."""
    if pred.shape[1:] != keys.shape[1:]:
        raise ValueError(f"predictions {tuple(pred.shape)} and keys {tuple(keys.shape)} differ past axis 0")
    n, m, d = pred.shape[0], keys.shape[0], pred.shape[-1]
    q = pred.reshape(n, -1, d).transpose(0, 1)  # (P, N, D)
    k = keys.reshape(m, -1, d).permute(1, 2, 0)  # (P, D, M)
    return torch.bmm(q, k)


def cpc_infonce(pred: Tensor, target: Tensor, gather: Gather | None = None) -> Tensor:
    """InfoNCE of CPC (van den Oord et al., 2018, Eq. 4), averaged over records and positions.

    ``pred[n, ...]`` is the prediction ``W_k c_t`` and ``target[n, ...]`` the true ``z_{t+k}``
    of record ``n`` at the same position (any shape ``(N, ..., D)``, e.g. ``(N, T, K, D)``). At
    each position, record ``n``'s prediction is scored against the targets of all records;
    the cross-entropy picks out its own. ``gather`` (data-parallel training, as in
    :func:`ecgcli.ssl.simclr.nt_xent_loss`) makes the keys every process's targets, so the mean
    of the per-process losses is the global batch's loss and DDP's averaged gradient its
    gradient.
    """
    if pred.shape != target.shape or pred.ndim < 2:
        raise ValueError(
            f"pred and target must both be (N, ..., D), got {tuple(pred.shape)}, {tuple(target.shape)}"
        )
    n = pred.shape[0]
    keys, offset = (target, 0) if gather is None else gather(target)
    if keys.shape[0] < 2:
        raise ConfigError(
            f"CPC's contrastive loss needs at least 2 records per batch (got {keys.shape[0]}): "
            "raise the batch size or drop the last short batch"
        )
    # Scores in fp32 even under autocast: unlike SimCLR's cosines they are unbounded dot
    # products, and bf16 keeps only ~3 significant digits of them
    with torch.autocast(pred.device.type, enabled=False):
        low = (torch.float16, torch.bfloat16)
        logits = cpc_scores(*(t.float() if t.dtype in low else t for t in (pred, keys)))  # (P, N, M)
    positive = (offset + torch.arange(n, device=pred.device)).repeat(logits.shape[0])
    return F.cross_entropy(logits.reshape(-1, keys.shape[0]), positive)


class CPC(nn.Module):
    """Encoder + autoregressive context network + ``K`` linear predictors, trained with InfoNCE.

    ``forward(x)``: ``x`` the normalised records ``(B, 12, T)``; returns the scalar loss. The
    encoder's feature map must keep more than ``steps`` time steps (see :func:`check_cpc`).
    """

    def __init__(
        self,
        encoder: nn.Module,
        feature_dim: int,
        steps: int = 12,
        context: str = "gru",
        hidden: int = 256,
        *,
        gather: Gather | None = None,
    ) -> None:
        super().__init__()
        _check_settings(steps, context, hidden)
        self.encoder = encoder
        self.steps, self.feature_dim, self.hidden = steps, feature_dim, hidden
        rnn = nn.GRU if context == "gru" else nn.LSTM
        self.context = rnn(feature_dim, hidden, batch_first=True)
        self.predictor = nn.Linear(hidden, steps * feature_dim)  # W_1..W_K side by side
        self.gather = gather

    def forward(self, x: Tensor) -> Tensor:
        z = self.encoder.forward_features(x).transpose(1, 2)  # (B, T', C)
        b, t, c = z.shape
        k = self.steps
        s = t - k  # context steps whose K futures all lie in the window
        if s < 1:
            raise ConfigError(
                f"CPC: the encoder keeps {t} time steps of this {x.shape[-1]}-sample window, "
                f"too few to predict {k} steps ahead (lengthen --signal-length or lower --cpc-steps)"
            )
        ctx = self._context(z[:, :s])  # (B, S, H): c_t has seen z_0..z_t only
        pred = self.predictor(ctx).view(b, s, k, c)
        target = z[:, 1:].unfold(1, k, 1).transpose(2, 3)  # (B, S, K, C): z_{t+1}..z_{t+K}
        return cpc_infonce(pred, target, self.gather)

    def _context(self, z: Tensor) -> Tensor:
        if z.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # oneDNN has no bf16 recurrent kernels on many CPUs (see ecgcli.models.lstm)
            with torch.autocast("cpu", enabled=False):
                return self.context(z.float())[0]
        return self.context(z)[0]


def _check_settings(steps: int, context: str, hidden: int) -> None:
    if steps < 1:
        raise ConfigError(f"--cpc-steps must be at least 1, got {steps}")
    if context not in CONTEXTS:
        raise ConfigError(f"--cpc-context must be {' or '.join(CONTEXTS)}, got {context!r}")
    if hidden < 1:
        raise ConfigError(f"--cpc-hidden must be at least 1, got {hidden}")


def _known(encoder: str) -> bool:
    from ecgcli.models import encoder_names

    return encoder in encoder_names()


@lru_cache(maxsize=16)
def _narrow(encoder: str) -> nn.Module:
    """A narrow copy of the registry encoder, to measure its shapes (strides do not depend on
    the width)."""
    from ecgcli import LEADS
    from ecgcli.models import build_encoder

    return build_encoder(encoder, in_ch=len(LEADS), width=8).eval()


@lru_cache(maxsize=64)
def feature_steps(encoder: str, length: int) -> int:
    """How many time steps the registry encoder's feature map keeps of a ``length``-sample window."""
    net = _narrow(encoder)
    with torch.no_grad():
        return int(net.forward_features(torch.zeros(1, net.in_ch, length)).shape[-1])


def refuse_encoder(encoder: str) -> str | None:
    """Why ``encoder`` cannot be CPC's ``g_enc`` (one line), or None.

    CPC predicts latents several steps ahead; an encoder whose feature map keeps every input
    sample (inception1d, fcn_wang, the LSTMs) makes the K future steps the next K samples
    (0.12 s at 100 Hz), which its overlapping receptive fields or recurrent state already
    nearly determine, and a bidirectional LSTM's features at ``t`` have read the future itself.
    """
    if not _known(encoder):
        return None  # the configuration's own check names the known encoders
    if getattr(_narrow(encoder), "bidirectional", False):
        return (
            "it reads the record both ways (backwards, or by attention over the whole window), so its "
            "features at t already contain the future CPC predicts"
        )
    if feature_steps(encoder, 1024) >= 1024:
        return (
            "its feature map keeps every input sample (no downsampling), so the future steps are the "
            "next few samples, which its features already nearly contain; use a strided encoder "
            "(cnn1d, resnet1d_wang, xresnet1d50)"
        )
    return None


def check_cpc(cfg: Any) -> None:
    """CPC's settings in an :class:`~ecgcli.train.config.SSLConfig`, and that the encoder keeps
    more than ``cpc_steps`` time steps of a ``signal_length`` window (one line each)."""
    _check_settings(cfg.cpc_steps, cfg.cpc_context, cfg.cpc_hidden)
    if not _known(cfg.encoder) or refuse_encoder(cfg.encoder):
        return  # reported elsewhere, in one line
    have = feature_steps(cfg.encoder, cfg.signal_length)
    if have <= cfg.cpc_steps:
        factor = 1024 / feature_steps(cfg.encoder, 1024)
        need = math.ceil((cfg.cpc_steps + 1) * factor)
        raise ConfigError(
            f"--method cpc: {cfg.encoder} keeps {have} time steps of a {cfg.signal_length}-sample window, "
            f"too few to predict --cpc-steps {cfg.cpc_steps} ahead; use --signal-length {need} or more, "
            "or fewer --cpc-steps"
        )
