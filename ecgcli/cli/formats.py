"""Text, Markdown, CSV and JSON of a comparison (``ecg compare --format``) and the cell texts
the rich tables use: presentation only. The numbers, rows and captions come from
:mod:`ecgcli.experiments.compare`, which returns data."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence

from ecgcli.experiments.compare import (
    CLIPPED,
    PAIRED,
    ClassRow,
    Comparison,
    Row,
    caption,
    curve_rows,
    factor_rows,
    paired_rows,
    to_dict,
)
from ecgcli.experiments.efficiency import EFFICIENCY_METRICS
from ecgcli.experiments.results import CALIBRATION, HEADLINE, PER_CLASS
from ecgcli.files import json_safe
from ecgcli.scoring.names import LABELS
from ecgcli.scoring.stats import PairedComparison, Summary

PAIRED_CAPTION = (
    "Paired by seed against the baseline at the same label fraction (a seed fixes the labelled "
    "subset): mean difference method − baseline [95% Student-t CI] on the seeds both finished, "
    "and the paired t-test's two-sided p."
)


def fmt_summary(s: Summary | None, digits: int = 3, ci: bool = True, sep: str = " ") -> str:
    """``0.812 ± 0.013 [0.780, 0.845]`` (several seeds), ``0.812`` (one), ``—`` (none)."""
    if s is None:
        return "—"
    text = f"{s.mean:.{digits}f}"
    if s.n < 2 or not math.isfinite(s.std):
        return text
    text += f" ± {s.std:.{digits}f}"
    if ci and math.isfinite(s.ci_low):
        text += f"{sep}[{s.ci_low:.{digits}f}, {s.ci_high:.{digits}f}]" + (CLIPPED if s.clipped else "")
    return text


def fmt_delta(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}%"


def fmt_paired(p: PairedComparison | None) -> str:
    """``+0.012 [+0.003, +0.021], p = 0.031``, or ``—`` without a paired test."""
    if p is None or not math.isfinite(p.mean_diff):
        return "—"
    text = f"{p.mean_diff:+.3f}"
    if math.isfinite(p.diff_ci_low):
        text += f" [{p.diff_ci_low:+.3f}, {p.diff_ci_high:+.3f}]"
    if math.isfinite(p.t_p):
        text += ", p < 0.001" if p.t_p < 0.001 else f", p = {p.t_p:.{2 if p.t_p >= 0.01 else 3}f}"
    return text


def paired_header() -> list[str]:
    return ["method", "labels", "pairs", *(f"Δ {LABELS[k]} [95% CI], p" for k in PAIRED)]


def fmt_fraction(lf: float) -> str:
    return f"{100 * lf:g}%" if math.isfinite(lf) else "?"


def headline_header() -> list[str]:
    return ["method", "labels", "n", *(LABELS[k] for k in (*HEADLINE, *CALIBRATION)), "Δ F1", "Δ AUROC"]


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


def fmt_mean_ci(s: Summary | None, digits: int = 3, sep: str = " ") -> str:
    """``0.812 [0.780, 0.845]`` (several seeds), ``0.812`` (one), ``—`` (none)."""
    if s is None:
        return "—"
    text = f"{s.mean:.{digits}f}"
    if s.n >= 2 and math.isfinite(s.ci_low):
        text += f"{sep}[{s.ci_low:.{digits}f}, {s.ci_high:.{digits}f}]" + (CLIPPED if s.clipped else "")
    return text


def curve_title(metric: str) -> str:
    return f"Label efficiency: test macro {LABELS[metric]} by labelled fraction, mean [95% t-CI] over seeds"


def factor_title(comp: Comparison) -> str:
    return f"Label-efficiency factor vs {comp.baseline} (test macro {LABELS[comp.efficiency_metric]})"


FACTOR_CAPTION = (
    "Factor = f / f_M: the method reaches the baseline's mean score at f (the column) with the "
    "fraction f_M, read off the method's mean curve (first crossing, linear between neighbouring "
    "fractions in log fraction). Above 1: that many times fewer labels. >x: it already beats the "
    "target at its lowest fraction (lower bound); <x: it never reaches it up to its highest fraction "
    "(upper bound, undefined if never). [95% CI]: exp of the Student-t interval of the mean log factor "
    "over seeds, each seed's own paired curves; not given when any seed's factor is only a bound."
)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(comp: Comparison) -> str:
    lines = []
    if comp.selection:
        lines += [
            "*Each arm's configuration, chosen on the validation fold (9): highest mean macro AUROC "
            "over the seeds at each label fraction; fold 10 takes no part.*",
            "",
            "| labels | arm | chosen | candidates: fold-9 AUROC |",
            "|---|---|---|---|",
        ]
        for c in comp.selection:
            candidates = c.candidates_text(name=_md_escape)
            cells = [fmt_fraction(c.label_fraction), _md_escape(c.arm), _md_escape(c.chosen), candidates]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += [f"*{caption(comp)}*", ""]
    header = headline_header()
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + [":---:"] * (len(header) - 1)) + "|"]
    for r in comp.rows:
        name = f"{r.method.name} (baseline)" if r.is_baseline else r.method.name
        cells = [
            _md_escape(name),
            fmt_fraction(r.method.label_fraction),
            str(r.method.n),
            *_cells(r, (*HEADLINE, *CALIBRATION), "**"),
            fmt_delta(r.delta_pct["f1"]),
            fmt_delta(r.delta_pct["auroc"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if comp.has_paired:
        header = paired_header()
        lines += ["", f"*{PAIRED_CAPTION}*", "", "| " + " | ".join(header) + " |"]
        lines += ["|" + "|".join(["---"] + [":---:"] * (len(header) - 1)) + "|"]
        for r, n, tests in paired_rows(comp):
            cells = [_md_escape(r.method.name), fmt_fraction(r.method.label_fraction), str(n)]
            lines.append("| " + " | ".join([*cells, *(fmt_paired(t) for t in tests)]) + " |")
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
    if comp.sweep:
        lines += _efficiency_markdown(comp)
    return "\n".join(lines) + "\n"


def _efficiency_markdown(comp: Comparison) -> list[str]:
    lines = []
    for metric in EFFICIENCY_METRICS:
        fractions, rows = curve_rows(comp, metric)
        lines += ["", f"{curve_title(metric)}:", ""]
        lines += ["| method | " + " | ".join(fmt_fraction(lf) for lf in fractions) + " |"]
        lines += ["|---|" + ":---:|" * len(fractions)]
        for name, is_base, cells in rows:
            label = f"{name} (baseline)" if is_base else name
            lines.append("| " + " | ".join([_md_escape(label), *(fmt_mean_ci(c) for c in cells)]) + " |")
    fractions, frows = factor_rows(comp)
    if frows:
        lines += ["", f"{factor_title(comp)}:", "", f"*{FACTOR_CAPTION}*", ""]
        lines += ["| method | " + " | ".join(f"at {fmt_fraction(lf)}" for lf in fractions) + " |"]
        lines += ["|---|" + ":---:|" * len(fractions)]
        for name, cells in frows:
            lines.append(
                "| " + " | ".join([_md_escape(name), *("—" if c is None else c.text() for c in cells)]) + " |"
            )
    return lines


def _number(x: float | None) -> str:
    return "" if x is None or not math.isfinite(x) else repr(float(x))


def to_csv(comp: Comparison) -> str:
    """One row per method (``class`` = ``all``) and, with per-class rows, per method and class.

    A sweep's label-efficiency factors go in the ``efficiency_*`` columns of the method's row at
    the baseline's fraction f (factor, bound ``exact``/``lower``/``upper``, per-seed CI)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    header = ["method", "kind", "label_fraction", "class", "n", "baseline"]
    for k in (*HEADLINE, *CALIBRATION, "f1@0.5"):
        header += [f"{k}_mean", f"{k}_std", f"{k}_ci_low", f"{k}_ci_high"]
    header += ["delta_f1_pct", "delta_auroc_pct"]
    for k in PAIRED:
        header += [f"paired_{k}_{a}" for a in ("n", "diff", "ci_low", "ci_high", "p")]
    for k in EFFICIENCY_METRICS:
        header += [f"efficiency_{k}_{a}" for a in ("factor", "bound", "ci_low", "ci_high")]
    w.writerow(header)
    factors = {(f.method, f.label_fraction, f.metric): f for fs in comp.efficiency.values() for f in fs}
    for r in [*comp.rows, *comp.class_rows]:
        cls = getattr(r, "cls", "all")
        m = r.method
        line = [m.name, m.kind, repr(m.label_fraction), cls, m.n, m.name == comp.baseline]
        for k in (*HEADLINE, *CALIBRATION, "f1@0.5"):
            s = r.summaries.get(k)
            line += [
                _number(None if s is None else getattr(s, a)) for a in ("mean", "std", "ci_low", "ci_high")
            ]
        line += [_number(r.delta_pct["f1"]), _number(r.delta_pct["auroc"])]
        for k in PAIRED:
            t = getattr(r, "paired", {}).get(k)
            line += (
                [""] * 5
                if t is None
                else [t.n, *(_number(v) for v in (t.mean_diff, t.diff_ci_low, t.diff_ci_high, t.t_p))]
            )
        for k in EFFICIENCY_METRICS:
            f = factors.get((m.name, m.label_fraction, k)) if cls == "all" else None
            line += (
                ["", "", "", ""]
                if f is None
                else [
                    _number(f.crossing.factor),
                    f.crossing.bound,
                    _number(f.seeds.ci_low),
                    _number(f.seeds.ci_high),
                ]
            )
        w.writerow(line)
    return buf.getvalue()


def to_json(comp: Comparison) -> str:
    return json.dumps(json_safe(to_dict(comp)), indent=2, ensure_ascii=False) + "\n"
