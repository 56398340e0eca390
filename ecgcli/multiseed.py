"""Multi-seed experiments (``ecg multiseed``): configurations x label fractions x seeds.

A *grid* is a list of configurations, a list of label fractions and a list of seeds; every
(configuration, fraction, seed) *cell* is one ordinary training run (``train_classifier``)
with its own run directory. A seed fixes the labelled subset, the initialisation and the
shuffling, so two configurations with the same seed and fraction saw the same labelled
records: their scores pair up, and they are compared with paired tests.

Configuration specs
-------------------
::

    SPEC      := BODY [ "[" KEY=VALUE { "," KEY=VALUE } "]" ]
    BODY      := LOSS "+" STRATEGY            supervised baseline, e.g. focal+oversample
               | "finetune:" NAME "=" PATH    full fine-tune of the encoder checkpoint PATH
               | "probe:" NAME "=" PATH       linear probe: the encoder is frozen

``KEY`` is any :class:`~ecgcli.train.supervised.SupervisedConfig` field that a user may set
(``select_metric``, ``schedule``, ``width``, ``focal_gamma``, ...; ``loss`` and
``balance_strategy`` only for fine-tunes, whose default is focal+oversample as in
``ecg finetune``). The *name* of a configuration, used in tables, ``--baseline`` and
``ecg compare``, is the spec without its path: ``finetune:simclr``,
``focal+oversample[schedule=cosine]``. Its *slug* (the folder name) replaces anything but
letters, digits, ``.``, ``=`` and ``-`` by ``_``.

Options are applied in this order, later ones winning: ``SupervisedConfig`` defaults, the
grid's common options (``--epochs`` etc.), ``--set KEY=VALUE``, the spec's own
``[KEY=VALUE]``. ``encoder_lr`` from the common options only applies to ``finetune:`` specs;
a fine-tune's ``width`` defaults to the checkpoint's. Every spec and option is validated, and
every encoder checkpoint loaded once, before anything is trained.

Layout and resuming
-------------------
``OUT/<slug>/lf<fraction>/seed<seed>/`` is a run directory as written by
``ecg train supervised``. A cell whose ``metrics.json`` and ``model.safetensors`` exist is
finished and is only read, never retrained; one with a saved epoch but no metrics is resumed
(``resume_classifier``); one that never completed an epoch is started again. ``OUT/multiseed.json``
is rewritten atomically after every finished cell (see :func:`build_results` for its layout).

Rerunning with the same ``OUT`` may *grow* the grid (more seeds, configurations or label
fractions): every finished cell is reused. Leaving out part of the grid already in ``OUT`` is
refused (its results would vanish from multiseed.json), and so is changing a training option
of a configuration already there (old runs would silently mix with new ones), or a cell
whose ``config.json`` does not match the configuration it would be trained with.

Parallel runs
-------------
``jobs=1`` trains the cells one after another in this process, loading the dataset and the
signal cache once (``train_classifier(data=...)``). ``jobs=N>1`` trains N cells at a time in a
spawn-context process pool; each worker uses ``max(1, cores // N)`` torch threads (so two jobs
on two cores do not oversubscribe) and, when CUDA GPUs are visible, its own GPU (round robin
when N exceeds the GPU count). The signal cache is built before the pool starts, so workers
never race to build it; workers send their training events back through a queue.

Statistics
----------
Per (configuration, fraction) and metric: mean, sample standard deviation (ddof 1), the
Student's t 95% interval of the mean, min, max and n (:func:`ecgcli.stats.summarize`).
Between each configuration and the baseline at the same fraction, on the seeds both finished:
paired t-test (the one the tables report), Wilcoxon signed-rank, Welch's t, mean difference
with its t interval, Cohen's d_z and Hedges' g (:func:`ecgcli.stats.paired_tests`). Each run's
test AUROC also gets a percentile bootstrap 95% interval over test records (1000 replicates,
seed 0; :func:`ecgcli.stats.bootstrap_auroc_ci`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ecgcli import __version__
from ecgcli.errors import CheckpointError, ConfigError, DataError, EcgError, Interrupted
from ecgcli.events import BatchDone, Callback, Event, Message, ignore

FORMAT = "ecgcli-multiseed"
VERSION = 1
RESULTS_FILE = "multiseed.json"

#: The reference study's seeds: 42, 52, ..., 132.
DEFAULT_SEEDS: tuple[int, ...] = tuple(range(42, 133, 10))
#: The reference study's two supervised configurations.
DEFAULT_CONFIGS: tuple[str, ...] = ("bce+standard", "focal+oversample")

#: Summarised metrics: key -> (metrics.json section of the split, field, description). ``{}``
#: is ``test`` or ``val``; ``_tuned`` sections use the thresholds tuned on fold 9.
METRICS: dict[str, tuple[str, str, str]] = {
    "auroc": ("{}_tuned", "macro_auroc", "macro AUROC"),
    "f1": ("{}_tuned", "macro_f1", "macro F1 at per-class thresholds tuned on fold 9"),
    "sensitivity": ("{}_tuned", "sensitivity", "micro sensitivity at fold-9-tuned thresholds"),
    "specificity": ("{}_tuned", "specificity", "micro specificity at fold-9-tuned thresholds"),
    "f1@0.5": ("{}", "macro_f1", "macro F1 at threshold 0.5"),
}
HEADLINE = ("auroc", "f1", "sensitivity", "specificity")
PER_CLASS = ("auroc", "f1", "sensitivity", "specificity")

BOOTSTRAP_REPLICATES = 1000
BOOTSTRAP_SEED = 0

STATISTICS_NOTE = {
    "summary": "mean, sample sd (ddof 1), Student's t 95% CI of the mean over seeds, min, max, n",
    "tests": (
        "per metric, configuration minus baseline on the seeds both finished (paired): paired t-test "
        "(reported in tables), Wilcoxon signed-rank, Welch's unpaired t, mean difference with its "
        "t 95% CI, Cohen's d_z, Hedges' g"
    ),
    "table_p_value": "paired t-test",
    "bootstrap": (
        f"percentile bootstrap 95% CI of each run's test macro AUROC over test records "
        f"({BOOTSTRAP_REPLICATES} replicates, seed {BOOTSTRAP_SEED})"
    ),
    "split": "test = fold 10; thresholds tuned on fold 9 (val)",
}

# SupervisedConfig fields that --set and [key=value] may not change, and why.
_RESERVED = {
    "seed": "use --seeds",
    "label_fraction": "use --label-fraction or --label-fractions",
    "ssl_checkpoint": "use a finetune:NAME=PATH or probe:NAME=PATH configuration",
    "freeze_encoder": "use a probe:NAME=PATH configuration",
    "data_root": "use --data-root",
    "cache_dir": "use ECG_CACHE_DIR",
    "runs_dir": "use --out",
    "run_dir": "use --out",
    "name": "names come from the configuration spec",
    "out": "each run's checkpoint is in its run directory",
    "sampling_rate": "use --sampling-rate",
    "device": "use --device",
    "workers": "use --workers",
}
# Fields that do not change what a run computes: ignored when comparing configurations.
_NOT_IDENTITY = {"runs_dir", "run_dir", "name", "out", "device", "workers", "cache_dir"}
_CELL_FIELDS = {"seed", "label_fraction"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


# --- events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridStarted(Event):
    """A grid of ``total`` cells begins; ``finished`` of them were already done."""

    total: int
    finished: int
    out: str
    jobs: int


@dataclass(frozen=True)
class CellStarted(Event):
    """One (configuration, label fraction, seed) cell starts training (or resumes)."""

    key: str
    config: str
    label_fraction: float
    seed: int
    action: str  # "train" or "resume"


@dataclass(frozen=True)
class CellEvent(Event):
    """A training event (epoch, batch, message) of the cell ``key``."""

    key: str
    event: Event


@dataclass(frozen=True)
class CellDone(Event):
    """A cell finished (``reused``: it was finished before this invocation)."""

    key: str
    config: str
    label_fraction: float
    seed: int
    auroc: float | None
    f1: float | None
    seconds: float
    reused: bool
    finished: int
    total: int


# --- parsing -------------------------------------------------------------------------------


def _supervised_fields() -> dict[str, str]:
    from ecgcli.train.supervised import SupervisedConfig

    return {f.name: str(f.type) for f in fields(SupervisedConfig)}


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
    kind: str  # supervised, finetune or probe
    loss: str | None = None
    strategy: str | None = None
    checkpoint: str | None = None  # absolute path of the encoder checkpoint
    overrides: tuple[tuple[str, str], ...] = ()

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9.=-]+", "_", self.name).strip("_") or "config"


_SPEC_RE = re.compile(r"\s*(?P<body>[^\[\]]+?)\s*(?:\[(?P<ov>[^\[\]]*)\])?\s*")
_SPEC_HELP = "expected LOSS+STRATEGY, finetune:NAME=PATH or probe:NAME=PATH, optionally [key=value,...]"


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
    if sep and kind in ("finetune", "probe"):
        label, eq, path = rest.partition("=")
        label, path = label.strip(), path.strip()
        if not eq or not path:
            raise ConfigError(
                f"bad configuration {text!r}: {kind}: needs NAME=PATH, "
                f"e.g. {kind}:simclr=runs/simclr/model.safetensors"
            )
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", label):
            raise ConfigError(f"bad configuration {text!r}: name {label!r} must be letters, digits, . _ -")
        checkpoint = str(Path(path).expanduser().resolve())
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


def _coerce(key: str, raw: str, type_str: str, where: str) -> Any:
    optional = "None" in type_str
    base = type_str.replace("| None", "").replace("None |", "").strip()
    low = raw.strip().lower()
    if optional and low in ("none", "null", ""):
        return None
    try:
        if base == "bool":
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError
        if base == "int":
            return int(raw)
        if base == "float":
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError
            return value
        if base == "str":
            return raw.strip()
    except ValueError:
        raise ConfigError(f"{where}: {key}={raw!r} is not a valid {base}") from None
    raise ConfigError(f"{where}: {key} cannot be set here")


def _typed(pairs: Sequence[tuple[str, str]], where: str, spec: ConfigSpec | None = None) -> dict[str, Any]:
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


# --- the grid ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    spec: ConfigSpec
    label_fraction: float
    seed: int

    @property
    def key(self) -> str:
        return f"{self.spec.name} lf{self.label_fraction:g} seed {self.seed}"

    def path(self, out: Path) -> Path:
        return Path(out) / self.spec.slug / f"lf{self.label_fraction:g}" / f"seed{self.seed}"


@dataclass(frozen=True)
class Grid:
    """A validated grid: built by :func:`build_grid`, run by :func:`run_multiseed`."""

    configs: tuple[ConfigSpec, ...]
    seeds: tuple[int, ...]
    label_fractions: tuple[float, ...]
    common: dict[str, Any]  # SupervisedConfig keyword arguments shared by every cell
    sets: dict[str, Any]  # typed --set overrides
    baseline: str
    out: Path

    def cells(self) -> list[Cell]:
        """Seed-major order, so that paired comparisons exist as early as possible."""
        return [
            Cell(spec, lf, seed)
            for lf in self.label_fractions
            for seed in self.seeds
            for spec in self.configs
        ]

    def config_kwargs(self, spec: ConfigSpec) -> dict[str, Any]:
        """SupervisedConfig arguments of ``spec``, without seed and label fraction."""
        kw = dict(self.common)
        if spec.kind != "finetune":
            kw.pop("encoder_lr", None)
        kw.update(self.sets)
        kw.update(_typed(spec.overrides, f"configuration {spec.spec!r}", spec))
        if spec.kind == "supervised":
            kw["loss"], kw["balance_strategy"] = spec.loss, spec.strategy
        else:
            kw["ssl_checkpoint"] = spec.checkpoint
            kw["freeze_encoder"] = spec.kind == "probe"
            if "width" not in self.sets and "width" not in dict(spec.overrides):
                kw["width"] = None  # the checkpoint's
        return kw

    def cell_config(self, cell: Cell):
        from ecgcli.train.supervised import SupervisedConfig

        kw = self.config_kwargs(cell.spec)
        path = cell.path(self.out)
        kw.update(
            seed=cell.seed,
            label_fraction=cell.label_fraction,
            run_dir=str(path),
            runs_dir=str(self.out),
            name=f"{cell.spec.slug}-lf{cell.label_fraction:g}-s{cell.seed}",
            out=None,
        )
        return SupervisedConfig(**kw)

    def describe(self) -> dict[str, Any]:
        """The grid as stored in multiseed.json (options: what each configuration trains with)."""
        return {
            "configs": [
                {
                    "name": s.name,
                    "spec": s.spec,
                    "slug": s.slug,
                    "kind": s.kind,
                    "options": identity(self.cell_config(Cell(s, self.label_fractions[0], 0)).to_dict()),
                }
                for s in self.configs
            ],
            "seeds": list(self.seeds),
            "label_fractions": list(self.label_fractions),
            "baseline": self.baseline,
        }


def identity(config: dict[str, Any], cell: bool = False) -> dict[str, Any]:
    """The fields of a run configuration that change what it computes (``cell``: with the
    seed and label fraction too)."""
    drop = _NOT_IDENTITY | (set() if cell else _CELL_FIELDS)
    return {k: v for k, v in config.items() if k not in drop}


def build_grid(
    configs: Sequence[str] | None,
    seeds: Sequence[int],
    label_fractions: Sequence[float],
    common: dict[str, Any],
    sets: Sequence[str] = (),
    out: Path | str = "runs/multiseed",
    baseline: str | None = None,
    check_checkpoints: bool = True,
) -> Grid:
    """Parse and validate everything before any training: one clear line per problem.

    ``common`` holds SupervisedConfig arguments shared by every cell (settings such as
    ``data_root`` and the pass-through options); ``sets`` are ``KEY=VALUE`` strings.
    """
    from ecgcli.train.supervised import SupervisedConfig

    specs = [parse_spec(c) for c in (configs or DEFAULT_CONFIGS)]
    if not specs:
        raise ConfigError("no configuration given")
    for attr, what in (("name", "name"), ("slug", "folder name")):
        seen: dict[str, str] = {}
        for s in specs:
            value = getattr(s, attr)
            if value in seen:
                raise ConfigError(
                    f"configurations {seen[value]!r} and {s.spec!r} have the same {what} {value!r}"
                )
            seen[value] = s.spec
    if not seeds:
        raise ConfigError("no seeds given")
    if len(set(seeds)) != len(seeds) or any(int(s) != s or s < 0 for s in seeds):
        raise ConfigError(f"seeds must be distinct non-negative integers, got {list(seeds)}")
    if not label_fractions:
        raise ConfigError("no label fraction given")
    known = _supervised_fields()
    unknown = [k for k in common if k not in known]
    if unknown:
        raise ConfigError(f"unknown training option(s) {', '.join(unknown)}")
    common = dict(common)
    if common.get("data_root"):
        common["data_root"] = str(Path(common["data_root"]).expanduser().resolve())
    grid = Grid(
        configs=tuple(specs),
        seeds=tuple(int(s) for s in seeds),
        label_fractions=tuple(float(f) for f in label_fractions),
        common=common,
        sets=_typed(parse_assignments(sets), "--set"),
        baseline="",
        out=Path(out),
    )
    names = [s.name for s in specs]
    if baseline is None:
        baseline = next((s.name for s in specs if s.kind == "supervised"), specs[0].name)
    elif baseline not in names:
        raise ConfigError(f"--baseline {baseline!r} is not one of the configurations: {', '.join(names)}")
    grid = Grid(grid.configs, grid.seeds, grid.label_fractions, grid.common, grid.sets, baseline, grid.out)
    for spec in specs:
        for lf in grid.label_fractions:
            cfg = grid.cell_config(Cell(spec, lf, grid.seeds[0]))
            try:
                cfg.check()
            except ConfigError as exc:
                raise ConfigError(f"configuration {spec.spec!r}: {exc}") from None
        if spec.kind != "supervised" and check_checkpoints:
            from ecgcli.train.finetune import pretrained_encoder

            pretrained_encoder(SupervisedConfig(**{**grid.config_kwargs(spec), "seed": grid.seeds[0]}))
    return grid


# --- results file --------------------------------------------------------------------------


def results_path(out: Path) -> Path:
    return Path(out) / RESULTS_FILE


def load_results(path: Path) -> dict[str, Any]:
    """Read and check a multiseed.json: format, version and the keys readers rely on."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the results file ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise ConfigError(
            f"{path}: not valid JSON (half-written or damaged); delete it and rerun `ecg multiseed` "
            "with the same --out to rebuild it from the finished runs"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{path}: not an ecgcli multiseed results file (format is not {FORMAT!r})")
    if data.get("version") != VERSION:
        raise ConfigError(
            f"{path}: results file version {data.get('version')!r} is not supported "
            f"(this ecgcli {__version__} reads version {VERSION})"
        )
    for key in ("grid", "results", "comparisons", "class_names", "test_set"):
        if key not in data:
            raise ConfigError(
                f"{path}: incomplete results file (no {key!r}); rerun `ecg multiseed` to rebuild it"
            )
    return data


def json_safe(value: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python, recursively (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def test_set_id(ecg_ids: np.ndarray) -> dict[str, Any]:
    """A fingerprint of a test set: its size and a hash of its sorted ecg_ids."""
    ids = np.sort(np.asarray(ecg_ids, dtype=np.int64))
    return {"n": int(ids.size), "sha256": hashlib.sha256(ids.tobytes()).hexdigest()[:16]}


def scores(metrics: dict[str, Any], split: str) -> dict[str, float | None]:
    """The summarised metrics of one split (``test`` or ``val``) from a metrics.json."""
    try:
        return json_safe({k: metrics[sec.format(split)][f] for k, (sec, f, _) in METRICS.items()})
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"metrics.json lacks {exc}") from None


def read_cell(
    path: Path, out: Path | None = None, seed: int | None = None, previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One finished run as a results record: scores, per-class test scores, bootstrap CI.

    ``previous`` is this run's record in the last multiseed.json: when the run's metrics.json
    is byte for byte the one it was built from (``metrics_sha256``), its bootstrap interval is
    reused instead of recomputed (half a second per run on PTB-XL's 2,158 test records).
    """
    from ecgcli.stats import bootstrap_auroc_ci

    path = Path(path)
    try:
        raw = (path / "metrics.json").read_bytes()
        digest = hashlib.sha256(raw).hexdigest()[:16]
        metrics = json.loads(raw)
        side = json.loads((path / "model.json").read_text())
        with np.load(path / "predictions.npz", allow_pickle=False) as npz:
            test_y, test_prob, test_ids = npz["test_y"], npz["test_prob"], npz["test_ecg_id"]
        config = json.loads((path / "config.json").read_text())
        record = {
            "seed": int(config["seed"] if seed is None else seed),
            "run_dir": os.path.relpath(path, out) if out is not None else str(path),
            "val": scores(metrics, "val"),
            "test": scores(metrics, "test"),
            "per_class": {
                cls: {k: m[k] for k in PER_CLASS} for cls, m in metrics["test_tuned"]["per_class"].items()
            },
            "bootstrap_auroc": (
                previous["bootstrap_auroc"]
                if previous and previous.get("metrics_sha256") == digest and previous.get("bootstrap_auroc")
                else bootstrap_auroc_ci(
                    test_y, test_prob, BOOTSTRAP_REPLICATES, seed=BOOTSTRAP_SEED
                ).to_dict()
            ),
            "best_epoch": metrics.get("best_epoch"),
            "epochs_run": metrics.get("epochs_run"),
            "seconds": (metrics.get("timing") or {}).get("total_seconds"),
            "class_names": list(side["class_names"]),
            "test_set": test_set_id(test_ids),
            "cache_id": (metrics.get("data") or {}).get("cache_id"),
            "metrics_sha256": digest,
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"{path}: finished run cannot be read ({type(exc).__name__}: {exc}); "
            "delete this directory to retrain it"
        ) from None
    except EcgError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return json_safe(record)


def build_results(grid: Grid, records: dict[tuple[str, float, int], dict[str, Any]]) -> dict[str, Any]:
    """The multiseed.json document for the finished ``records`` of ``grid``.

    Layout::

        format, version, ecgcli_version, updated, complete, cells {total, finished}
        grid        {configs [{name, spec, slug, kind, options}], seeds, label_fractions, baseline}
        statistics  what each number is; metrics: what each metric key means
        class_names, test_set {n, sha256}   shared by every run (checked)
        results     [{config, kind, label_fraction, n, runs [per-seed record],
                      summary {test|val: {metric: {mean, std, ci_low, ci_high, min, max, n}}}}]
        comparisons [{label_fraction, baseline, config, n_pairs, seeds,
                      tests {metric: {n, mean_diff, diff_ci_low, diff_ci_high, t_stat, t_p,
                                      wilcoxon_stat, wilcoxon_p, welch_t, welch_p, cohens_dz, hedges_g}}}]

    A per-seed record holds seed, run_dir (relative to the file), val and test scores,
    per-class test scores, bootstrap_auroc {estimate, ci_low, ci_high, n_boot}, best_epoch,
    epochs_run, seconds, class_names, test_set, cache_id and metrics_sha256 (of the run's
    metrics.json, to reuse the bootstrap on reruns). Undefined numbers are null.
    """
    from ecgcli.stats import paired_tests, summarize

    cells = grid.cells()
    finished = [records[k] for k in _keys(cells) if k in records]
    class_names, test_set = _shared(finished, grid.out)
    results = []
    by_group: dict[tuple[str, float], dict[int, dict[str, Any]]] = {}
    for lf in grid.label_fractions:
        for spec in grid.configs:
            runs = [records[(spec.name, lf, s)] for s in grid.seeds if (spec.name, lf, s) in records]
            by_group[(spec.name, lf)] = {r["seed"]: r for r in runs}
            summary: dict[str, dict[str, Any]] = {}
            for split in ("test", "val"):
                summary[split] = {}
                for metric in METRICS:
                    values = [r[split][metric] for r in runs if r[split][metric] is not None]
                    summary[split][metric] = summarize(values).to_dict() if values else None
            results.append(
                {
                    "config": spec.name,
                    "kind": spec.kind,
                    "label_fraction": lf,
                    "n": len(runs),
                    "runs": runs,
                    "summary": summary,
                }
            )
    comparisons = []
    for lf in grid.label_fractions:
        base = by_group[(grid.baseline, lf)]
        for spec in grid.configs:
            if spec.name == grid.baseline:
                continue
            other = by_group[(spec.name, lf)]
            seeds = sorted(set(base) & set(other))
            tests = {}
            for metric in METRICS:
                pairs = [
                    (base[s]["test"][metric], other[s]["test"][metric])
                    for s in seeds
                    if base[s]["test"][metric] is not None and other[s]["test"][metric] is not None
                ]
                tests[metric] = paired_tests([a for a, _ in pairs], [b for _, b in pairs]).to_dict()
            comparisons.append(
                {
                    "label_fraction": lf,
                    "baseline": grid.baseline,
                    "config": spec.name,
                    "n_pairs": len(seeds),
                    "seeds": seeds,
                    "tests": tests,
                }
            )
    return json_safe(
        {
            "format": FORMAT,
            "version": VERSION,
            "ecgcli_version": __version__,
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "complete": len(finished) == len(cells),
            "cells": {"total": len(cells), "finished": len(finished)},
            "grid": grid.describe(),
            "statistics": STATISTICS_NOTE,
            "metrics": {k: f"test/val {d}" for k, (_, _, d) in METRICS.items()},
            "class_names": class_names,
            "test_set": test_set,
            "results": results,
            "comparisons": comparisons,
        }
    )


def _keys(cells: Sequence[Cell]) -> list[tuple[str, float, int]]:
    return [(c.spec.name, c.label_fraction, c.seed) for c in cells]


def _shared(records: Sequence[dict[str, Any]], out: Path) -> tuple[list[str] | None, dict | None]:
    """Class order and test set every record shares; a mismatch means the data changed."""
    if not records:
        return None, None
    first = records[0]
    for r in records[1:]:
        if r["class_names"] != first["class_names"]:
            raise DataError(
                f"{out}: runs {first['run_dir']} and {r['run_dir']} have different class orders "
                f"({','.join(first['class_names'])} vs {','.join(r['class_names'])}); use another --out"
            )
        if r["test_set"] != first["test_set"]:
            raise DataError(
                f"{out}: runs {first['run_dir']} and {r['run_dir']} were tested on different test sets "
                f"({first['test_set']} vs {r['test_set']}): the data changed; use another --out"
            )
    return first["class_names"], first["test_set"]


def write_results(grid: Grid, records: dict[tuple[str, float, int], dict[str, Any]]) -> dict[str, Any]:
    from ecgcli.checkpoint import write_json_atomic

    doc = build_results(grid, records)
    write_json_atomic(results_path(grid.out), doc)
    return doc


# --- running -------------------------------------------------------------------------------


def check_compatible(grid: Grid, previous: dict[str, Any], where: Path) -> None:
    """Refuse to mix runs of different options under one --out, or to drop part of the grid
    from its results file: a grid may grow (configurations, seeds, fractions), never shrink."""
    old = {c["name"]: c for c in previous["grid"].get("configs", [])}
    missing = [
        f"{what} {', '.join(str(v) for v in gone)}"
        for what, gone in (
            ("configurations", [n for n in old if n not in {s.name for s in grid.configs}]),
            ("seeds", [s for s in previous["grid"].get("seeds", []) if s not in grid.seeds]),
            (
                "label fractions",
                [f for f in previous["grid"].get("label_fractions", []) if f not in grid.label_fractions],
            ),
        )
        if gone
    ]
    if missing:
        raise ConfigError(
            f"{where} holds a larger grid (also {'; '.join(missing)}); rerun with all of it "
            "(a grid may grow, never shrink) or use another --out"
        )
    for spec in grid.describe()["configs"]:
        before = old.get(spec["name"])
        if before is None:
            continue
        diff = _diff(before.get("options", {}), spec["options"])
        if diff:
            raise ConfigError(
                f"{where} holds configuration {spec['name']!r} trained with {diff}; "
                "use another --out, or the same options"
            )


def _diff(stored: dict[str, Any], wanted: dict[str, Any]) -> str:
    """``"epochs=2 (now 3), lr=..."`` for the keys present in both that differ."""
    parts = [
        f"{k}={stored[k]!r} (now {wanted[k]!r})" for k in wanted if k in stored and stored[k] != wanted[k]
    ]
    return ", ".join(parts)


def cell_status(path: Path) -> str:
    """What to do with a cell's run directory (see :meth:`ecgcli.runs.RunDir.status`)."""
    from ecgcli.runs import RunDir

    return RunDir(Path(path)).status()


def _check_cell_config(grid: Grid, cell: Cell) -> None:
    path = cell.path(grid.out)
    try:
        stored = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{path}: its config.json is unreadable ({exc}); delete the directory to retrain"
        ) from None
    diff = _diff(identity(stored, cell=True), identity(grid.cell_config(cell).to_dict(), cell=True))
    if diff:
        raise ConfigError(f"{path} was trained with {diff}; use another --out, or the same options")


def train_cell(cfg: Any, status: str, callback: Callback, data: Any = None) -> None:
    """Train (or resume) one cell; its run directory is ``cfg.run_dir``."""
    from ecgcli.train.supervised import resume_classifier, train_classifier

    path = Path(cfg.run_dir)
    if status == "resume":
        resume_classifier(path, callback, data=data)
        return
    if status == "restart":
        from ecgcli.runs import RunDir

        RunDir(path).clear_unstarted()
    train_classifier(cfg, callback, data=data)


def _shared_data(common: dict[str, Any], callback: Callback) -> tuple[Any, Any]:
    """The dataset tables and the signal cache, loaded (or built) once."""
    from ecgcli.data.cache import ensure_cache
    from ecgcli.data.ptbxl import load_ptbxl

    ds = load_ptbxl(Path(common.get("data_root", "data/PTB-XL")), int(common.get("sampling_rate", 100)))
    store = ensure_cache(
        ds, Path(common.get("cache_dir", "data/cache")), int(common.get("workers", 1)), callback
    )
    return ds, store


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def resolve_jobs(jobs: int, device: str) -> int:
    """``jobs`` as given, or for 0: one per visible CUDA GPU (1 without GPUs)."""
    if jobs < 0:
        raise ConfigError(f"--jobs must be 0 (one per GPU) or more, got {jobs}")
    if jobs > 0:
        return jobs
    return max(1, _gpu_count(device))


def _gpu_count(device: str) -> int:
    if device not in ("auto", "cuda"):
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_multiseed(grid: Grid, callback: Callback = ignore, jobs: int = 1) -> dict[str, Any]:
    """Run every unfinished cell of ``grid``; returns the final multiseed.json document.

    Raises :class:`~ecgcli.errors.Interrupted` on Ctrl-C (or a ``KeyboardInterrupt`` raised by
    ``callback``) after saving what finished: rerunning the same grid continues from there.
    """
    out = grid.out
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write --out {out}: {exc.strerror or exc}") from None
    previous: dict[tuple[str, float, int], dict[str, Any]] = {}
    if results_path(out).exists():
        doc = load_results(results_path(out))
        check_compatible(grid, doc, out)
        for res in doc["results"]:
            for run in res.get("runs") or []:
                previous[(res["config"], float(res["label_fraction"]), int(run["seed"]))] = run
    cells = grid.cells()
    status = {c: cell_status(c.path(out)) for c in cells}
    for c in cells:
        if status[c] in ("finished", "resume"):
            _check_cell_config(grid, c)
    records: dict[tuple[str, float, int], dict[str, Any]] = {}
    for c in cells:
        if status[c] == "finished":
            key = (c.spec.name, c.label_fraction, c.seed)
            records[key] = read_cell(c.path(out), out, c.seed, previous.get(key))
    total = len(cells)
    callback(GridStarted(total, len(records), str(out), jobs))
    write_results(grid, records)
    for c in cells:
        rec = records.get((c.spec.name, c.label_fraction, c.seed))
        if rec is not None:
            callback(_done_event(c, rec, 0.0, True, len(records), total))
    todo = [c for c in cells if status[c] != "finished"]

    def finish(cell: Cell, seconds: float) -> None:
        rec = read_cell(cell.path(out), out, cell.seed)
        records[(cell.spec.name, cell.label_fraction, cell.seed)] = rec
        write_results(grid, records)
        callback(_done_event(cell, rec, seconds, False, len(records), total))

    try:
        if todo and jobs > 1:
            _run_parallel(grid, todo, status, jobs, callback, finish)
        elif todo:
            _run_serial(grid, todo, status, callback, finish)
    except KeyboardInterrupt:
        raise Interrupted(_interrupted_message(len(records), total, out)) from None
    except Interrupted:
        raise Interrupted(_interrupted_message(len(records), total, out)) from None
    return write_results(grid, records)


def _interrupted_message(done: int, total: int, out: Path) -> str:
    return (
        f"interrupted: {done} of {total} runs finished and saved in {out}; run the same command again "
        "to continue (finished runs are reused, an interrupted one resumes from its last saved epoch)"
    )


def _done_event(
    cell: Cell, rec: dict[str, Any], seconds: float, reused: bool, done: int, total: int
) -> CellDone:
    return CellDone(
        cell.key,
        cell.spec.name,
        cell.label_fraction,
        cell.seed,
        rec["test"]["auroc"],
        rec["test"]["f1"],
        seconds,
        reused,
        done,
        total,
    )


def _run_serial(
    grid: Grid,
    todo: Sequence[Cell],
    status: dict[Cell, str],
    callback: Callback,
    finish: Callable[[Cell, float], None],
) -> None:
    from ecgcli.train.data import TrainingData

    shared = None
    for cell in todo:
        if shared is None:
            shared = _shared_data(grid.common, callback)
        ds, store = shared
        data = TrainingData(ds, ds.split(cell.label_fraction, cell.seed), store)
        callback(CellStarted(cell.key, cell.spec.name, cell.label_fraction, cell.seed, _action(status[cell])))
        t0 = time.perf_counter()
        try:
            train_cell(grid.cell_config(cell), status[cell], _wrap(cell.key, callback), data)
        except Interrupted:
            raise
        except EcgError as exc:
            exc.args = (f"{cell.key}: {exc}",)
            raise
        finish(cell, time.perf_counter() - t0)


def _action(status: str) -> str:
    return "resume" if status == "resume" else "train"


def _wrap(key: str, callback: Callback) -> Callback:
    def handle(event: Event) -> None:
        callback(CellEvent(key, event))

    return handle


# --- parallel ------------------------------------------------------------------------------
#
# Ctrl-C: workers ignore SIGINT (a terminal sends it to the whole process group); the parent
# catches it, sets the shared stop event and keeps draining the event queue. Each worker's
# callback sees the event at its next batch and raises KeyboardInterrupt inside the training
# loop, which keeps the last completed epoch and raises Interrupted; cells still queued see the
# event before they start. Only then is the pool shut down, so no worker ever blocks on a full
# event pipe. A second Ctrl-C stops waiting and terminates the workers.

_QUEUE: Any = None  # the event queue of a worker process
_STOP: Any = None  # set by the parent to stop every worker at its next batch
_WORKER_DATA: dict[tuple[Any, ...], Any] = {}


def _worker_init(threads: int, queue: Any, stop: Any, gpu_queue: Any) -> None:
    global _QUEUE, _STOP
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides (see above)
    if gpu_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_queue.get())  # before CUDA starts
    import torch

    torch.set_num_threads(threads)
    _QUEUE, _STOP = queue, stop


def _send(event: Event) -> None:
    import contextlib

    with contextlib.suppress(Exception):  # the parent went away: training goes on
        _QUEUE.put(event)


def _worker_run(task: dict[str, Any]) -> float:
    """Train one cell in a worker process; events go back through the queue."""
    from ecgcli.train.data import TrainingData
    from ecgcli.train.supervised import SupervisedConfig

    if _STOP.is_set():
        raise Interrupted("stopped before it started")
    cfg = SupervisedConfig.from_dict(task["config"])
    key = task["key"]
    data_key = (cfg.data_root, cfg.cache_dir, cfg.sampling_rate)
    if data_key not in _WORKER_DATA:
        _WORKER_DATA[data_key] = _shared_data(task["config"], ignore)
    ds, store = _WORKER_DATA[data_key]
    data = TrainingData(ds, ds.split(cfg.label_fraction, cfg.seed), store)
    _send(CellStarted(key, task["name"], cfg.label_fraction, cfg.seed, _action(task["status"])))
    last = [0.0]

    def forward(event: Event) -> None:
        if _STOP.is_set():
            raise KeyboardInterrupt  # inside the loop: becomes Interrupted, last epoch kept
        if isinstance(event, BatchDone) and event.batch != event.n_batches:
            now = time.monotonic()
            if now - last[0] < 0.25:  # at most four batch updates a second per worker
                return
            last[0] = now
        _send(CellEvent(key, event))

    t0 = time.perf_counter()
    train_cell(cfg, task["status"], forward, data)
    return time.perf_counter() - t0


def _run_parallel(
    grid: Grid,
    todo: Sequence[Cell],
    status: dict[Cell, str],
    jobs: int,
    callback: Callback,
    finish: Callable[[Cell, float], None],
) -> None:
    import multiprocessing as mp
    import queue as queue_mod
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    _shared_data(grid.common, callback)  # build the cache here, once, before any worker needs it
    jobs = min(jobs, len(todo))
    ctx = mp.get_context("spawn")
    events = ctx.Queue()
    stop = ctx.Event()
    gpus = _gpu_count(str(grid.common.get("device", "auto")))
    gpu_queue = None
    if gpus:
        gpu_queue = ctx.Queue()
        for i in range(jobs):
            gpu_queue.put(i % gpus)
    threads = max(1, available_cores() // jobs)
    callback(
        Message(
            f"{jobs} parallel jobs, {threads} torch thread(s) each" + (f", on {gpus} GPU(s)" if gpus else "")
        )
    )

    def drain() -> None:
        while True:
            try:
                event = events.get_nowait()
            except (queue_mod.Empty, OSError, EOFError, ValueError):
                return
            callback(event)

    pool = ProcessPoolExecutor(
        jobs, mp_context=ctx, initializer=_worker_init, initargs=(threads, events, stop, gpu_queue)
    )
    error: tuple[Cell | None, BaseException] | None = None
    futures = {
        pool.submit(
            _worker_run,
            {
                "key": cell.key,
                "name": cell.spec.name,
                "status": status[cell],
                "config": grid.cell_config(cell).to_dict(),
            },
        ): cell
        for cell in todo
    }
    pending = set(futures)
    try:
        while pending:
            try:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                drain()
                for future in done:
                    if future.cancelled():
                        continue
                    exc = future.exception()
                    if exc is None:
                        finish(futures[future], future.result())
                    elif error is None or (
                        isinstance(error[1], Interrupted) and not isinstance(exc, Interrupted)
                    ):
                        error = (futures[future], exc)
                        stop.set()  # running cells stop at their next batch, queued ones never start
                        for p in pending:
                            p.cancel()
            except KeyboardInterrupt:
                if stop.is_set():  # a second Ctrl-C: stop waiting
                    for proc in list(getattr(pool, "_processes", {}).values()):
                        proc.terminate()
                    raise
                stop.set()
                error = error or (None, KeyboardInterrupt())
                for p in pending:
                    p.cancel()
    finally:
        # shut down while draining: a worker exits only once its queued events are in the pipe
        import threading

        closer = threading.Thread(target=pool.shutdown, kwargs={"wait": True, "cancel_futures": True})
        closer.start()
        while closer.is_alive():
            drain()
            closer.join(0.05)
        drain()
        events.close()
    if error is not None:
        cell, exc = error
        if isinstance(exc, (Interrupted, KeyboardInterrupt)):
            raise Interrupted(str(exc))
        if isinstance(exc, EcgError) and cell is not None:
            exc.args = (f"{cell.key}: {exc}",)
        raise exc
