"""What every trainer shares before its loop: the common configuration and its checks, the
run directory (made by rank 0 only), and the dataset loaded with rank 0 first.

:class:`SupervisedConfig <ecgcli.train.supervised.SupervisedConfig>` and
:class:`SSLConfig <ecgcli.train.ssl.SSLConfig>` extend :class:`RunConfig` with their own
options; a configuration is saved as ``config.json`` and read back on ``--resume``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ecgcli.data.ptbxl import RECORD_LENGTH
from ecgcli.errors import ConfigError
from ecgcli.events import Callback
from ecgcli.storage.runs import RunDir, check_writable
from ecgcli.train.data import TrainingData, load_training_data
from ecgcli.train.loop import SCHEDULES

if TYPE_CHECKING:
    from ecgcli.train.distributed import Distributed

C = TypeVar("C", bound="RunConfig")


@dataclass
class RunConfig:
    """Options every training command has (data, hardware, optimisation, model, outputs)."""

    data_root: str = "data/PTB-XL"
    cache_dir: str = "data/cache"
    runs_dir: str = "runs"
    sampling_rate: int = 100
    workers: int = 1
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "none"
    warmup_epochs: int = 0
    grad_clip: float = 0.0
    signal_length: int = 1000
    seed: int = 42
    device: str = "auto"
    encoder: str = "cnn1d"
    width: int | None = 64
    run_dir: str | None = None
    name: str | None = None
    out: str | None = None

    def default_name(self) -> str:
        raise NotImplementedError

    def check_common(self) -> None:
        """Reject bad values of the shared options with one clear line each."""
        if self.sampling_rate not in RECORD_LENGTH:
            raise ConfigError(f"sampling rate must be 100 or 500, got {self.sampling_rate}")
        length = RECORD_LENGTH[self.sampling_rate]
        if not 64 <= self.signal_length <= length:
            raise ConfigError(
                f"--signal-length must be between 64 and {length} samples "
                f"at {self.sampling_rate} Hz, got {self.signal_length}"
            )
        for name, value, low in (("--epochs", self.epochs, 1), ("--batch-size", self.batch_size, 2)):
            if value < low:
                raise ConfigError(f"{name} must be at least {low}, got {value}")
        if not self.lr > 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ConfigError("--weight-decay and --grad-clip must not be negative")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.out:
            check_writable(Path(self.out))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        """Read back a saved configuration; keys of other versions are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def open_run(cfg: RunConfig, dist: Distributed, placement: dict[str, Any], resume: RunDir | None) -> RunDir:
    """The run directory: the resumed one, or a new one made by rank 0 with the config in it."""
    if resume is not None:
        return resume

    def create() -> RunDir:
        run = RunDir.create(
            Path(cfg.runs_dir), cfg.name or cfg.default_name(), Path(cfg.run_dir) if cfg.run_dir else None
        )
        run.write_config({**cfg.to_dict(), "distributed": placement})
        return run

    return dist.on_main(create)


def load_data(cfg: RunConfig, label_fraction: float, dist: Distributed, callback: Callback) -> TrainingData:
    """Tables, split and signal cache; the first process of each node builds the cache before
    the others of that node open it (nodes need not share a filesystem)."""
    return dist.local_first(
        lambda: load_training_data(
            Path(cfg.data_root),
            Path(cfg.cache_dir),
            cfg.sampling_rate,
            label_fraction,
            cfg.seed,
            cfg.workers,
            callback,
        )
    )
