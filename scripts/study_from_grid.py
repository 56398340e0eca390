"""Turn a finished label-efficiency grid into a results study (``results/STUDY.json``) that
``scripts/docs_tables.py`` renders into the documentation.

    python scripts/study_from_grid.py runs/le/small [MORE_GRIDS ...] --arm "scratch=CONFIG" ... \\
        --study label_efficiency_search --title "..." --task superdiagnostic \\
        --command "bash scripts/label_efficiency_grid.sh data/PTB-XL runs/le small" --notes "..."

Why a script and not a table typed into a page: every number on a results page must come from
a file written by the command that measured it. This reads the grid the way ``ecg compare``
does (the same arms chosen on fold 9, the same paired tests and label-efficiency factors) and
writes only what it read, so rerunning it on the same grid writes the same file.

A grid is its folder or its ``multiseed.json`` alone, which holds every score the study needs:
so a grid run on one machine can be kept as a file (``results/grids/``) and joined by grids run
later elsewhere: other label fractions, or other seeds of the same configurations, which are
merged into one method when their training options agree (paths aside) and their seeds differ.

Tables written: ``selection`` (each arm's configuration at each fraction and every candidate's
fold-9 macro AUROC), ``auroc`` (each arm's test macro AUROC per fraction with its t-interval;
for the other arms the paired difference to the baseline arm with its t-interval and p, and the
label-efficiency factor when there are several fractions) and ``auprc``; ``per_seed`` holds each
arm's test macro AUROC per seed.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

from ecgcli.cli.formats import fmt_fraction

ROOT = Path(__file__).resolve().parent.parent


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _mean_cell(summary: Any) -> dict[str, Any] | None:
    if summary is None or not math.isfinite(summary.mean):
        return None
    cell: dict[str, Any] = {"mean": round(summary.mean, 3)}
    if summary.n > 1 and math.isfinite(summary.ci_low):
        cell["ci"] = [round(summary.ci_low, 3), round(summary.ci_high, 3)]
    return cell


def _paired_cell(test: Any) -> dict[str, Any] | str:
    if test is None or not math.isfinite(test.mean_diff):
        return "—"
    cell: dict[str, Any] = {"delta": round(test.mean_diff, 3)}
    if math.isfinite(test.diff_ci_low):
        cell["ci"] = [round(test.diff_ci_low, 3), round(test.diff_ci_high, 3)]
    if math.isfinite(test.t_p):
        cell["p"] = float(f"{test.t_p:.2g}")
    if cell.get("ci") and (cell["ci"][0] > 0 or cell["ci"][1] < 0):
        cell["bold"] = True
    return cell


def _factor_cell(factor: Any) -> dict[str, Any] | str:
    if factor is None or factor.crossing.factor is None or not math.isfinite(factor.crossing.factor):
        return "—"
    cell: dict[str, Any] = {"factor": round(factor.crossing.factor, 2)}
    if factor.crossing.bound != "exact":
        cell["bound"] = factor.crossing.bound
    seeds = factor.seeds
    if factor.crossing.bound == "exact" and math.isfinite(seeds.ci_low):
        cell["ci"] = [round(seeds.ci_low, 2), round(seeds.ci_high, 2)]
    elif seeds.censored:
        cell["note"] = f"{seeds.censored} of {seeds.n} seeds a bound"
    return cell


#: Options that name where things are on one machine, not what is computed.
LOCAL_OPTIONS = {"data_root", "cache_dir", "runs_dir", "run_dir", "device", "workers"}


def merge_grids(grids: list[tuple[list[Any], dict[str, dict[str, Any]]]]) -> list[Any]:
    """The methods of several grids, each given with its configurations' options (name ->
    options): a (configuration, label fraction) found in two grids becomes one method over the
    seeds of both, if its options agree but for :data:`LOCAL_OPTIONS` and no seed is in both."""
    from ecgcli.errors import ConfigError
    from ecgcli.experiments.inputs import check_agreement

    merged: dict[tuple[str, float], tuple[Any, dict[str, Any]]] = {}
    out = []
    for methods, options in grids:
        for m in methods:
            opts = {k: v for k, v in (options.get(m.name) or {}).items() if k not in LOCAL_OPTIONS}
            key = (m.name, m.label_fraction)
            if key not in merged:
                merged[key] = (m, opts)
                out.append(m)
                continue
            first, first_opts = merged[key]
            if opts != first_opts:
                diff = sorted(k for k in {*opts, *first_opts} if opts.get(k) != first_opts.get(k))
                raise ConfigError(
                    f"{m.name} at {fmt_fraction(m.label_fraction)}: the grids differ in {', '.join(diff)}"
                )
            if set(m.seeds) & set(first.seeds):
                raise ConfigError(
                    f"{m.name} at {fmt_fraction(m.label_fraction)}: seed(s) "
                    f"{sorted(set(m.seeds) & set(first.seeds))} are in two grids; keep one of them"
                )
            check_agreement([first, m])
            for attr in ("seeds", "scores", "val", "per_class", "run_dirs"):
                setattr(first, attr, getattr(first, attr) + getattr(m, attr))
    return out


def read_grid(path: Path) -> tuple[list[Any], dict[str, dict[str, Any]]]:
    """A grid's methods (as ``ecg compare`` reads them) and its configurations' options."""
    from ecgcli.experiments.inputs import load_inputs

    file = path / "multiseed.json" if path.is_dir() else path
    doc = json.loads(file.read_text())
    options = {c["name"]: c.get("options") or {} for c in (doc.get("grid") or {}).get("configs", [])}
    return load_inputs([file]), options


def build_study(comp: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The ``ecgcli-results`` document of ``comp`` (an ``ecg compare`` comparison with arms)."""
    from ecgcli.experiments.compare import factor_rows

    fractions = comp.fractions
    arms = list(dict.fromkeys(r.method.name for r in comp.rows))
    rows = {(r.method.name, r.method.label_fraction): r for r in comp.rows}
    columns = [{"name": "", "align": "l"}] + [{"name": fmt_fraction(lf), "align": "c"} for lf in fractions]
    factors = dict(factor_rows(comp, "auroc")[1]) if comp.sweep else {}
    factor_fracs = factor_rows(comp, "auroc")[0] if comp.sweep else []

    def per_fraction(name: str, cell) -> list[Any]:
        return [cell(rows.get((name, lf))) for lf in fractions]

    auroc_rows: list[list[Any]] = []
    auprc_rows: list[list[Any]] = []
    for name in arms:
        label = f"{name} (baseline)" if name == comp.baseline else name
        auroc_rows.append([label, *per_fraction(name, lambda r: r and _mean_cell(r.summaries["auroc"]))])
        auprc_rows.append([label, *per_fraction(name, lambda r: r and _mean_cell(r.summaries["auprc"]))])
        if name == comp.baseline:
            continue
        auroc_rows.append(
            [
                "paired Δ AUROC [95% t-CI], p",
                *per_fraction(name, lambda r: _paired_cell(r and r.paired["auroc"])),
            ]
        )
        auroc_rows.append(
            [
                "paired Δ AUPRC [95% t-CI], p",
                *per_fraction(name, lambda r: _paired_cell(r and r.paired["auprc"])),
            ]
        )
        if name in factors:
            by_lf = dict(zip(factor_fracs, factors[name], strict=True))
            auroc_rows.append(["label-efficiency factor", *(_factor_cell(by_lf.get(lf)) for lf in fractions)])
    seeds = sorted({s for r in comp.rows for s in r.method.seeds})
    per_seed = {
        f"{r.method.name}, {fmt_fraction(r.method.label_fraction)}": [
            _round(dict(zip(r.method.seeds, (sc.get("auroc") for sc in r.method.scores), strict=True)).get(s))
            for s in seeds
        ]
        for r in comp.rows
    }
    selection_rows = [
        [
            fmt_fraction(c.label_fraction),
            c.arm,
            c.chosen,
            c.candidates_text("; "),
        ]
        for c in comp.selection
    ]
    n = max((r.method.n for r in comp.rows), default=0)
    return {
        "format": "ecgcli-results",
        "version": 1,
        "study": args.study,
        "archived": False,
        "data": {
            "dataset": "PTB-XL",
            "version": "1.0.1",
            "test_fold": 10,
            "validation_fold": 9,
            "train_folds": "1-8",
        },
        "commit": args.commit,
        "title": args.title,
        "task": args.task,
        "label_fractions": fractions,
        "seeds": seeds,
        "commands": args.command,
        "notes": args.notes,
        "tables": {
            "selection": {
                "caption": "Each arm's configuration at each label fraction: the candidate with the highest "
                "mean fold-9 macro AUROC over the seeds; fold 10 takes no part in the choice.",
                "columns": [
                    {"name": "labels", "align": "l"},
                    {"name": "arm", "align": "l"},
                    {"name": "chosen", "align": "l"},
                    {"name": "candidates: mean fold-9 macro AUROC", "align": "l"},
                ],
                "rows": selection_rows,
            },
            "auroc": {
                "caption": f"Test (fold 10) macro AUROC, mean [95% t-CI] over {n} seeds; paired by seed "
                f"against {comp.baseline}.",
                "columns": columns,
                "rows": auroc_rows,
            },
            "auprc": {
                "caption": f"Test (fold 10) macro AUPRC, mean [95% t-CI] over {n} seeds.",
                "columns": columns,
                "rows": auprc_rows,
            },
        },
        "per_seed": {"metric": "test macro AUROC", "seeds": seeds, "values": per_seed},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "grids", type=Path, nargs="+", help="grids of `ecg multiseed`: folders or their multiseed.json files"
    )
    parser.add_argument("--arm", action="append", required=True, help="ARM=CONFIG, as `ecg compare --arm`")
    parser.add_argument("--study", required=True, help="the study's name: results/STUDY.json")
    parser.add_argument("--title", required=True)
    parser.add_argument("--task", default="superdiagnostic")
    parser.add_argument("--command", action="append", default=[], help="a command that made it (repeatable)")
    parser.add_argument("--notes", default="")
    parser.add_argument("--commit", help="the commit the runs were trained at [default: HEAD]")
    parser.add_argument("--output", type=Path, help="[default: results/STUDY.json]")
    args = parser.parse_args(argv)
    from ecgcli.errors import EcgError
    from ecgcli.experiments.compare import compare
    from ecgcli.files import json_safe, write_text_atomic

    args.commit = (
        args.commit
        or subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    try:
        comp = compare(merge_grids([read_grid(p) for p in args.grids]), arms=args.arm)
    except (EcgError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.output or ROOT / "results" / f"{args.study}.json"
    write_text_atomic(
        out, json.dumps(json_safe(build_study(comp, args)), indent=1, ensure_ascii=False) + "\n"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
