"""The SSL view policy: every augmentation's settings in one :class:`AugmentConfig` (saved
with checkpoints) and :class:`ECGAugment`, which applies the enabled ones in a fixed order."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from torch import Generator, Tensor

from ecgcli.errors import ConfigError
from ecgcli.ssl.augment.batch import _check_batch, _gaussian_noise_
from ecgcli.ssl.augment.ops import (
    _OPS,
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
