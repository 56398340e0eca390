"""Every trainer's configuration, and the one declaration of each training option.

A field declared with :func:`option` is a user-facing option: its type (the annotation), its
default and its help are written here once, and everything else reads them: the CLI builds
each command's flags from these fields (``ecgcli.cli.options``), ``ecg multiseed``'s
``[key=value]`` grammar coerces a value by the field's declared type, and ``config.json``
saves the whole dataclass. A subclass may change a default (``SSLConfig.epochs``); the help
is inherited. Fields without :func:`option` (data root, device, ...) come from the settings
(flag > ``ECG_*`` environment > env file > default, see :mod:`ecgcli.settings`).

This module imports nothing heavy, so ``ecg --help`` can read it without torch or pandas;
the checks import what they validate against lazily.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from ecgcli.errors import ConfigError

C = TypeVar("C", bound="RunConfig")


def encoder_widths() -> dict[str, int]:
    """Each registered encoder's default width, read from the registry's constructors (imports
    torch, so only when a configuration needs it: never for ``ecg --help``)."""
    from ecgcli.models.encoders import default_widths

    return default_widths()


def __getattr__(name: str) -> Any:
    if name == "ENCODER_WIDTHS":  # the registry's widths, read on first use
        return encoder_widths()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


SELECT_METRICS = ("f1", "auroc")
CALIBRATIONS = ("temperature",)
OPTIMIZERS = ("adam", "adamw")
HEADS = ("linear", "benchmark")
AGGREGATES = ("mean", "max")

#: Presets of training options (``--recipe``). ``reference`` is the reference study's, the
#: defaults of every field. ``benchmark`` is the PTB-XL benchmark's (Strodthoff et al. 2021):
#: 2.5 s random crops, test-time windows every 1.25 s combined by max, AdamW with weight decay
#: 1e-2 on a one-cycle schedule peaking at 1e-2, batch 128, 50 epochs, BCE without balancing,
#: and its head. Durations are in seconds and become samples at the run's sampling rate. A
#: value given explicitly (flag, ``--set``, ``[key=value]``) always wins over the recipe's.
RECIPES: dict[str, dict[str, Any]] = {
    "reference": {},
    "benchmark": {
        "signal_length": ("seconds", 2.5),
        "window_stride": ("seconds", 1.25),
        "aggregate": "max",
        "optimizer": "adamw",
        "weight_decay": 1e-2,
        "schedule": "onecycle",
        "lr": 1e-2,
        "batch_size": 128,
        "epochs": 50,
        "loss": "bce",
        "balance_strategy": "standard",
        "head": "benchmark",
    },
}


def encoder_width(cfg: RunConfig) -> dict[str, int]:
    """``{"width": w}`` for the encoder constructor, or nothing (its own default). ``None``
    alone means unset: a width of 0 is a value (refused by the checks), never the default."""
    return {"width": cfg.width} if cfg.width is not None else {}


def apply_recipe(values: dict[str, Any], given: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """``values`` (configuration keyword arguments, ``recipe`` among them) with the recipe's
    settings filled in for every key not in ``given`` (the ones the user set explicitly)."""
    name = values.get("recipe", "reference")
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r} (choose {', '.join(RECIPES)})")
    rate = int(values.get("sampling_rate", 100))
    out = dict(values)
    for key, value in RECIPES[name].items():
        if key in given:
            continue
        if isinstance(value, tuple) and value[0] == "seconds":
            value = round(value[1] * rate)
        out[key] = value
    return out


def option(
    default: Any = dataclasses.MISSING, help: str = "", *, flag: str | None = None, factory: Any = None
) -> Any:
    """A configuration field that is also a command-line option (``--name-with-dashes``)."""
    metadata = {"help": help, "flag": flag}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def option_help(cls: type, name: str) -> dict[str, Any] | None:
    """The option metadata of field ``name`` (its help and flag), from the class that declared
    it with :func:`option` (a subclass that only changes the default inherits the help)."""
    for klass in cls.__mro__:
        f = getattr(klass, "__dataclass_fields__", {}).get(name)
        if f is not None and f.metadata.get("help"):
            return dict(f.metadata)
    return None


def field_types(cls: type) -> dict[str, Any]:
    """The declared type of every field (``int | None`` and the like, evaluated)."""
    return typing.get_type_hints(cls)


@dataclass
class DataConfig:
    """What every kind of run reads and where it goes: the data, cache and runs folders, the
    sampling rate, reader processes and device (settings, not options; see the module doc)."""

    data_root: str = "data/PTB-XL"
    cache_dir: str = "data/cache"
    runs_dir: str = "runs"
    sampling_rate: int = 100
    workers: int = 1
    device: str = "auto"


@dataclass
class RunConfig(DataConfig):
    """Options every training command has (data, hardware, optimisation, model, outputs)."""

    epochs: int = option(30, "Training epochs.")
    batch_size: int = option(
        64,
        "Records per step, in all processes together: with N processes (--nproc, torchrun) "
        "each trains on batch-size / N.",
    )
    lr: float = option(1e-3, "Learning rate (the head's, when fine-tuning; the peak, one-cycle).")
    weight_decay: float = option(0.0, "Weight decay (L2 for adam, decoupled for adamw).")
    optimizer: str = option("adam", "adam or adamw.")
    schedule: str = option("none", "Learning-rate schedule: none, cosine or onecycle.")
    warmup_epochs: int = option(0, "Epochs of linear learning-rate warm-up.")
    grad_clip: float = option(0.0, "Clip the gradient norm (0 = off).")
    signal_length: int = option(1000, "Samples per input window; shorter than a record = random crops.")
    seed: int = option(42, "Fixes the labelled subset, initialisation and shuffling.")
    task: str = option(
        "superdiagnostic",
        "PTB-XL benchmark label set: superdiagnostic (5 classes), subdiagnostic (23), "
        "diagnostic (44), form (19), rhythm (12) or all (71).",
    )
    precision: str = option(
        "auto",
        "Training arithmetic: auto, fp32, bf16 or fp16 (autocast). auto: bf16 on CUDA GPUs that have "
        "it, else fp16 on CUDA; bf16 on CPUs with native bf16 (avx512_bf16, amx_bf16), else fp32.",
    )
    encoder: str = option("cnn1d", "Encoder architecture from the model registry.")
    width: int | None = option(
        None, "Encoder width (the channels that scale it) \\[default: the encoder's own; see `ecg models`]."
    )
    run_dir: str | None = option(None, "Run directory \\[default: <runs dir>/<name>].")
    name: str | None = option(None, "Run name under the runs directory.")
    out: str | None = option(None, "Also write the best checkpoint here (.safetensors).")
    allow_invalid: bool = option(
        False,
        "Train even when records are more than 1% missing samples (WFDB's 0x8000, cached as "
        "0 mV); they are always listed.",
    )
    # Settings, not options (``--tracker``, ECG_TRACKER, ECG_MLFLOW_TRACKING_URI): saved with the
    # run, so --resume logs to the same tracker; see ecgcli.train.trackers.
    tracker: str = "none"
    mlflow_tracking_uri: str | None = None
    tracker_tags: dict[str, str] = field(default_factory=dict)  # a grid cell's: grid, arm, seed

    def __post_init__(self) -> None:
        # An encoder's own width unless one is asked for; a fine-tune's comes from its checkpoint.
        if self.width is None and not getattr(self, "ssl_checkpoint", None):
            self.width = encoder_widths().get(self.encoder)

    def default_name(self) -> str:
        raise NotImplementedError

    def check_common(self) -> None:
        """Reject bad values of the shared options with one clear line each."""
        from ecgcli.data.ptbxl import RECORD_LENGTH
        from ecgcli.data.tasks import check_task
        from ecgcli.train.loop import SCHEDULES

        check_task(self.task)
        from ecgcli.train.trackers import check_tracker

        check_tracker(self.tracker)  # a missing extra is one line, before any data is read
        widths = encoder_widths()
        if self.encoder not in widths:  # before any data is read
            raise ConfigError(f"unknown encoder {self.encoder!r} (known: {', '.join(sorted(widths))})")
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
        if self.width is not None and self.width < 1:  # before the encoder is built, data read
            raise ConfigError(f"--width must be at least 1, got {self.width}")
        if not self.lr > 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ConfigError("--weight-decay and --grad-clip must not be negative")
        if self.warmup_epochs < 0:
            raise ConfigError(f"--warmup-epochs must not be negative, got {self.warmup_epochs}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        from ecgcli.device import pick_device
        from ecgcli.train.precision import autocast_dtype

        autocast_dtype(self.precision, pick_device(self.device))  # what this device cannot: one line
        if self.out:
            from ecgcli.storage.runs import check_writable

            check_writable(Path(self.out))

    @classmethod
    def resolve(
        cls, values: dict[str, Any], given: set[str] | frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """A run's configuration values from its options (settings, flags, ``--set``, a grid's
        ``[key=value]``): with ``--recipe``'s settings for every key not in ``given`` (the ones
        the user set) where this kind of run has a recipe. The one place a recipe is applied:
        the training commands and the grids all come here (:meth:`from_options`)."""
        if "recipe" not in {f.name for f in fields(cls)}:
            return dict(values)
        return apply_recipe(values, given)

    @classmethod
    def from_options(
        cls: type[C], values: dict[str, Any], given: set[str] | frozenset[str] = frozenset()
    ) -> C:
        """The configuration of a run from its options (see :meth:`resolve`)."""
        return cls(**cls.resolve(values, given))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        """Read back a saved configuration; keys of other versions are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class SupervisedConfig(RunConfig):
    """Everything that defines a supervised or fine-tuning run (saved as config.json).

    ``width`` is None when fine-tuning: the checkpoint's encoder width is used.
    """

    label_fraction: float = option(0.1, "Fraction of labelled folds 1-8 to train on, (0, 1].")
    loss: str = option("focal", "focal, bce, weighted or class_balanced.")
    focal_alpha: float = option(0.25, "Focal loss weight of the positive term.")
    focal_gamma: float = option(2.0, "Focal loss focusing exponent.")
    balance_strategy: str = option("oversample", "oversample, stratified or standard.")
    patience: int | None = option(
        None, "Stop after this many validations without improvement (one every --val-every epochs)."
    )
    val_every: int = option(
        1,
        "Validate on fold 9 every k epochs and after the last; only validated epochs can be "
        "selected. With few labels, validation is most of an epoch's time.",
    )
    select_metric: str = option("f1", "Validation metric that picks the best epoch: f1 or auroc.")
    recipe: str = option(
        "reference",
        "Preset of training options: reference (the defaults) or benchmark (the PTB-XL benchmark's: "
        "2.5 s crops, windows every 1.25 s by max, AdamW, one-cycle at 1e-2, batch 128, 50 epochs, "
        "BCE, its head). Options given explicitly override it.",
    )
    head: str = option("linear", "Classifier head: linear, or benchmark (concat pooling, 128 units).")
    window_stride: int | None = option(
        None, "Samples between test-time windows \\[default: the window length, no overlap]."
    )
    aggregate: str = option("mean", "How a record's window probabilities are combined: mean or max.")
    # fine-tuning
    ssl_checkpoint: str | None = option(
        None,
        "Encoder checkpoint from `ecg train ssl` (.safetensors), or a shipped encoder's name "
        "(`ecg models --pretrained`).",
    )
    freeze_encoder: bool = option(
        False,
        "Linear probe: train only the head (BatchNorm frozen too); without a checkpoint, a probe of a "
        "random encoder (the probe:random baseline).",
    )
    encoder_lr: float | None = option(None, "Full fine-tuning with this smaller encoder learning rate.")
    leads: str = option(
        "12",
        "Leads to train on: a PhysioNet 2021 set by size (12, 6, 4, 3, 2) or names, e.g. II or "
        "I,II,V1; saved in the checkpoint, and predict needs them in a record.",
    )
    calibrate: str | None = option(
        None,
        "temperature: fit one temperature per class on fold 9 (after selection), store it in the "
        "checkpoint for predict and export, report test ECE before and after.",
    )

    @property
    def kind(self) -> str:
        return "finetune" if self.ssl_checkpoint else "supervised"

    def default_name(self) -> str:
        if self.kind == "finetune":
            mode = "probe" if self.freeze_encoder else "ft"
            return f"finetune-{_source_name(self.ssl_checkpoint)}-{mode}{self._lead_tag()}-s{self.seed}"
        frozen = "-frozen" if self.freeze_encoder else ""  # a probe of a random encoder
        return f"supervised-{self.loss}-{self.balance_strategy}{frozen}{self._lead_tag()}-s{self.seed}"

    def _lead_tag(self) -> str:
        """``""`` for 12 leads, else ``-leads-I-II-V1`` (run names of reduced-lead runs differ)."""
        from ecgcli import LEADS
        from ecgcli.data.leads import parse_leads

        leads = parse_leads(self.leads)
        return "" if leads == LEADS else "-leads-" + "-".join(leads)

    def check(self) -> None:
        """Reject bad values with one clear line each, before any work starts."""
        from ecgcli import pretrained
        from ecgcli.data.loader import STRATEGIES
        from ecgcli.train.losses import LOSSES

        if getattr(self, "ssl_checkpoint", None):  # an unknown shipped name fails here, before any data
            pretrained.named(str(self.ssl_checkpoint))
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown loss {self.loss!r} (choose from {', '.join(LOSSES)})")
        if self.balance_strategy not in STRATEGIES:
            raise ConfigError(
                f"unknown balance strategy {self.balance_strategy!r} (choose from {', '.join(STRATEGIES)})"
            )
        if not 0.0 < self.label_fraction <= 1.0:
            raise ConfigError(f"--label-fraction must be in (0, 1], got {self.label_fraction}")
        if self.encoder_lr is not None and not self.encoder_lr > 0:
            raise ConfigError(f"--encoder-lr must be positive, got {self.encoder_lr}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"--patience must be at least 1, got {self.patience}")
        if self.val_every < 1:
            raise ConfigError(f"--val-every must be at least 1, got {self.val_every}")
        if self.select_metric not in SELECT_METRICS:
            raise ConfigError(f"--select-metric must be f1 or auroc, got {self.select_metric!r}")
        if self.freeze_encoder and self.encoder_lr is not None:
            raise ConfigError("--freeze-encoder and --encoder-lr exclude each other")
        if self.recipe not in RECIPES:
            raise ConfigError(f"unknown recipe {self.recipe!r} (choose {', '.join(RECIPES)})")
        if self.head not in HEADS:
            raise ConfigError(f"--head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if self.aggregate not in AGGREGATES:
            raise ConfigError(f"--aggregate must be mean or max, got {self.aggregate!r}")
        if self.window_stride is not None and not 1 <= self.window_stride <= self.signal_length:
            raise ConfigError(
                f"--window-stride must be between 1 and the window ({self.signal_length}), "
                f"got {self.window_stride}"
            )
        from ecgcli.data.leads import parse_leads

        parse_leads(self.leads)  # an unknown lead name fails here
        if self.calibrate is not None and self.calibrate not in CALIBRATIONS:
            raise ConfigError(f"--calibrate must be {' or '.join(CALIBRATIONS)}, got {self.calibrate!r}")
        self.check_common()


@dataclass
class SSLConfig(RunConfig):
    """Everything that defines a pretraining run (saved as config.json)."""

    epochs: int = 20
    batch_size: int = 256
    method: str = option(
        "simclr",
        "SSL objective: simclr, byol, cpc (contrastive predictive coding) or masked (reconstruct "
        "masked time spans); cpc and masked take one unaugmented view.",
    )
    temperature: float = option(0.07, "NT-Xent temperature (SimCLR).")
    projection_dim: int = option(128, "Projection output size.")
    hidden_dim: int = option(2048, "Projection/predictor hidden size.")
    momentum_tau: float = option(0.99, "BYOL target EMA start, cosine-increased to 1.")
    cpc_steps: int = option(
        12, "CPC: future latents predicted from each context step (K; 12 = 0.96 s with cnn1d at 100 Hz)."
    )
    cpc_context: str = option("gru", "CPC: autoregressive context network over the latents: gru or lstm.")
    cpc_hidden: int = option(256, "CPC: hidden size of the context network.")
    mask_ratio: float | None = option(
        None,
        "Masked: share of spans masked, in (0, 1) \\[default: 0.75 for the transformer, 0.5 otherwise].",
    )
    mask_patch: int = option(25, "Masked: samples per masked span (25 = 0.25 s at 100 Hz).")
    mask_mode: str = option("time", "Masked: time (all leads of a span together) or lead (each lead apart).")
    probe_every: int = option(1, "Linear probe on fold 9 every k epochs (0 = never).")
    probe_fraction: float = option(0.1, "Labelled fraction of folds 1-8 the live probe trains on.")
    save_every: int = option(
        0,
        "Also keep the encoder after every k epochs, as checkpoints/epoch-NNN.safetensors in the run "
        "folder, to fine-tune from several points of one pretraining (0 = only the final encoder).",
    )
    no_aug: list[str] = option(
        help="Switch an augmentation off (repeatable), for ablations.", flag="--no-aug", factory=list
    )
    pretrain_data: list[str] = option(
        help="Another WFDB folder whose records (any 12-lead set, found recursively) are added to "
        "the pretraining records of folds 1-8 (repeatable); refused if any is a PTB-XL fold 9-10 record.",
        factory=list,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mask_ratio is None:  # MAE's 0.75 for patch tokens; see ecgcli.ssl.masked
            self.mask_ratio = 0.75 if self.encoder == "transformer" else 0.5

    def default_name(self) -> str:
        return f"{self.method}-s{self.seed}"

    def check(self) -> None:
        from ecgcli.ssl import check_ssl_method
        from ecgcli.ssl.augment import build_policy
        from ecgcli.ssl.masked import MASK_MODES

        check_ssl_method(self.method, self.encoder).check(self)
        if not self.temperature > 0:
            raise ConfigError(f"--temperature must be positive, got {self.temperature}")
        if not 0.0 <= self.momentum_tau <= 1.0:
            raise ConfigError(f"--momentum-tau must be in [0, 1], got {self.momentum_tau}")
        if self.batch_size < 2:
            raise ConfigError(
                f"--batch-size must be at least 2 for {self.method} (contrastive pairs and "
                f"BatchNorm need two records), got {self.batch_size}"
            )
        if self.projection_dim < 1 or self.hidden_dim < 1:
            raise ConfigError("--projection-dim and --hidden-dim must be positive")
        if not 0.0 < float(self.mask_ratio or 0.0) < 1.0:
            raise ConfigError(f"--mask-ratio must be in (0, 1), got {self.mask_ratio}")
        if not 1 <= self.mask_patch <= self.signal_length // 2:
            raise ConfigError(
                f"--mask-patch must be between 1 and half the window ({self.signal_length // 2} samples), "
                f"got {self.mask_patch}"
            )
        if self.mask_mode not in MASK_MODES:
            raise ConfigError(f"--mask-mode must be {' or '.join(MASK_MODES)}, got {self.mask_mode!r}")
        if self.probe_every < 0:
            raise ConfigError(f"--probe-every must be 0 (never) or more, got {self.probe_every}")
        if not 0.0 < self.probe_fraction <= 1.0:
            raise ConfigError(f"--probe-fraction must be in (0, 1], got {self.probe_fraction}")
        if self.save_every < 0:
            raise ConfigError(f"--save-every must be 0 (final encoder only) or more, got {self.save_every}")
        build_policy(self.sampling_rate, disabled=self.no_aug)  # unknown names fail here
        for folder in self.pretrain_data:
            if not Path(folder).is_dir():
                raise ConfigError(f"--pretrain-data: {folder} is not a folder")
            if not any(Path(folder).rglob("*.hea")):
                raise ConfigError(f"--pretrain-data: {folder} has no WFDB records (no .hea files under it)")
        self.check_common()


#: Classifiers of the handcrafted-feature baseline (``features:NAME``).
FEATURE_CLASSIFIERS = ("logreg", "forest")
#: Inverse regularisation strengths a ``features:logreg`` run chooses from on fold 9.
LOGREG_C_GRID = (0.01, 0.1, 1.0)
#: Minimum leaf sizes a ``features:forest`` run chooses from on fold 9.
FOREST_LEAF_GRID = (1, 5)


def _as_in(cls: type, name: str) -> Any:
    """A field with the default of ``cls``'s field ``name``: one option declared once, taken by a
    configuration that is not a ``cls`` (not a command-line option of that one)."""
    return field(default=cls.__dataclass_fields__[name].default)


@dataclass
class FeaturesConfig(DataConfig):
    """A handcrafted-feature baseline run (``features:logreg``, ``features:forest`` in a grid;
    see :mod:`ecgcli.train.features`), saved as config.json.

    Only what such a run uses: the data, the seed and label fraction (the same labelled subset
    as every other configuration with that seed), the task and leads, and the classifier, each
    with the default of the supervised run's field. Training options of networks (epochs, lr,
    encoder, ...) do not apply to it.
    """

    seed: int = _as_in(SupervisedConfig, "seed")
    label_fraction: float = _as_in(SupervisedConfig, "label_fraction")
    task: str = _as_in(SupervisedConfig, "task")
    leads: str = _as_in(SupervisedConfig, "leads")
    select_metric: str = _as_in(SupervisedConfig, "select_metric")
    classifier: str = "logreg"
    logreg_c: float | None = option(
        None,
        f"Logistic regression's C [default: chosen on fold 9 from {', '.join(map(str, LOGREG_C_GRID))}].",
    )
    forest_trees: int = option(200, "Trees of the random forest.")
    forest_min_leaf: int | None = option(
        None,
        "The forest's minimum leaf size [default: chosen on fold 9 from "
        f"{', '.join(map(str, FOREST_LEAF_GRID))}].",
    )
    run_dir: str | None = _as_in(SupervisedConfig, "run_dir")
    name: str | None = _as_in(SupervisedConfig, "name")
    out: str | None = _as_in(SupervisedConfig, "out")
    allow_invalid: bool = _as_in(SupervisedConfig, "allow_invalid")

    @property
    def kind(self) -> str:
        return "features"

    def default_name(self) -> str:
        return f"features-{self.classifier}-s{self.seed}"

    def check(self) -> None:
        from ecgcli.data.leads import parse_leads
        from ecgcli.data.ptbxl import RECORD_LENGTH
        from ecgcli.data.tasks import check_task

        check_task(self.task)
        parse_leads(self.leads)
        if self.classifier not in FEATURE_CLASSIFIERS:
            raise ConfigError(
                f"unknown feature classifier {self.classifier!r} (choose {', '.join(FEATURE_CLASSIFIERS)})"
            )
        if self.sampling_rate not in RECORD_LENGTH:
            raise ConfigError(f"sampling rate must be 100 or 500, got {self.sampling_rate}")
        if not 0.0 < self.label_fraction <= 1.0:
            raise ConfigError(f"--label-fraction must be in (0, 1], got {self.label_fraction}")
        if self.select_metric not in SELECT_METRICS:
            raise ConfigError(f"--select-metric must be f1 or auroc, got {self.select_metric!r}")
        if self.logreg_c is not None and not self.logreg_c > 0:
            raise ConfigError(f"logreg_c must be positive, got {self.logreg_c}")
        if self.forest_trees < 1:
            raise ConfigError(f"forest_trees must be at least 1, got {self.forest_trees}")
        if self.forest_min_leaf is not None and self.forest_min_leaf < 1:
            raise ConfigError(f"forest_min_leaf must be at least 1, got {self.forest_min_leaf}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeaturesConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def _source_name(checkpoint: Any) -> str:
    """What a fine-tune's run name calls its encoder: the run folder of a checkpoint file, or
    the name of a shipped encoder (which has no folder of its own)."""
    path = Path(str(checkpoint))
    return path.parent.name or path.stem
