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

from ecgcli.ssl.augment.batch import _white_noise
from ecgcli.ssl.augment.ops import (
    AUGMENTATIONS,
    AmplitudeScale,
    Bandpass,
    BaselineWander,
    ChannelNoise,
    CutMix,
    Jitter,
    Mixup,
    TemporalDropout,
    TimeWarp,
    _Op,
)
from ecgcli.ssl.augment.policy import AugmentConfig, ECGAugment, build_policy

__all__ = [
    "AUGMENTATIONS",
    "AmplitudeScale",
    "AugmentConfig",
    "Bandpass",
    "BaselineWander",
    "ChannelNoise",
    "CutMix",
    "ECGAugment",
    "Jitter",
    "Mixup",
    "TemporalDropout",
    "TimeWarp",
    "_Op",
    "_white_noise",
    "build_policy",
]
