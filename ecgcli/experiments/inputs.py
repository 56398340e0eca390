"""The inputs of ``ecg compare``: run directories and multiseed results read as *methods*.

A multiseed file gives one method per (configuration, label fraction), named after the
configuration. Single runs are named ``LOSS+STRATEGY``, ``finetune:<checkpoint folder>`` or
``probe:<checkpoint folder>`` (``probe:random``: a frozen encoder without checkpoint; a run
from scratch with ``--encoder-lr`` is ``finetune:random``), or ``features:<classifier>``; runs
with the same name, label fraction and training options (everything but the seed and paths)
are grouped as seeds of one method. Every input must share the task, the class order and the
test set (:func:`check_agreement`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecgcli import pretrained
from ecgcli.errors import ConfigError
from ecgcli.events import Callback, Message, ignore
from ecgcli.experiments.grid import identity
from ecgcli.experiments.results import (
    METRICS,
    PER_CLASS,
    RESULTS_FILE,
    calibration_scores,
    load_results,
    scores,
    test_set_id,
)
from ecgcli.scoring.stats import UNIT_INTERVAL, Summary, summarize


@dataclass
class Method:
    """One row of the comparison: a configuration at one label fraction, over its seeds."""

    name: str
    kind: str  # supervised, finetune or probe
    label_fraction: float
    origin: str  # "multiseed" or "runs"
    source: str  # the input it came from (for messages)
    class_names: list[str]
    test_set: dict[str, Any]
    seeds: list[int] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)  # per seed: METRICS key -> value
    val: list[dict[str, Any]] = field(default_factory=list)  # per seed: the same on fold 9
    per_class: list[dict[str, dict[str, Any]]] = field(default_factory=list)
    run_dirs: list[Path] = field(default_factory=list)
    label: str = ""  # the input folder's name, used to tell same-named methods apart
    task: str = "superdiagnostic"  # the PTB-XL label set it was trained on

    @property
    def n(self) -> int:
        return len(self.scores)

    def summary(self, metric: str) -> Summary | None:
        values = [s[metric] for s in self.scores if s.get(metric) is not None]
        return summarize(values, bounds=UNIT_INTERVAL) if values else None

    def class_summary(self, cls: str, metric: str) -> Summary | None:
        values = [pc[cls][metric] for pc in self.per_class if (pc.get(cls) or {}).get(metric) is not None]
        return summarize(values, bounds=UNIT_INTERVAL) if values else None


# --- reading inputs ------------------------------------------------------------------------


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    except ValueError:
        raise ConfigError(f"{path}: {what} is not valid JSON (half-written or damaged)") from None


def method_name(config: dict[str, Any]) -> tuple[str, str]:
    """A single run's method name and kind, from its config.json."""
    ckpt = config.get("ssl_checkpoint")
    if config.get("kind") == "ensemble":  # `ecg ensemble`: its members' encoders
        name, kind = "ensemble:" + "+".join(map(str, config.get("encoders") or ["?"])), "ensemble"
    elif config.get("classifier") and "loss" not in config:  # a handcrafted-feature baseline
        name, kind = f"features:{config['classifier']}", "features"
    elif not ckpt and (config.get("freeze_encoder") or config.get("encoder_lr") is not None):
        kind = "probe" if config.get("freeze_encoder") else "finetune"
        name = f"{kind}:random"
    elif ckpt:
        kind = "probe" if config.get("freeze_encoder") else "finetune"
        name, kind = f"{kind}:{Path(str(ckpt)).parent.name or Path(str(ckpt)).stem}", kind
    else:
        name, kind = f"{config.get('loss')}+{config.get('balance_strategy')}", "supervised"
    if str(config.get("leads") or "12") != "12":  # a reduced-lead model is its own method
        name += f"+leads:{config['leads']}"
    # a calibrated run is its own method (same AUROC, different probabilities)
    return (f"{name}+{config['calibrate']}" if config.get("calibrate") else name), kind


def read_run(path: Path) -> tuple[dict[str, Any], Method]:
    """One run directory as a one-seed :class:`Method` (and its config)."""
    path = Path(path)
    if not (path / "metrics.json").is_file():
        raise ConfigError(
            f"{path}: no metrics.json (an unfinished run? "
            f"resume it with `ecg train supervised --resume {path}`)"
        )
    config = _read_json(path / "config.json", "the run's config.json")
    metrics = _read_json(path / "metrics.json", "the run's metrics.json")
    if not isinstance(config, dict) or not isinstance(metrics, dict):
        raise ConfigError(f"{path}: config.json or metrics.json is not a JSON object")
    try:
        per_class = {
            cls: {k: m.get(k) for k in PER_CLASS} for cls, m in metrics["test_tuned"]["per_class"].items()
        }
        run_scores = {**scores(metrics, "test"), **calibration_scores(metrics)}
    except (KeyError, TypeError, AttributeError, ConfigError):
        raise ConfigError(
            f"{path}: metrics.json has no test scores (not an `ecg train supervised` run?)"
        ) from None
    try:
        val_scores = scores(metrics, "val")  # what `ecg compare --arm` chooses by
    except ConfigError:
        val_scores = {}
    side_path = path / "model.json"
    class_names = list(per_class)
    if side_path.is_file():
        side = _read_json(side_path, "the model sidecar")
        class_names = list(side.get("class_names") or class_names)
    data = metrics.get("data") or {}
    test_set: dict[str, Any] = {"n": data.get("n_test"), "cache_id": data.get("cache_id")}
    preds = path / "predictions.npz"
    if preds.is_file():
        try:
            with np.load(preds, allow_pickle=False) as npz:
                test_set = {**test_set_id(npz["test_ecg_id"]), "cache_id": data.get("cache_id")}
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"{preds}: unreadable predictions ({exc})") from None
    name, kind = method_name(config)
    method = Method(
        name=name,
        kind=kind,
        label_fraction=float(config.get("label_fraction", math.nan)),
        origin="runs",
        source=str(path),
        class_names=class_names,
        test_set=test_set,
        task=str(config.get("task", "superdiagnostic")),
        seeds=[int(config.get("seed", -1))],
        scores=[run_scores],
        val=[val_scores],
        per_class=[per_class],
        run_dirs=[path],
        label=path.name,
    )
    return config, method


def read_multiseed(path: Path, callback: Callback = ignore) -> list[Method]:
    """The methods of a multiseed.json, one per (configuration, label fraction) with runs."""
    path = Path(path)
    doc = load_results(path)
    file = path / RESULTS_FILE if path.is_dir() else path
    root = file.parent
    cells = doc.get("cells") or {}
    if not doc.get("complete", True):
        callback(
            Message(
                f"{file}: {cells.get('finished', '?')} of {cells.get('total', '?')} runs finished; "
                "comparing those",
                "warning",
            )
        )
    methods = []
    try:
        for res in doc["results"]:
            runs = res.get("runs") or []
            if not runs:
                continue
            methods.append(
                Method(
                    name=str(res["config"]),
                    kind=str(res.get("kind", "supervised")),
                    label_fraction=float(res["label_fraction"]),
                    origin="multiseed",
                    source=str(file),
                    class_names=list(doc["class_names"] or []),
                    task=str(_grid_task(doc, str(res["config"]))),
                    test_set=dict(doc["test_set"] or {}),
                    seeds=[int(r["seed"]) for r in runs],
                    scores=[
                        {**{k: r["test"].get(k) for k in METRICS}, **(r.get("calibration") or {})}
                        for r in runs
                    ],
                    val=[{k: (r.get("val") or {}).get(k) for k in METRICS} for r in runs],
                    per_class=[r.get("per_class") or {} for r in runs],
                    run_dirs=[root / r["run_dir"] for r in runs],
                    label=root.name,
                )
            )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{file}: malformed results ({type(exc).__name__}: {exc})") from None
    if not methods:
        raise ConfigError(f"{file}: no finished runs yet")
    return methods


def read_shipped(name: str) -> Method:
    """A shipped classifier as a one-seed method, from the fold-10 numbers of its card (the
    manifest): AUROC, AUPRC, Fmax, macro F1 at its fold-9 thresholds and ECE; it has no
    sensitivity, specificity or per-class scores to show."""
    model = pretrained.get(name)
    if model.kind != "classifier":
        raise ConfigError(f"{name} is a pretrained encoder: it has no fold-10 scores to compare")
    f = model.fold10
    config = json.loads(model.verified("sidecar").read_text(encoding="utf-8")).get("config") or {}
    score = {k: None for k in METRICS} | {
        "auroc": f.get("macro_auroc"),
        "auprc": f.get("macro_auprc"),
        "fmax": f.get("fmax"),
        "f1": f.get("macro_f1_tuned"),
        "ece": f.get("ece"),
    }
    return Method(
        name=name,
        kind="supervised",
        label_fraction=float(config.get("label_fraction", 1.0)),
        origin="shipped",
        source=f"the shipped model {name}",
        class_names=list(model.classes),
        test_set=dict(f.get("test_set") or {"n": f.get("n")}),
        task=model.task,
        seeds=[int(config.get("seed", -1))],
        scores=[score],
        val=[{}],
        per_class=[{}],
        label=name,
    )


def load_inputs(paths: Sequence[Path | str], callback: Callback = ignore) -> list[Method]:
    """Read every input; group single runs into methods; make names unique; check agreement."""
    if not paths:
        raise ConfigError("give at least one run directory or multiseed results file")
    methods: list[Method] = []
    groups: dict[tuple[str, float, str], Method] = {}
    for raw in paths:
        p = Path(raw)
        if p.is_dir() and (p / RESULTS_FILE).is_file():
            methods += read_multiseed(p, callback)
        elif p.is_dir() and (p / "metrics.json").is_file():
            _add_run(p, groups, methods)
        elif p.is_file() and p.name == "metrics.json":
            _add_run(p.parent, groups, methods)
        elif p.is_file():
            methods += read_multiseed(p, callback)
        elif p.is_dir():
            raise ConfigError(
                f"{p}: neither a run directory (no metrics.json) nor a multiseed output (no {RESULTS_FILE})"
            )
        elif pretrained.looks_like_name(raw):
            methods.append(read_shipped(str(raw)))
        else:
            raise ConfigError(f"{p}: not found")
    _unique_names(methods)
    check_agreement(methods)
    return methods


def _add_run(path: Path, groups: dict[tuple[str, float, str], Method], methods: list[Method]) -> None:
    config, run = read_run(path)
    key = (run.name, run.label_fraction, json.dumps(identity(config), sort_keys=True, default=str))
    group = groups.get(key)
    if group is None:
        groups[key] = run
        methods.append(run)
        return
    check_agreement([group, run])
    if run.seeds[0] in group.seeds:
        other = group.run_dirs[group.seeds.index(run.seeds[0])]
        raise ConfigError(
            f"{other} and {path} are the same configuration and seed {run.seeds[0]}; pass one of them"
        )
    group.seeds += run.seeds
    group.scores += run.scores
    group.val += run.val
    group.per_class += run.per_class
    group.run_dirs += run.run_dirs


def _unique_names(methods: list[Method]) -> None:
    def clashes() -> list[Method]:
        seen: dict[tuple[str, float], int] = {}
        for m in methods:
            seen[(m.name, m.label_fraction)] = seen.get((m.name, m.label_fraction), 0) + 1
        return [m for m in methods if seen[(m.name, m.label_fraction)] > 1]

    for m in clashes():
        m.name = f"{m.name} [{m.label}]"
    left = clashes()
    if left:
        raise ConfigError(
            f"{left[0].source} and {left[1].source} both give the method {left[0].name!r} at label "
            f"fraction {left[0].label_fraction:g}; pass one of them"
        )


def _same_test_set(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.get("sha256") and b.get("sha256"):
        return a["sha256"] == b["sha256"] and a.get("n") == b.get("n")
    if a.get("n") != b.get("n"):
        return False
    return not (a.get("cache_id") and b.get("cache_id") and a["cache_id"] != b["cache_id"])


def _describe_test_set(t: dict[str, Any]) -> str:
    if t.get("sha256"):
        return f"{t.get('n')} records, ecg_id hash {t['sha256']}"
    return f"{t.get('n')} records, data cache {t.get('cache_id')}"


def _grid_task(doc: dict[str, Any], config: str) -> str:
    """The task a configuration of a multiseed.json trained (its options; older files: the default)."""
    for c in (doc.get("grid") or {}).get("configs") or []:
        if c.get("name") == config:
            return str((c.get("options") or {}).get("task", "superdiagnostic"))
    return "superdiagnostic"


def check_agreement(methods: Sequence[Method]) -> None:
    """Refuse inputs with different class orders or test sets, naming both inputs."""
    if not methods:
        return
    first = methods[0]
    for m in methods[1:]:
        if m.task != first.task:
            raise ConfigError(
                f"different tasks: {first.source} was trained on {first.task}, {m.source} on {m.task}; "
                "compare runs of one task (--task)"
            )
        if m.class_names != first.class_names:
            raise ConfigError(
                f"class order differs: {first.source} has {','.join(first.class_names)} but "
                f"{m.source} has {','.join(m.class_names)}; only runs with one label set can be compared"
            )
        if not _same_test_set(m.test_set, first.test_set):
            raise ConfigError(
                f"test sets differ: {first.source} was tested on {_describe_test_set(first.test_set)}, "
                f"{m.source} on {_describe_test_set(m.test_set)}; only runs tested on the same fold 10 "
                "can be compared"
            )
