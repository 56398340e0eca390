"""``ecg compare``: runs and multiseed results side by side (rich tables live here too)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.table import Table

    from ecgcli.experiments.compare import ClassRow, Comparison, Row


def _cell(row: Row | ClassRow, key: str):
    from rich.text import Text

    from ecgcli.cli.formats import fmt_summary

    text = fmt_summary(row.summaries[key], sep="\n")
    return Text(text, style="bold green" if key in row.best else "")


def _delta(value: float | None):
    from rich.text import Text

    from ecgcli.cli.formats import fmt_delta

    style = "" if value is None else ("green" if value > 0 else "red" if value < 0 else "")
    return Text(fmt_delta(value), style=style)


def table_console():
    """stdout for tables: the terminal as it is, or 150 columns in a pipe or a log (rich
    would otherwise squeeze the tables into 80)."""
    from rich.console import Console

    from ecgcli.cli.render import out

    if out.is_terminal:
        return out
    return Console(width=max(out.width, 150), highlight=False)


#: Names longer than this are shown in tables as the part before their ``[options]``.
NAME_WIDTH = 24


def short_names(names: list[str]) -> tuple[dict[str, str], list[str]]:
    """Table names for configuration names, and the notes that list each shortened one's
    options once under the table. A long name loses its ``[options]`` (same-named ones get
    ``(a)``, ``(b)``...), so the number columns keep their width on a narrow screen or log."""
    full = list(dict.fromkeys(names))
    groups: dict[str, list[str]] = {}
    for name in full:
        base = name.split("[", 1)[0] if "[" in name and len(name) > NAME_WIDTH else name
        groups.setdefault(base, []).append(name)
    mapping: dict[str, str] = {}
    notes: list[str] = []
    for base, group in groups.items():
        for i, name in enumerate(group):
            short = base if len(group) == 1 else f"{base} ({chr(ord('a') + i)})"
            mapping[name] = short if name != base else name
            if mapping[name] != name:
                notes.append(f"{short} = {name}")
    return mapping, notes


def with_notes(caption: str, notes: list[str]) -> str:
    return caption + ("\n" + "\n".join(notes) if notes else "")


def print_table(console, table) -> None:
    """Print ``table`` at least as wide as its narrowest rendering that cuts no cell: rich
    would otherwise end numbers with "…" to fit the screen (a terminal wraps the longer
    lines instead; a log keeps them whole)."""
    from rich.measure import Measurement

    needed = Measurement.get(console, console.options.update(width=10_000), table).maximum
    if needed <= console.width:
        console.print(table)
        return
    width = console.width
    console.width = needed  # Console.print(width=) is capped at the console's width
    try:
        console.print(table, crop=False)
    finally:
        console.width = width


def _title(text: str):
    from rich.text import Text

    return Text(text, style="bold")


def comparison_table(comp: Comparison, title: str = "Comparison on the test fold (10)") -> Table:
    """Method x AUROC / F1 / sensitivity / specificity (mean ± sd, CI below), with deltas."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from ecgcli.cli.formats import fmt_fraction
    from ecgcli.experiments.compare import CALIBRATION, HEADLINE, caption
    from ecgcli.scoring.names import SHORT

    fractions = comp.fractions
    if len(fractions) == 1:
        title += f", {fmt_fraction(fractions[0])} of the labels"
    names, notes = short_names([r.method.name for r in comp.rows])
    table = Table(
        title=_title(title),
        title_justify="left",
        caption=Text(with_notes(caption(comp), notes)),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("method", no_wrap=True)
    if len(fractions) > 1:
        table.add_column("labels", justify="right")
    table.add_column("n", justify="right")
    for k in (*HEADLINE, *CALIBRATION):
        table.add_column(SHORT[k], justify="center", no_wrap=True)
    table.add_column("Δ F1", justify="right", no_wrap=True)
    table.add_column("Δ AUROC", justify="right", no_wrap=True)
    for r in comp.rows:
        name = Text(names[r.method.name])
        if r.is_baseline:
            name.append("\n(baseline)", style="dim")
        labels = [fmt_fraction(r.method.label_fraction)] if len(fractions) > 1 else []
        table.add_row(
            name,
            *labels,
            str(r.method.n),
            *(_cell(r, k) for k in (*HEADLINE, *CALIBRATION)),
            _delta(r.delta_pct["f1"]),
            _delta(r.delta_pct["auroc"]),
        )
    return table


def paired_table(comp: Comparison) -> Table:
    """Each method minus the baseline on shared seeds: mean difference [t-CI] and paired p."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from ecgcli.cli.formats import PAIRED_CAPTION, fmt_fraction, fmt_paired, paired_header
    from ecgcli.experiments.compare import paired_rows

    rows = paired_rows(comp)
    names, notes = short_names([r.method.name for r, _, _ in rows])
    table = Table(
        title=_title("Paired against the baseline"),
        title_justify="left",
        caption=Text(with_notes(PAIRED_CAPTION, notes)),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for i, column in enumerate(paired_header()):
        table.add_column(column, no_wrap=True, justify="left" if i == 0 else "center")
    for r, n, tests in rows:
        cells = [fmt_paired(t) for t in tests]
        table.add_row(Text(names[r.method.name]), fmt_fraction(r.method.label_fraction), str(n), *cells)
    return table


def class_table(comp: Comparison) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from ecgcli.cli.formats import fmt_fraction
    from ecgcli.experiments.compare import PER_CLASS
    from ecgcli.scoring.names import SHORT

    several = len(comp.fractions) > 1
    names, notes = short_names([r.method.name for r in comp.class_rows])
    table = Table(
        title=_title("Per class (test fold 10, thresholds tuned on fold 9)"),
        title_justify="left",
        caption=Text(
            with_notes(
                "best mean per class and column in bold; Δ relative to the baseline for that class", notes
            )
        ),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
    )
    cols = ("class", "method", "labels", "n") if several else ("class", "method", "n")
    for col in cols:
        table.add_column(col, no_wrap=True, justify="left" if col in ("class", "method") else "right")
    for k in PER_CLASS:
        table.add_column(SHORT[k], justify="center", no_wrap=True)
    table.add_column("Δ F1", justify="right", no_wrap=True)
    table.add_column("Δ AUROC", justify="right", no_wrap=True)
    rows = comp.class_rows
    for i, r in enumerate(rows):
        first = i == 0 or rows[i - 1].cls != r.cls
        last = i == len(rows) - 1 or rows[i + 1].cls != r.cls
        labels = [fmt_fraction(r.method.label_fraction)] if several else []
        table.add_row(
            r.cls if first else "",
            Text(names[r.method.name]),
            *labels,
            str(r.method.n),
            *(_cell(r, k) for k in PER_CLASS),
            _delta(r.delta_pct["f1"]),
            _delta(r.delta_pct["auroc"]),
            end_section=last,
        )
    return table


def curve_table(comp: Comparison, metric: str) -> Table:
    """Methods x label fractions: mean [95% t-CI] of a test metric over seeds."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from ecgcli.cli.formats import curve_title, fmt_fraction, fmt_mean_ci
    from ecgcli.experiments.compare import curve_rows

    fractions, rows = curve_rows(comp, metric)
    names, notes = short_names([name for name, _, _ in rows])
    table = Table(
        title=_title(curve_title(metric)),
        title_justify="left",
        caption=Text(with_notes("columns: labelled fraction of folds 1-8; test fold 10", notes))
        if notes
        else None,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("method", no_wrap=True)
    for lf in fractions:
        table.add_column(fmt_fraction(lf), justify="center", no_wrap=True)
    for name, is_base, cells in rows:
        label = Text(names[name])
        if is_base:
            label.append("\n(baseline)", style="dim")
        table.add_row(label, *(fmt_mean_ci(c, sep="\n") for c in cells))
    return table


def factor_table(comp: Comparison) -> Table:
    """Methods x the baseline's label fractions: the label-efficiency factor."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from ecgcli.cli.formats import FACTOR_CAPTION, factor_title, fmt_fraction
    from ecgcli.experiments.compare import factor_rows

    fractions, rows = factor_rows(comp)
    names, notes = short_names([name for name, _ in rows])
    table = Table(
        title=_title(factor_title(comp)),
        title_justify="left",
        caption=Text(with_notes(FACTOR_CAPTION, notes)),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("method", no_wrap=True)
    for lf in fractions:
        table.add_column(f"at {fmt_fraction(lf)}", justify="center", no_wrap=True)
    for name, cells in rows:
        texts = []
        for c in cells:
            if c is None:
                texts.append(Text("—"))
                continue
            style = "" if c.crossing.bound != "exact" else ("green" if c.crossing.factor > 1 else "red")
            texts.append(Text(c.text().replace(" [", "\n[").replace(" (", "\n("), style=style))
        table.add_row(Text(names[name]), *texts)
    return table


def selection_table(comp: Comparison) -> Table:
    """``--arm``: each arm's configuration at each label fraction, with every candidate's mean
    fold-9 macro AUROC."""
    from rich import box
    from rich.table import Table

    from ecgcli.cli.formats import fmt_fraction

    table = Table(
        title=_title("Each arm's configuration, chosen on the validation fold (9)"),
        title_justify="left",
        caption="highest mean fold-9 macro AUROC over the seeds at each label fraction; "
        "fold 10 takes no part in the choice",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for column in ("labels", "arm", "chosen", "candidates: fold-9 AUROC"):
        table.add_column(column)
    for c in comp.selection:
        table.add_row(fmt_fraction(c.label_fraction), c.arm, c.chosen, c.candidates_text())
    return table


def print_comparison(comp: Comparison, console=None) -> None:
    from ecgcli.experiments.compare import EFFICIENCY_METRICS

    console = console or table_console()
    if comp.selection:
        print_table(console, selection_table(comp))
        console.print()
    print_table(console, comparison_table(comp))
    if comp.has_paired:
        console.print()
        print_table(console, paired_table(comp))
    if comp.class_rows:
        console.print()
        print_table(console, class_table(comp))
    if comp.sweep:
        for metric in EFFICIENCY_METRICS:
            console.print()
            print_table(console, curve_table(comp, metric))
        if comp.efficiency.get(comp.efficiency_metric):
            console.print()
            print_table(console, factor_table(comp))


def compare(
    ctx: typer.Context,
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Run directories and/or multiseed results (multiseed.json or the folder holding it).",
            show_default=False,
        ),
    ],
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            help="Method the deltas and label-efficiency factors are relative to "
            "\\[default: the first supervised].",
        ),
    ] = None,
    per_class: Annotated[bool, typer.Option("--per-class", help="Also a table per class.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="table, markdown, csv or json.")] = "table",
    output: Annotated[
        Path | None, typer.Option("--output", help="Write the table to this file instead of stdout.")
    ] = None,
    plots: Annotated[
        Path | None,
        typer.Option("--plots", help='Write ROC and label-efficiency PNGs here (needs "ecgcli\\[plots]").'),
    ] = None,
    efficiency_metric: Annotated[
        str,
        typer.Option(
            "--efficiency-metric",
            help="Metric of the label-efficiency factor table of a label-fraction sweep: auroc or auprc.",
        ),
    ] = "auroc",
    arm: Annotated[
        list[str] | None,
        typer.Option(
            "--arm",
            help="ARM=CONFIG (repeatable; an arm may list several configurations): compare arms, "
            "each the configuration with the best mean fold-9 macro AUROC at each label fraction.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Compare runs side by side: AUROC, macro F1, sensitivity, specificity, Δ vs a baseline.

    Several seeds of a method give mean ± sd [95% t-CI]; Δ F1 and Δ AUROC are relative to the
    baseline in percent. Inputs must share the class order and the test set.

    A label-fraction sweep also gets AUROC and AUPRC per fraction (mean [95% t-CI]) and the
    label-efficiency factor of each method against the baseline (how many times fewer labels it
    needs to reach the baseline's score).

    With --arm, each arm is, at each label fraction, whichever of its configurations scored the
    best mean macro AUROC on fold 9: the strongest baseline at every fraction, chosen without
    looking at fold 10, and the same search for every arm.

    Example: ecg compare runs/multiseed runs/finetune-simclr-ft-s42 --per-class --plots figures
    """
    _compare(inputs, baseline, per_class, fmt, output, plots, efficiency_metric, arm or [])


def _compare(
    inputs: list[Path],
    baseline: str | None,
    per_class: bool,
    fmt: str,
    output: Path | None,
    plots: Path | None,
    efficiency_metric: str = "auroc",
    arms: list[str] | None = None,
) -> None:
    from ecgcli.cli.formats import to_csv, to_json, to_markdown
    from ecgcli.cli.render import err, progress_events
    from ecgcli.errors import ConfigError
    from ecgcli.experiments.compare import FORMATS, check_efficiency_metric, compare
    from ecgcli.experiments.inputs import load_inputs
    from ecgcli.files import write_text_atomic

    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    check_efficiency_metric(efficiency_metric)
    if plots is not None:
        from ecgcli.experiments.plots import pyplot

        pyplot()  # a missing matplotlib fails before any work
    with progress_events() as callback:
        methods = load_inputs(inputs, callback)
    comp = compare(methods, baseline, per_class, efficiency_metric, arms or ())
    if fmt == "table":
        if output is None:
            print_comparison(comp)
        else:
            import io

            from rich.console import Console

            buf = io.StringIO()
            print_comparison(comp, Console(file=buf, width=160, no_color=True, highlight=False))
            write_text_atomic(output, buf.getvalue())
    else:
        text = {"markdown": to_markdown, "csv": to_csv, "json": to_json}[fmt](comp)
        if output is None:
            typer.echo(text, nl=False)
        else:
            write_text_atomic(output, text)
    if output is not None:
        err.print(f"wrote {output}", soft_wrap=True, markup=False)
    if plots is not None:
        from ecgcli.experiments.plots import write_plots

        with progress_events() as callback:
            written = write_plots(comp.methods, plots, callback, comp.baseline)
        for path in written:
            err.print(f"wrote {path}", soft_wrap=True, markup=False)
        if not written:
            err.print("no plot written (no run has a readable predictions.npz)")
