"""``ecg benchmark``: encoders x tasks x label fractions x seeds, and the leaderboard."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ecgcli import TASKS
from ecgcli.cli.options import Options, config_options, settings_options
from ecgcli.experiments.spec import GRID_OWN
from ecgcli.train.config import SupervisedConfig


@config_options(SupervisedConfig, exclude=(*GRID_OWN, "task", "encoder"), defaults={"recipe": "benchmark"})
@settings_options
def benchmark(
    ctx: typer.Context,
    options: Options,
    settings: dict[str, Any],
    encoders: Annotated[
        str,
        typer.Option("--encoders", help="Comma-separated encoders (see `ecg models`)."),
    ] = "resnet1d_wang,xresnet1d101,inception1d",
    tasks: Annotated[str, typer.Option("--tasks", help="Comma-separated tasks.")] = ",".join(TASKS),
    label_fraction: Annotated[
        float, typer.Option("--label-fraction", help="Fraction of labelled folds 1-8 to train on, (0, 1].")
    ] = 1.0,
    seeds: Annotated[str, typer.Option("--seeds", help="Comma-separated seeds.")] = "42",
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder \\[default: <runs dir>/benchmark].")
    ] = None,
    jobs: Annotated[
        int, typer.Option("--jobs", min=0, help="Runs trained in parallel processes; 0 = one per GPU.")
    ] = 1,
    show: Annotated[
        bool, typer.Option("--show", help="Only print the leaderboard of what has finished; train nothing.")
    ] = False,
) -> None:
    """Reproduce the PTB-XL benchmark's leaderboard: encoders x tasks x seeds, then a table of
    fold-10 macro AUROC with bootstrap bands beside the published values.

    One multiseed grid per task under --out/<task>/, each encoder trained as
    bce+standard\\[encoder=NAME] with the benchmark's recipe (--recipe); any training option
    overrides it. Rerunning the same command resumes: finished runs are reused.

    Example: ecg benchmark --encoders resnet1d_wang --tasks superdiagnostic,rhythm --seeds 42,52
    """
    from ecgcli.cli.render import MultiseedView
    from ecgcli.cli.render import out as stdout
    from ecgcli.experiments.benchmark import plan, run_benchmark, write_leaderboard
    from ecgcli.experiments.runner import resolve_jobs
    from ecgcli.experiments.spec import parse_fractions, parse_seeds

    encoder_list = [e.strip() for e in encoders.split(",") if e.strip()]
    task_list = [t.strip() for t in tasks.split(",") if t.strip()]
    (fraction,) = parse_fractions(str(label_fraction))
    out_dir = out if out is not None else Path(settings["runs_dir"]) / "benchmark"
    common = {**settings, **options}
    grids = plan(encoder_list, task_list, (fraction,), parse_seeds(seeds), common, out_dir, options.given)
    if not show:
        with MultiseedView() as view:
            run_benchmark(grids, view, resolve_jobs(jobs, settings["device"]))
    table, path = write_leaderboard(out_dir, encoder_list, task_list, fraction)
    stdout.print(leaderboard_table(table, task_list, fraction))
    stdout.print(f"leaderboard: {path}", soft_wrap=True, markup=False)


def leaderboard_table(table: dict[str, Any], tasks: list[str], fraction: float) -> Any:
    """The leaderboard as a rich table: rows = encoders, columns = tasks."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from ecgcli.experiments.benchmark import ANCHOR_SOURCE, anchor_rows, fmt_cell

    later = anchor_rows(tasks, fraction)
    t = Table(
        title=f"PTB-XL fold-10 macro AUROC, {100 * fraction:g}% of the labels",
        title_justify="left",
        caption=Text(
            "ours: mean over seeds [percentile bootstrap 95% band over test records] (seeds, "
            "epochs trained) / published: Strodthoff et al. 2021 (± their bootstrap half-width)"
            + (f". {ANCHOR_SOURCE}" if later else "")
        ),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
    )
    t.add_column("model", no_wrap=True)
    for task in tasks:
        t.add_column(task, justify="right")
    for encoder, cells in table.items():
        t.add_row(encoder, *(Text(fmt_cell(cells[task])) for task in tasks))
    if later:
        t.add_section()
    for label, cells in later:
        t.add_row(Text(label, style="dim"), *(Text(c, style="dim") for c in cells))
    return t
