"""Compare runs and multi-seed results side by side (``ecg compare``).

Inputs are run directories (``ecg train supervised``, ``ecg finetune``, or one cell of a
multiseed grid) and multiseed results (``multiseed.json`` or the folder holding it).

*Methods.* A multiseed file gives one method per (configuration, label fraction), named after
the configuration. Single runs are named ``LOSS+STRATEGY``, ``finetune:<checkpoint folder>`` or
``probe:<checkpoint folder>``; runs with the same name, label fraction and training options
(everything but the seed and paths) are grouped as seeds of one method, so a handful of
``ecg train supervised --seed ...`` runs get confidence intervals too. When two inputs give
the same name, the name gets the input's folder name in brackets.

*Numbers.* Test fold 10. AUROC is macro-averaged; macro F1 and the micro-averaged
sensitivity and specificity use per-class thresholds tuned on fold 9. With several seeds a
cell is ``mean ± sd [95% CI]``: sample sd (ddof 1) and Student's t interval of the mean
(:func:`ecgcli.scoring.stats.summarize`); one run is just its value. Δ F1 and Δ AUROC are relative to
the baseline at the same label fraction, in percent as the reference study reports them:
``100 * (mean - baseline mean) / baseline mean``. The baseline is ``--baseline NAME``, by
default the first supervised method. The best mean per column (within a label fraction) is
highlighted.

*Refusals.* Every input must share the class order (``model.json`` ``class_names``) and the
test set (the test ``ecg_id``s of ``predictions.npz``, hashed; the data cache id and size when
predictions are missing); otherwise the comparison is refused, naming what differs and where.

Pure numpy/scipy and JSON: no torch, so comparing is quick.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecgcli.errors import ConfigError
from ecgcli.events import Callback, Message, ignore
from ecgcli.experiments.grid import identity
from ecgcli.experiments.results import (
    HEADLINE,
    METRICS,
    PER_CLASS,
    RESULTS_FILE,
    load_results,
    scores,
    test_set_id,
)
from ecgcli.scoring.names import LABELS
from ecgcli.scoring.stats import Summary, summarize
from ecgcli.storage.files import json_safe

FORMATS = ("table", "markdown", "csv", "json")
DELTAS = ("f1", "auroc")


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
    per_class: list[dict[str, dict[str, Any]]] = field(default_factory=list)
    run_dirs: list[Path] = field(default_factory=list)
    label: str = ""  # the input folder's name, used to tell same-named methods apart

    @property
    def n(self) -> int:
        return len(self.scores)

    def summary(self, metric: str) -> Summary | None:
        values = [s[metric] for s in self.scores if s.get(metric) is not None]
        return summarize(values) if values else None

    def class_summary(self, cls: str, metric: str) -> Summary | None:
        values = [pc[cls][metric] for pc in self.per_class if (pc.get(cls) or {}).get(metric) is not None]
        return summarize(values) if values else None


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
    if ckpt:
        kind = "probe" if config.get("freeze_encoder") else "finetune"
        return f"{kind}:{Path(str(ckpt)).parent.name or Path(str(ckpt)).stem}", kind
    return f"{config.get('loss')}+{config.get('balance_strategy')}", "supervised"


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
        run_scores = scores(metrics, "test")
    except (KeyError, TypeError, AttributeError, ConfigError):
        raise ConfigError(
            f"{path}: metrics.json has no test scores (not an `ecg train supervised` run?)"
        ) from None
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
        seeds=[int(config.get("seed", -1))],
        scores=[run_scores],
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
                    test_set=dict(doc["test_set"] or {}),
                    seeds=[int(r["seed"]) for r in runs],
                    scores=[{k: r["test"].get(k) for k in METRICS} for r in runs],
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


def check_agreement(methods: Sequence[Method]) -> None:
    """Refuse inputs with different class orders or test sets, naming both inputs."""
    if not methods:
        return
    first = methods[0]
    for m in methods[1:]:
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


# --- the comparison ------------------------------------------------------------------------


@dataclass
class Row:
    method: Method
    summaries: dict[str, Summary | None]
    delta_pct: dict[str, float | None]
    is_baseline: bool
    best: set[str]


@dataclass
class ClassRow:
    method: Method
    cls: str
    summaries: dict[str, Summary | None]
    delta_pct: dict[str, float | None]
    best: set[str]


@dataclass
class Comparison:
    methods: list[Method]
    baseline: str
    rows: list[Row]
    class_rows: list[ClassRow]
    class_names: list[str]
    test_set: dict[str, Any]

    @property
    def fractions(self) -> list[float]:
        return sorted({m.label_fraction for m in self.methods})


def pick_baseline(methods: Sequence[Method], baseline: str | None) -> str:
    names = list(dict.fromkeys(m.name for m in methods))
    if baseline is None:
        return next((m.name for m in methods if m.kind == "supervised"), methods[0].name)
    if baseline not in names:
        raise ConfigError(f"--baseline {baseline!r} is not among the methods: {', '.join(names)}")
    return baseline


def delta_pct(value: float | None, base: float | None) -> float | None:
    """``100 * (value - base) / base``; None when either is missing or the base is 0."""
    if value is None or base is None or base == 0 or not (math.isfinite(value) and math.isfinite(base)):
        return None
    return 100.0 * (value - base) / base


def _mean(s: Summary | None) -> float | None:
    return None if s is None or not math.isfinite(s.mean) else s.mean


def _mark_best(rows: Sequence[Any], keys: Sequence[str], group) -> None:
    """Flag the highest mean per column among rows with the same ``group(row)``."""
    buckets: dict[Any, list[Any]] = {}
    for r in rows:
        buckets.setdefault(group(r), []).append(r)
    for bucket in buckets.values():
        if len(bucket) < 2:
            continue
        for k in keys:
            means = [_mean(r.summaries[k]) for r in bucket]
            valid = [m for m in means if m is not None]
            if not valid:
                continue
            top = max(valid)
            for r, m in zip(bucket, means, strict=True):
                if m is not None and m == top:
                    r.best.add(k)


def compare(methods: list[Method], baseline: str | None = None, per_class: bool = False) -> Comparison:
    """Summaries, deltas against the baseline and best-per-column flags."""
    if not methods:
        raise ConfigError("nothing to compare")
    base_name = pick_baseline(methods, baseline)
    order = sorted(range(len(methods)), key=lambda i: (methods[i].label_fraction, i))
    methods = [methods[i] for i in order]
    base = {m.label_fraction: m for m in methods if m.name == base_name}
    rows = []
    for m in methods:
        summaries = {k: m.summary(k) for k in (*HEADLINE, "f1@0.5")}
        b = base.get(m.label_fraction)
        deltas = {
            k: (None if b is None or b is m else delta_pct(_mean(summaries[k]), _mean(b.summary(k))))
            for k in DELTAS
        }
        rows.append(Row(m, summaries, deltas, b is m, set()))
    _mark_best(rows, HEADLINE, lambda r: r.method.label_fraction)
    class_rows = []
    if per_class:
        for cls in methods[0].class_names:
            for m in methods:
                summaries = {k: m.class_summary(cls, k) for k in PER_CLASS}
                b = base.get(m.label_fraction)
                deltas = {
                    k: (
                        None
                        if b is None or b is m
                        else delta_pct(_mean(summaries[k]), _mean(b.class_summary(cls, k)))
                    )
                    for k in DELTAS
                }
                class_rows.append(ClassRow(m, cls, summaries, deltas, set()))
        _mark_best(class_rows, PER_CLASS, lambda r: (r.cls, r.method.label_fraction))
    return Comparison(methods, base_name, rows, class_rows, methods[0].class_names, methods[0].test_set)


# --- text formats --------------------------------------------------------------------------


def fmt_summary(s: Summary | None, digits: int = 3, ci: bool = True, sep: str = " ") -> str:
    """``0.812 ± 0.013 [0.780, 0.845]`` (several seeds), ``0.812`` (one), ``—`` (none)."""
    if s is None:
        return "—"
    text = f"{s.mean:.{digits}f}"
    if s.n < 2 or not math.isfinite(s.std):
        return text
    text += f" ± {s.std:.{digits}f}"
    if ci and math.isfinite(s.ci_low):
        text += f"{sep}[{s.ci_low:.{digits}f}, {s.ci_high:.{digits}f}]"
    return text


def fmt_delta(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}%"


def fmt_fraction(lf: float) -> str:
    return f"{100 * lf:g}%" if math.isfinite(lf) else "?"


def caption(comp: Comparison) -> str:
    return (
        "Test fold 10. Cells: mean ± sd [95% Student-t CI of the mean] over n seeds (one run: its value). "
        "AUROC macro; F1 macro, sensitivity and specificity micro, at per-class thresholds tuned on fold 9. "
        f"Δ = 100·(method − baseline)/baseline at the same label fraction; baseline: {comp.baseline}. "
        "Best mean per column in bold."
    )


def headline_header() -> list[str]:
    return ["method", "labels", "n", *(LABELS[k] for k in HEADLINE), "Δ F1", "Δ AUROC"]


def class_header() -> list[str]:
    # One class has one F1: "macro" would be wrong here.
    return [
        "method",
        "labels",
        "class",
        "n",
        *(LABELS[k] if k != "f1" else "F1" for k in PER_CLASS),
        "Δ F1",
        "Δ AUROC",
    ]


def _cells(row: Row | ClassRow, keys: Sequence[str], bold: str = "", sep: str = " ") -> list[str]:
    out = []
    for k in keys:
        text = fmt_summary(row.summaries[k], sep=sep)
        out.append(f"{bold}{text}{bold}" if bold and k in row.best else text)
    return out


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(comp: Comparison) -> str:
    lines = [f"*{caption(comp)}*", ""]
    header = headline_header()
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + [":---:"] * (len(header) - 1)) + "|"]
    for r in comp.rows:
        name = f"{r.method.name} (baseline)" if r.is_baseline else r.method.name
        cells = [
            _md_escape(name),
            fmt_fraction(r.method.label_fraction),
            str(r.method.n),
            *_cells(r, HEADLINE, "**"),
            fmt_delta(r.delta_pct["f1"]),
            fmt_delta(r.delta_pct["auroc"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if comp.class_rows:
        header = class_header()
        lines += ["", "Per class (test fold 10, thresholds tuned on fold 9):", ""]
        lines += [
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---"] * 3 + [":---:"] * (len(header) - 3)) + "|",
        ]
        for r in comp.class_rows:
            cells = [
                _md_escape(r.method.name),
                fmt_fraction(r.method.label_fraction),
                r.cls,
                str(r.method.n),
                *_cells(r, PER_CLASS, "**"),
                fmt_delta(r.delta_pct["f1"]),
                fmt_delta(r.delta_pct["auroc"]),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _number(x: float | None) -> str:
    return "" if x is None or not math.isfinite(x) else repr(float(x))


def to_csv(comp: Comparison) -> str:
    """One row per method (``class`` = ``all``) and, with per-class rows, per method and class."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    header = ["method", "kind", "label_fraction", "class", "n", "baseline"]
    for k in (*HEADLINE, "f1@0.5"):
        header += [f"{k}_mean", f"{k}_std", f"{k}_ci_low", f"{k}_ci_high"]
    header += ["delta_f1_pct", "delta_auroc_pct"]
    w.writerow(header)
    for r in [*comp.rows, *comp.class_rows]:
        cls = getattr(r, "cls", "all")
        m = r.method
        line = [m.name, m.kind, repr(m.label_fraction), cls, m.n, m.name == comp.baseline]
        for k in (*HEADLINE, "f1@0.5"):
            s = r.summaries.get(k)
            line += [
                _number(None if s is None else getattr(s, a)) for a in ("mean", "std", "ci_low", "ci_high")
            ]
        line += [_number(r.delta_pct["f1"]), _number(r.delta_pct["auroc"])]
        w.writerow(line)
    return buf.getvalue()


def to_dict(comp: Comparison) -> dict[str, Any]:
    def summaries(r: Row | ClassRow) -> dict[str, Any]:
        return {k: (None if s is None else s.to_dict()) for k, s in r.summaries.items()}

    methods = []
    for r in comp.rows:
        entry = {
            "name": r.method.name,
            "kind": r.method.kind,
            "label_fraction": r.method.label_fraction,
            "n": r.method.n,
            "seeds": r.method.seeds,
            "source": r.method.source,
            "baseline": r.is_baseline,
            "metrics": summaries(r),
            "delta_pct": r.delta_pct,
            "best": sorted(r.best),
        }
        if comp.class_rows:
            entry["per_class"] = {
                c.cls: {"metrics": summaries(c), "delta_pct": c.delta_pct, "best": sorted(c.best)}
                for c in comp.class_rows
                if c.method is r.method
            }
        methods.append(entry)
    return {
        "format": "ecgcli-compare",
        "version": 1,
        "baseline": comp.baseline,
        "caption": caption(comp),
        "class_names": comp.class_names,
        "test_set": comp.test_set,
        "methods": methods,
    }


def to_json(comp: Comparison) -> str:
    return json.dumps(json_safe(to_dict(comp)), indent=2, ensure_ascii=False) + "\n"
