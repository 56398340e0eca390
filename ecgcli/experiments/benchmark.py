"""``ecg benchmark``: the PTB-XL benchmark's leaderboard, reproduced and placed beside it.

Encoders x tasks x label fractions x seeds in one resumable command: one multiseed grid per
task under ``OUT/<task>/`` (a grid's runs must share one label set), each configuration
``bce+standard[encoder=NAME]`` trained with the benchmark's recipe unless options say
otherwise. Rerunning the command reuses every finished run and resumes an interrupted one.

The leaderboard has the benchmark's layout: rows are encoders, columns are tasks, a cell is
the fold-10 macro AUROC (the mean over seeds) with its percentile bootstrap 95% band over
test records (each run's interval, averaged over seeds) and how many seeds and epochs it rests
on, beside the value Strodthoff et al. (2021) published (``resources/ptbxl_benchmark_published.csv``,
with its source). At 100% of the labels two rows of later published anchors follow, from the 2026
benchmark of ECG foundation models (``resources/ecg_fm_benchmark_published.csv``): its supervised
S4 and, per task, its best fine-tuned foundation model, each with its 95% interval.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ecgcli import TASKS
from ecgcli.errors import ConfigError
from ecgcli.events import Callback, Message, ignore
from ecgcli.experiments.grid import Grid, build_grid
from ecgcli.experiments.results import load_results, results_path
from ecgcli.files import write_text_atomic

PUBLISHED_CSV = "ptbxl_benchmark_published.csv"
ANCHORS_CSV = "ecg_fm_benchmark_published.csv"
#: The anchor rows of :data:`ANCHORS_CSV`, in the leaderboard's order, with their labels.
ANCHOR_ROWS = {
    "s4_supervised": "S4, supervised (2026, published)",
    "best_finetuned": "best fine-tuned foundation model (2026, published)",
}
#: Where the leaderboard finds ensembles of a task's runs: ``OUT/<task>/ensembles/<NAME>/``,
#: each written by ``ecg ensemble ... --out`` there; a row ``ensemble NAME`` per name.
ENSEMBLES_DIR = "ensembles"
#: The benchmark's three strongest encoders.
DEFAULT_ENCODERS: tuple[str, ...] = ("resnet1d_wang", "xresnet1d101", "inception1d")


@dataclass(frozen=True)
class Cell:
    """One leaderboard cell: ours (mean over seeds, bootstrap band) and the published value."""

    auroc: float | None
    ci_low: float | None
    ci_high: float | None
    n_seeds: int
    published: float | None
    published_half_width: float | None
    epochs: tuple[int, ...] = ()  # each seed's epochs trained, sorted
    members: int = 0  # an ensemble's (``ecg ensemble``); 0 for an encoder's cell


@dataclass(frozen=True)
class Anchor:
    """A published later result: macro AUROC with its 95% interval, and which model reached it."""

    model: str
    auroc: float
    ci_low: float
    ci_high: float


def published() -> dict[tuple[str, str], tuple[float, float]]:
    """``(model, task) -> (macro AUROC, bootstrap half-width)`` as the benchmark published them."""
    text = resources.files("ecgcli.experiments").joinpath("resources", PUBLISHED_CSV).read_text()
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {(r["model"], r["task"]): (float(r["auroc"]), float(r["half_width"])) for r in rows}


def anchors() -> dict[str, dict[str, Anchor]]:
    """``row -> task -> Anchor`` of the 2026 foundation-model benchmark (see :data:`ANCHORS_CSV`)."""
    text = resources.files("ecgcli.experiments").joinpath("resources", ANCHORS_CSV).read_text()
    out: dict[str, dict[str, Anchor]] = {row: {} for row in ANCHOR_ROWS}
    for r in csv.DictReader(line for line in text.splitlines() if not line.startswith("#")):
        out[r["row"]][r["task"]] = Anchor(
            r["model"], float(r["auroc"]), float(r["ci_low"]), float(r["ci_high"])
        )
    return out


def spec_for(encoder: str) -> str:
    """The configuration that trains ``encoder`` in a benchmark grid."""
    return f"bce+standard[encoder={encoder}]"


def plan(
    encoders: Sequence[str],
    tasks: Sequence[str],
    label_fractions: Sequence[float],
    seeds: Sequence[int],
    common: dict[str, Any],
    out: Path,
    given: frozenset[str] = frozenset(),
) -> list[Grid]:
    """One validated grid per task (every option checked before anything trains)."""
    from ecgcli.train.config import encoder_widths

    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ConfigError(f"unknown task {unknown[0]!r}; choose from {', '.join(TASKS)}")
    widths = encoder_widths()
    bad = [e for e in encoders if e not in widths]
    if bad:
        raise ConfigError(f"unknown encoder {bad[0]!r}; choose from {', '.join(widths)}")
    if not encoders or not tasks:
        raise ConfigError("give at least one encoder and one task")
    if "encoder" in given:
        raise ConfigError("ecg benchmark takes its encoders from --encoders, not --encoder")
    return [
        build_grid(
            [spec_for(e) for e in encoders],
            seeds,
            label_fractions,
            {**common, "task": task},
            out=Path(out) / task,
            given=given | {"task"},
        )
        for task in tasks
    ]


def run_benchmark(grids: Sequence[Grid], callback: Callback = ignore, jobs: int = 1) -> None:
    """Run every grid in turn (each resumable on its own, see :func:`run_multiseed`)."""
    from ecgcli.experiments.runner import run_multiseed

    for grid in grids:
        callback(Message(f"task {grid.common['task']}: {grid.out}"))
        run_multiseed(grid, callback, jobs)


def leaderboard(
    out: Path, encoders: Sequence[str], tasks: Sequence[str], label_fraction: float = 1.0
) -> dict[str, dict[str, Cell]]:
    """``encoder -> task -> Cell`` from the grids under ``out`` (what has finished so far)."""
    pub = published()
    table: dict[str, dict[str, Cell]] = {e: {} for e in encoders}
    for task in tasks:
        runs: dict[str, list[dict[str, Any]]] = {}
        path = results_path(Path(out) / task)
        if path.is_file():
            doc = load_results(path)
            for res in doc["results"]:
                if math.isclose(float(res["label_fraction"]), label_fraction):
                    runs[str(res["config"])] = res["runs"] or []
        for e in encoders:
            done = [r for r in runs.get(spec_for(e), []) if (r.get("test") or {}).get("auroc") is not None]
            boots = [r.get("bootstrap_auroc") or {} for r in done]
            p = pub.get((e, task))
            table[e][task] = Cell(
                auroc=_mean([r["test"]["auroc"] for r in done]),
                ci_low=_mean([b.get("ci_low") for b in boots]),
                ci_high=_mean([b.get("ci_high") for b in boots]),
                n_seeds=len(done),
                published=p[0] if p else None,
                published_half_width=p[1] if p else None,
                epochs=tuple(sorted(int(r["epochs_run"]) for r in done if r.get("epochs_run") is not None)),
            )
    table.update(ensemble_cells(out, tasks, label_fraction))
    return table


def ensemble_cells(
    out: Path, tasks: Sequence[str], label_fraction: float = 1.0
) -> dict[str, dict[str, Cell]]:
    """``ensemble NAME -> task -> Cell`` from the finished ensembles under ``OUT/<task>/ensembles/``
    of the same label fraction (a half-written one is not a row yet)."""
    import json

    rows: dict[str, dict[str, Cell]] = {}
    for task in tasks:
        for metrics_path in sorted((Path(out) / task / ENSEMBLES_DIR).glob("*/metrics.json")):
            try:
                metrics = json.loads(metrics_path.read_text())
                config = json.loads((metrics_path.parent / "config.json").read_text())
                auroc = float(metrics["test"]["macro_auroc"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            fraction = config.get("label_fraction")
            if fraction is None or not math.isclose(float(fraction), label_fraction):
                continue
            band = (metrics.get("bootstrap") or {}).get("auroc") or {}
            rows.setdefault(f"ensemble {metrics_path.parent.name}", {})[task] = Cell(
                auroc=auroc,
                ci_low=band.get("ci_low"),
                ci_high=band.get("ci_high"),
                n_seeds=1,
                published=None,
                published_half_width=None,
                members=len(metrics.get("members") or []),
            )
    empty = Cell(None, None, None, 0, None, None)
    return {name: {t: cells.get(t, empty) for t in tasks} for name, cells in rows.items()}


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def fmt_cell(cell: Cell) -> str:
    """``0.931 [0.925, 0.936] (3 seeds, 50 ep) / 0.930±0.005``; a dash for a cell not run yet."""
    ours = "—"
    if cell.auroc is not None:
        ours = f"{cell.auroc:.3f}"
        if cell.ci_low is not None and cell.ci_high is not None:
            ours += f" [{cell.ci_low:.3f}, {cell.ci_high:.3f}]"
        if cell.members:
            ours += f" (ensemble of {cell.members})"
        else:
            ours += f" ({cell.n_seeds} seed{'s' if cell.n_seeds != 1 else ''}{fmt_epochs(cell.epochs)})"
    pub = "—" if cell.published is None else f"{cell.published:.3f}±{cell.published_half_width:.3f}"
    return f"{ours} / {pub}"


def fmt_epochs(epochs: tuple[int, ...]) -> str:
    """``, 50 ep``, ``, 10-50 ep`` when seeds stopped at different epochs, nothing if unknown."""
    if not epochs:
        return ""
    low, high = min(epochs), max(epochs)
    return f", {low} ep" if low == high else f", {low}-{high} ep"


def fmt_anchor(anchor: Anchor | None, show_model: bool) -> str:
    """``0.9347 [0.9286, 0.9410] ECGFounder``; a dash where the benchmark has no value."""
    if anchor is None:
        return "—"
    text = f"{anchor.auroc:.4f} [{anchor.ci_low:.4f}, {anchor.ci_high:.4f}]"
    return f"{text} {anchor.model}" if show_model else text


def anchor_rows(tasks: Sequence[str], label_fraction: float) -> list[tuple[str, list[str]]]:
    """The published 2026 rows for ``tasks`` as ``(label, cells)``; none below 100% of labels
    (those results used every label)."""
    if not math.isclose(label_fraction, 1.0):
        return []
    table = anchors()
    return [
        (label, [fmt_anchor(table[row].get(t), show_model=row == "best_finetuned") for t in tasks])
        for row, label in ANCHOR_ROWS.items()
    ]


def to_markdown(table: dict[str, dict[str, Cell]], tasks: Sequence[str], label_fraction: float) -> str:
    """The leaderboard as a Markdown table, with what each number is.

    Stays in the core (unlike the comparison formats in :mod:`ecgcli.cli.formats`): the file
    ``leaderboard.md`` is the product of :func:`write_leaderboard`, written beside the runs."""
    lines = [
        f"Fold-10 macro AUROC, {100 * label_fraction:g}% of the labels: ours (mean over seeds) "
        "[bootstrap 95% band over test records] (seeds, epochs trained) / published (Strodthoff "
        "et al. 2021, ± their bootstrap half-width)",
        "",
        "| model | " + " | ".join(tasks) + " |",
        "|---|" + "---:|" * len(tasks),
    ]
    for encoder, cells in table.items():
        lines.append(f"| {encoder} | " + " | ".join(fmt_cell(cells[t]) for t in tasks) + " |")
    later = anchor_rows(tasks, label_fraction)
    for label, cells in later:
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if later:
        lines += ["", ANCHOR_SOURCE]
    return "\n".join(lines) + "\n"


#: Where the 2026 rows come from, as the leaderboard says it.
ANCHOR_SOURCE = (
    "2026 rows: Al-Masud, Lopez Alcaraz & Strodthoff, ICLR 2026 (arXiv:2509.25095; "
    "github.com/AI4HealthUOL/ecg-fm-benchmarking, Confidence_Interval.xlsx), macro AUROC "
    "[their 95% interval]; the best fine-tuned foundation model is named per task."
)


def write_leaderboard(
    out: Path, encoders: Sequence[str], tasks: Sequence[str], label_fraction: float = 1.0
) -> tuple[dict[str, dict[str, Cell]], Path]:
    """Build the leaderboard and write ``OUT/leaderboard.md`` atomically."""
    table = leaderboard(out, encoders, tasks, label_fraction)
    path = Path(out) / "leaderboard.md"
    write_text_atomic(path, to_markdown(table, tasks, label_fraction))
    return table, path
