"""The configuration grammar of ``ecg multiseed`` (and of every grid).

::

    SPEC      := BODY [ "[" KEY=VALUE { "," KEY=VALUE } "]" ]
    BODY      := LOSS "+" STRATEGY            supervised baseline, e.g. focal+oversample
               | "finetune:" NAME "=" PATH    full fine-tune of the encoder checkpoint PATH
               | "probe:" NAME "=" PATH       linear probe: the encoder is frozen
               | "finetune:random"            the fine-tuning recipe from a random encoder
               | "probe:random"               a linear probe of a frozen random encoder
               | "features:" CLASSIFIER       handcrafted features + logreg or forest

``KEY`` is any :class:`~ecgcli.train.config.SupervisedConfig` field that a user may set
(``select_metric``, ``schedule``, ``width``, ``focal_gamma``, ...; ``loss`` and
``balance_strategy`` only for fine-tunes, whose default is focal+oversample as in
``ecg finetune``). A value is coerced by the field's declared type. The *name* of a
configuration, used in tables, ``--baseline`` and ``ecg compare``, is the spec without its
path: ``finetune:simclr``, ``focal+oversample[schedule=cosine]``. Its *slug* (the folder
name) replaces anything but letters, digits, ``.``, ``=`` and ``-`` by ``_``.

The baselines a pretrained encoder must beat, paired with it by seed:

* ``probe:random`` and ``finetune:random`` train exactly as ``probe:NAME=PATH`` and
  ``finetune:NAME=PATH`` do (frozen encoder and BatchNorm, or the fine-tune's loss, balancing
  and ``--encoder-lr``) but from a randomly initialised encoder: ``encoder`` and ``width`` come
  from the common options or ``[encoder=...,width=...]`` (give the pretrained encoder's), the
  input normalisation is fitted on the training records as in supervised runs (a random
  encoder has no pretraining statistics). ``random`` is therefore not a checkpoint name.
* ``features:logreg`` and ``features:forest``: handcrafted features and a scikit-learn
  classifier (:mod:`ecgcli.train.features`); only data options apply to them (``task``,
  ``leads``, ``select_metric``) and their own keys ``logreg_c``, ``forest_trees``,
  ``forest_min_leaf``; common network options (``--epochs``, ``--set lr=...``) are ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from ecgcli.errors import ConfigError

#: The reference study's seeds: 42, 52, ..., 132.
DEFAULT_SEEDS: tuple[int, ...] = tuple(range(42, 133, 10))
#: The reference study's two supervised configurations.
DEFAULT_CONFIGS: tuple[str, ...] = ("bce+standard", "focal+oversample")

# SupervisedConfig fields that --set and [key=value] may not change, and why.
_RESERVED = {
    "seed": "use --seeds",
    "label_fraction": "use --label-fraction or --label-fractions",
    "ssl_checkpoint": "use a finetune:NAME=PATH or probe:NAME=PATH configuration",
    "freeze_encoder": "use a probe:NAME=PATH or probe:random configuration",
    "data_root": "use --data-root",
    "cache_dir": "use ECG_CACHE_DIR",
    "runs_dir": "use --out",
    "run_dir": "use --out",
    "name": "names come from the configuration spec",
    "out": "each run's checkpoint is in its run directory",
    "sampling_rate": "use --sampling-rate",
    "device": "use --device",
    "workers": "use --workers",
    "tracker": "use --tracker",
    "mlflow_tracking_uri": "use ECG_MLFLOW_TRACKING_URI",
    "tracker_tags": "each run of a grid is tagged with its grid, configuration and seed",
}
#: Fields a grid takes from its own options (above) or from each configuration's spec, so they
#: are not common training options of ``ecg multiseed``.
GRID_OWN: tuple[str, ...] = (*_RESERVED, "loss", "balance_strategy")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _supervised_fields() -> dict[str, Any]:
    """Every SupervisedConfig field and its declared type."""
    from ecgcli.train.config import SupervisedConfig, field_types

    return field_types(SupervisedConfig)


def settable_keys() -> list[str]:
    """SupervisedConfig fields a configuration spec or ``--set`` may change."""
    return sorted(k for k in _supervised_fields() if k not in _RESERVED)


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"42,52,62"`` -> ``(42, 52, 62)``; empty, non-integer, negative or repeated is an error."""
    items = [s.strip() for s in str(text).split(",")]
    if not any(items):
        raise ConfigError("--seeds is empty: give comma-separated integers such as 42,52,62")
    seeds: list[int] = []
    for item in items:
        if not re.fullmatch(r"[+-]?\d+", item):
            raise ConfigError(f"--seeds: {item!r} is not an integer seed (expected e.g. 42,52,62)")
        seed = int(item)
        if seed < 0:
            raise ConfigError(f"--seeds: seeds must not be negative, got {seed}")
        if seed in seeds:
            raise ConfigError(f"--seeds: seed {seed} is listed twice")
        seeds.append(seed)
    return tuple(seeds)


def parse_fractions(text: str) -> tuple[float, ...]:
    """``"0.01,0.1,1.0"`` -> floats in (0, 1], each once."""
    items = [s.strip() for s in str(text).split(",")]
    if not any(items):
        raise ConfigError("--label-fractions is empty: give fractions such as 0.01,0.1,1.0")
    out: list[float] = []
    for item in items:
        try:
            value = float(item)
        except ValueError:
            raise ConfigError(f"--label-fractions: {item!r} is not a number") from None
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"--label-fractions: {item} is not in (0, 1]")
        if value in out:
            raise ConfigError(f"--label-fractions: {item} is listed twice")
        out.append(value)
    return tuple(out)


def parse_assignments(items: Sequence[str], where: str = "--set") -> list[tuple[str, str]]:
    """``["epochs=3", "width=16"]`` -> ``[("epochs", "3"), ("width", "16")]`` (values unparsed)."""
    out = []
    for item in items:
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{where}: {item!r} is not KEY=VALUE")
        out.append((key.replace("-", "_"), value.strip()))
    return out


@dataclass(frozen=True)
class ConfigSpec:
    """One parsed configuration spec (see the module docstring for the grammar)."""

    spec: str  # as given
    name: str  # the spec without its path
    kind: str  # supervised, finetune, probe or features
    loss: str | None = None
    strategy: str | None = None
    checkpoint: str | None = None  # absolute path of the encoder checkpoint; None: random encoder
    overrides: tuple[tuple[str, str], ...] = ()
    classifier: str | None = None  # features: logreg or forest

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9.=-]+", "_", self.name).strip("_") or "config"


_SPEC_RE = re.compile(r"\s*(?P<body>[^\[\]]+?)\s*(?:\[(?P<ov>[^\[\]]*)\])?\s*")
_SPEC_HELP = (
    "expected LOSS+STRATEGY, finetune:NAME=PATH, probe:NAME=PATH, finetune:random, probe:random or "
    "features:logreg|forest, optionally [key=value,...]"
)
#: The name of the randomly initialised encoder in ``finetune:random`` / ``probe:random``.
RANDOM = "random"


def _checkpoint(path: str) -> str:
    """A shipped encoder's name stays a name (each run resolves and verifies it); anything else
    is made an absolute path, so runs started from another folder find it. A file that exists
    wins over a shipped name, as everywhere a checkpoint is accepted."""
    from ecgcli import pretrained

    try:
        if pretrained.named(path) is not None:
            return path
    except ConfigError:  # a bare word that names no shipped model: a (missing) path, said later
        pass
    return str(Path(path).expanduser().resolve())


def parse_spec(text: str) -> ConfigSpec:
    """Parse one configuration spec; syntax errors are a :class:`ConfigError` naming it."""
    m = _SPEC_RE.fullmatch(str(text))
    if not m:
        raise ConfigError(f"bad configuration {text!r}: {_SPEC_HELP}")
    body = m["body"]
    overrides = (
        tuple(parse_assignments([s for s in m["ov"].split(",") if s.strip()], repr(text))) if m["ov"] else ()
    )
    suffix = f"[{','.join(f'{k}={v}' for k, v in overrides)}]" if overrides else ""
    kind, sep, rest = body.partition(":")
    kind = kind.strip()
    if sep and kind == "features":
        from ecgcli.train.config import FEATURE_CLASSIFIERS

        classifier = rest.strip()
        if classifier not in FEATURE_CLASSIFIERS:
            raise ConfigError(
                f"bad configuration {text!r}: features: takes a classifier, "
                f"{' or '.join(f'features:{c}' for c in FEATURE_CLASSIFIERS)}"
            )
        return ConfigSpec(
            str(text).strip(),
            f"features:{classifier}{suffix}",
            "features",
            overrides=overrides,
            classifier=classifier,
        )
    if sep and kind in ("finetune", "probe"):
        label, eq, path = rest.partition("=")
        label, path = label.strip(), path.strip()
        if label == RANDOM:
            if eq:
                raise ConfigError(
                    f"bad configuration {text!r}: {kind}:random is the randomly initialised encoder and "
                    f"takes no checkpoint; name a checkpoint otherwise, e.g. {kind}:simclr={path or 'PATH'}"
                )
            return ConfigSpec(str(text).strip(), f"{kind}:{RANDOM}{suffix}", kind, overrides=overrides)
        if not eq or not path:
            raise ConfigError(
                f"bad configuration {text!r}: {kind}: needs NAME=PATH, "
                f"e.g. {kind}:simclr=runs/simclr/model.safetensors (or {kind}:random, no checkpoint)"
            )
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", label):
            raise ConfigError(f"bad configuration {text!r}: name {label!r} must be letters, digits, . _ -")
        checkpoint = _checkpoint(path)
        return ConfigSpec(
            str(text).strip(), f"{kind}:{label}{suffix}", kind, None, None, checkpoint, overrides
        )
    loss, plus, strategy = body.partition("+")
    loss, strategy = loss.strip(), strategy.strip()
    if sep or not plus or not loss or not strategy or "+" in strategy:
        raise ConfigError(f"bad configuration {text!r}: {_SPEC_HELP}")
    return ConfigSpec(
        str(text).strip(), f"{loss}+{strategy}{suffix}", "supervised", loss, strategy, None, overrides
    )


def _coerce(key: str, raw: str, declared: Any, where: str) -> Any:
    """``raw`` as a value of the field's declared type (``int``, ``float | None``, ...)."""
    args = [a for a in get_args(declared) if a is not type(None)]
    optional = len(args) < len(get_args(declared))
    base = args[0] if optional and len(args) == 1 else declared
    low = raw.strip().lower()
    if optional and low in ("none", "null", ""):
        return None
    name = getattr(base, "__name__", str(base))
    try:
        if base is bool:
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError
        if base is int:
            return int(raw)
        if base is float:
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError
            return value
        if base is str:
            return raw.strip()
    except ValueError:
        raise ConfigError(f"{where}: {key}={raw!r} is not a valid {name}") from None
    raise ConfigError(f"{where}: {key} cannot be set here")


def _features_fields() -> dict[str, Any]:
    """The FeaturesConfig fields a ``features:`` configuration may set, and their types."""
    from ecgcli.train.config import FeaturesConfig, field_types

    return {k: v for k, v in field_types(FeaturesConfig).items() if k not in _RESERVED}


def _typed(pairs: Sequence[tuple[str, str]], where: str, spec: ConfigSpec | None = None) -> dict[str, Any]:
    if spec is not None and spec.kind == "features":
        return _typed_features(pairs, where)
    known = _supervised_fields()
    out: dict[str, Any] = {}
    for key, raw in pairs:
        if key not in known:
            raise ConfigError(f"{where}: unknown option {key!r}; valid keys: {', '.join(settable_keys())}")
        if key in _RESERVED:
            raise ConfigError(f"{where}: {key} cannot be set here ({_RESERVED[key]})")
        if key in ("loss", "balance_strategy") and (spec is None or spec.kind == "supervised"):
            raise ConfigError(
                f"{where}: {key} comes from each configuration's spec "
                "(LOSS+STRATEGY, or finetune:NAME=PATH[loss=...,balance_strategy=...])"
            )
        out[key] = _coerce(key, raw, known[key], where)
    return out


def _typed_features(pairs: Sequence[tuple[str, str]], where: str) -> dict[str, Any]:
    known = _features_fields()
    out: dict[str, Any] = {}
    for key, raw in pairs:
        if key in _RESERVED:
            raise ConfigError(f"{where}: {key} cannot be set here ({_RESERVED[key]})")
        if key not in known or key == "classifier":
            raise ConfigError(
                f"{where}: {key!r} does not apply to a handcrafted-feature baseline; valid keys: "
                f"{', '.join(sorted(k for k in known if k != 'classifier'))}"
            )
        out[key] = _coerce(key, raw, known[key], where)
    return out
