"""Masked modelling: hide random spans of each record and reconstruct them from the rest.

He, Chen, Xie, Li, Dollár, Girshick (2022), "Masked Autoencoders Are Scalable Vision
Learners" (MAE), CVPR, https://arxiv.org/abs/2111.06377: mask a large share of patches and
regress their raw values, the loss counted on masked patches only.
Xie, Zhang, Cao, Lin, Bao, Yao, Dai, Hu (2022), "SimMIM: A Simple Framework for Masked Image
Modeling", CVPR, https://arxiv.org/abs/2111.09886: the masked patches stay in the input,
replaced by a learned mask token, and a *linear* head predicts them from the encoder's features;
this needs nothing of the encoder but a feature map aligned with time, so it works for the
convolutional encoders too. For ECGs, ST-MEM (Na et al. 2024, ICLR) masks time patches.

The task, on normalised records ``x`` ``(B, C, T)``:

1. The time axis is cut into spans of ``mask_patch`` samples; ``round(mask_ratio * spans)`` of
   them are masked in every row, chosen by ranking uniform noise (one ``rand`` + ``argsort`` for
   the batch, no loop over records). ``mask_mode="time"``: one row per record, all leads masked
   together; ``"lead"``: one row per lead, each lead masked independently, so a masked span can
   be inferred from the other leads at the same time as well as from its own neighbours.
2. Masked inputs are replaced. The transformer in ``time`` mode, when ``mask_patch`` is a
   multiple of its patch: the *embedding* of each masked patch is replaced by a learned mask
   token (SimMIM). Otherwise (convolutional encoders, and the transformer in ``lead`` mode, where
   a token mixes masked and visible leads): the masked *samples* take a learned value per lead
   (initialised to 0, the normalised mean).
3. The feature map ``(B, D, T')`` goes through one linear layer per feature step to the
   ``C x r`` samples that step covers, ``r`` the encoder's total stride (its ``patch``, 25, for
   the transformer; else ``ceil(T / T')``: 8 for cnn1d, 1 for encoders that keep every step;
   a conv step is centred near the start of its ``r`` samples, close enough for a stride that is
   small beside the receptive field), giving ``(B, C, T' r)``;
   prediction and record are compared on their common first ``min(T, T' r)`` samples.
4. The loss is the mean squared error over the *masked* samples only (:func:`masked_mse`):
   visible samples would be trivial to copy and would dilute it.

Default mask ratio (``SSLConfig``): 0.75 for the transformer, which MAE found best for image
patches and ST-MEM uses for ECG patches: attention reaches the few visible patches anywhere in
the record, so a high ratio still leaves a solvable task; 0.5 for the
convolutional encoders, which see masked samples through local kernels, so at 0.75 most of their
receptive fields would hold only the mask value. Neither was tuned here.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ecgcli.errors import ConfigError

MASK_MODES = ("time", "lead")


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``(pred - target)^2`` over the positions where ``mask`` is True.

    ``pred`` and ``target`` are ``(B, C, T)``; ``mask`` is boolean and broadcasts to them
    (``(B, 1, T)`` masks every lead at once). Unmasked predictions do not enter the value or the
    gradient (even if they are not finite). Computed in fp32. An empty mask gives 0.
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be boolean, got {mask.dtype}")
    mask = mask.expand_as(target)
    err = torch.where(mask, pred.float() - target.float(), 0.0)
    return err.square().sum() / mask.sum().clamp_min(1)


def span_mask(
    rows: tuple[int, int],
    length: int,
    span: int,
    ratio: float,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """A boolean ``(B, R, length)`` mask: ``length`` cut into ``ceil(length / span)`` spans, of
    which exactly ``round(ratio * spans)`` (at least 1, at most all but 1) are masked in each of
    the ``B x R`` rows, drawn independently per row (ranks of uniform noise, MAE's shuffle)."""
    b, r = rows
    n = math.ceil(length / span)
    if n < 2:
        raise ConfigError(f"masking needs at least 2 spans of {span} samples, the input has {length}")
    k = min(max(round(ratio * n), 1), n - 1)
    noise = torch.rand(b, r, n, generator=generator, device=device)
    spans = noise.argsort(dim=-1).argsort(dim=-1) < k  # rank of each span's noise
    return spans.repeat_interleave(span, dim=-1)[..., :length]


def feature_stride(encoder: nn.Module, in_ch: int, length: int) -> int:
    """Input samples per feature step, ``ceil(length / T')``, from one dry forward pass in eval
    mode (BatchNorm statistics are left untouched)."""
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            steps = encoder.forward_features(torch.zeros(1, in_ch, length)).shape[-1]
    finally:
        encoder.train(was_training)
    return math.ceil(length / steps)


class Masked(nn.Module):
    """Mask spans of the records, reconstruct them with a linear decoder: ``forward(x)`` -> loss.

    ``encoder`` is any registry encoder whose feature map runs along time (``.encoder`` is what
    fine-tuning keeps); ``signal_length`` is the training window, which fixes the decoder's
    samples per feature step. Set ``generator`` (a ``torch.Generator`` on the batch's device) to
    draw the masks reproducibly; pretraining sets it every epoch.
    """

    def __init__(
        self,
        encoder: nn.Module,
        signal_length: int,
        mask_ratio: float = 0.5,
        mask_patch: int = 25,
        mask_mode: str = "time",
        in_ch: int = 12,
    ) -> None:
        super().__init__()
        if mask_mode not in MASK_MODES:
            raise ConfigError(f"mask mode must be {' or '.join(MASK_MODES)}, got {mask_mode!r}")
        if not 0.0 < mask_ratio < 1.0:
            raise ConfigError(f"mask ratio must be in (0, 1), got {mask_ratio}")
        if mask_patch < 1:
            raise ConfigError(f"mask patch must be at least 1 sample, got {mask_patch}")
        self.encoder, self.in_ch = encoder, in_ch
        self.mask_ratio, self.mask_patch, self.mask_mode = mask_ratio, mask_patch, mask_mode
        patch = getattr(encoder, "patch", None)
        tokens = hasattr(encoder, "embed") and patch is not None
        self.token_masking = mask_mode == "time" and tokens and mask_patch % patch == 0
        if self.token_masking:  # only the parameter that is used, so DDP sees every gradient
            self.mask_token = nn.Parameter(torch.zeros(encoder.out_dim))
            nn.init.normal_(self.mask_token, std=0.02)
        else:
            self.mask_value = nn.Parameter(torch.zeros(1, in_ch, 1))
        # a patch encoder drops samples after its last whole patch: its stride is the patch
        self.stride = patch or feature_stride(encoder, in_ch, signal_length)
        self.decoder = nn.Linear(encoder.out_dim, in_ch * self.stride)
        self.generator: torch.Generator | None = None

    def draw_mask(self, x: Tensor) -> Tensor:
        """``(B, 1, T)`` in time mode, ``(B, C, T)`` in lead mode."""
        rows = (x.shape[0], 1 if self.mask_mode == "time" else x.shape[1])
        return span_mask(rows, x.shape[-1], self.mask_patch, self.mask_ratio, self.generator, x.device)

    def reconstruct(self, x: Tensor, mask: Tensor) -> Tensor:
        """The decoder's ``(B, C, T' r)`` reconstruction of ``x`` with ``mask`` hidden."""
        if self.token_masking:
            tokens = self.encoder.embed(x)
            hidden = mask[:, 0, :: self.encoder.patch][:, : tokens.shape[1], None]  # (B, N, 1)
            fmap = self.encoder.encode_tokens(torch.where(hidden, self.mask_token.to(tokens.dtype), tokens))
        else:
            fmap = self.encoder.forward_features(torch.where(mask, self.mask_value.to(x.dtype), x))
        b, _, steps = fmap.shape
        pred = self.decoder(fmap.transpose(1, 2))  # (B, T', C r)
        return pred.view(b, steps, self.in_ch, self.stride).permute(0, 2, 1, 3).reshape(b, self.in_ch, -1)

    def forward(self, x: Tensor) -> Tensor:
        mask = self.draw_mask(x)
        pred = self.reconstruct(x, mask)
        n = min(x.shape[-1], pred.shape[-1])
        return masked_mse(pred[..., :n], x[..., :n], mask[..., :n])
