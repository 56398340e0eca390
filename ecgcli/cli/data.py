"""``ecg data``: verify a PTB-XL folder, build its signal cache, make a synthetic one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ecgcli import DEFAULT_TASK
from ecgcli.cli.common import DataRoot, JsonFlag, SamplingRate, Workers, settings_from
from ecgcli.train.config import RunConfig, option_help

if TYPE_CHECKING:
    from ecgcli.data.verify import VerifyReport

app = typer.Typer(
    help="Check PTB-XL folders, build the signal cache, generate synthetic PTB-XL.",
    no_args_is_help=True,
)

Task = Annotated[
    str,
    typer.Option(
        "--task",
        help=option_help(RunConfig, "task")["help"],
    ),
]


@app.command()
def verify(
    ctx: typer.Context,
    data_root: DataRoot = None,
    sampling_rate: SamplingRate = None,
    workers: Workers = None,
    as_json: JsonFlag = False,
    show: Annotated[int, typer.Option("--show", min=0, help="Problem records to list.")] = 20,
    task: Task = DEFAULT_TASK,
) -> None:
    """Check a PTB-XL folder: tables, every record, folds, a task's classes per fold.

    Every record must exist and read with the right rate, shape (12 x 1000 or 12 x 5000),
    leads and units, without missing samples; flat leads are reported as warnings.
    --task picks the label set counted (records of the task and each class per fold).
    Exit status: 0 clean, 1 problems found, 2 not a PTB-XL folder or unknown task.

    Example: ecg data verify --data-root data/PTB-XL --task rhythm --json > report.json
    """
    from ecgcli.cli import machine
    from ecgcli.cli.render import progress_events
    from ecgcli.data.tasks import check_task
    from ecgcli.data.verify import verify_folder
    from ecgcli.errors import DataError

    machine.declare(ctx, "json" if as_json else None, _verify_error_document)
    check_task(task)
    s = settings_from(
        ctx,
        ("data_root", "sampling_rate", "workers"),
        data_root=data_root,
        sampling_rate=sampling_rate,
        workers=workers,
    )
    try:
        with progress_events() as callback:
            report = verify_folder(s.data_root, s.sampling_rate, s.resolved_workers(), callback, task)
    except DataError as exc:
        raise DataError(f"not a usable PTB-XL folder: {exc}", exit_code=2) from None
    if as_json:
        machine.write(ctx, json.dumps(report.to_dict(), indent=2))
    else:
        print_verify_report(report, show)
    raise typer.Exit(report.exit_code)


def _verify_error_document(message: str, exit_code: int) -> str:
    """verify's JSON when it could not check the folder: the report's ``status`` key (clean or
    problems on success) says ``not_ptbxl`` for a folder that is not PTB-XL, ``error`` else."""
    from ecgcli.cli.machine import json_text

    status = "not_ptbxl" if message.startswith("not a usable PTB-XL folder") else "error"
    return json_text({"status": status, "error": message, "exit_code": exit_code})


#: Up to this many classes the table has one column per class; beyond, one row per class.
_WIDE_CLASSES = 6


def _fold_table(report: VerifyReport):
    from rich.table import Table

    classes = list(report.class_counts)
    title = f"{report.root} ({report.sampling_rate} Hz), task {report.task}: {len(classes)} classes"
    table = Table(title=title, title_justify="left")
    if len(classes) <= _WIDE_CLASSES:
        for col in ("fold", "records", "labelled", *classes):
            table.add_column(col, justify="right")
        for fold, counts in report.folds.items():
            role = {9: " val", 10: " test"}.get(fold, " train")
            table.add_row(f"{fold}{role}", *(str(counts[k]) for k in ("records", "labelled", *classes)))
        table.add_section()
        table.add_row(
            "all",
            str(report.n_records),
            str(report.n_labelled),
            *(str(report.class_counts[c]) for c in classes),
            style="bold",
        )
        return table
    from rich import box

    # one row per class, compact enough for 80 columns; folds 9 and 10 are val and test
    table = Table(
        title=f"{title} (folds 1-8 train, 9 val, 10 test)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    folds = list(report.folds)
    table.add_column("fold", no_wrap=True)
    for fold in folds:
        table.add_column(str(fold), justify="right", no_wrap=True)
    table.add_column("all", justify="right", style="bold", no_wrap=True)
    for key in ("records", "labelled"):
        total = report.n_records if key == "records" else report.n_labelled
        table.add_row(key, *(str(report.folds[f][key]) for f in folds), str(total), style="bold")
    table.add_section()
    for c in classes:
        cells = [str(report.folds[f][c]) for f in folds]
        style = "red" if any(report.folds[f][c] == 0 for f in folds) else None
        table.add_row(c, *cells, str(report.class_counts[c]), style=style)
    return table


def print_verify_report(report: VerifyReport, show: int) -> None:
    from ecgcli.cli.render import out

    out.print(_fold_table(report))
    for title, findings, style in (
        ("problems", report.problems, "red"),
        ("warnings", report.warnings, "yellow"),
    ):
        if not findings:
            continue
        out.print(f"[{style}]{len(findings)} {title}[/]")
        for f in findings[:show]:
            where = f"ecg_id {f.ecg_id} ({f.record}): " if f.ecg_id is not None else ""
            out.print(f"  [{style}]•[/] {where}{f.message}", soft_wrap=True)
        if len(findings) > show:
            out.print(f"  … and {len(findings) - show} more (--show N or --json for all)")
    verdict = "[green]clean[/]" if report.ok else f"[red]{len(report.problems)} problem(s)[/]"
    out.print(f"{verdict}: {report.n_records} records checked in {report.seconds:.1f} s")


@app.command()
def cache(
    ctx: typer.Context,
    data_root: DataRoot = None,
    sampling_rate: SamplingRate = None,
    workers: Workers = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", help="Cache folder \\[default: ECG_CACHE_DIR or data/cache]."),
    ] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild even if up to date.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Build the memory-mapped signal cache (every record read once, in parallel).

    The cache is reused while its manifest matches the records; a stale or corrupt one is
    rebuilt.
    Training commands do this on first use; run it ahead of time to see it happen.

    Example: ecg data cache --data-root data/PTB-XL --workers 2
    """
    from ecgcli.cli import machine
    from ecgcli.cli.render import out, progress_events
    from ecgcli.data.cache import ensure_cache
    from ecgcli.data.ptbxl import load_ptbxl

    machine.declare(ctx, "json" if as_json else None)
    s = settings_from(
        ctx,
        ("data_root", "sampling_rate", "workers", "cache_dir"),
        data_root=data_root,
        sampling_rate=sampling_rate,
        workers=workers,
        cache_dir=cache_dir,
    )
    with progress_events() as callback:
        ds = load_ptbxl(s.data_root, s.sampling_rate)
        store = ensure_cache(ds, s.cache_dir, s.resolved_workers(), callback, rebuild=rebuild)
    m = store.manifest
    size_mb = store.signals.nbytes / 1e6
    if as_json:
        machine.write(ctx, json.dumps({"path": str(store.path), "size_mb": round(size_mb, 1), **m}, indent=2))
        return
    out.print(
        f"[green]cache ready[/] {store.path}\n"
        f"  {m['n_records']} records x 12 leads x {m['length']} samples "
        f"at {m['sampling_rate']} Hz, int16, {size_mb:.0f} MB, id {m['cache_id']}, "
        f"built in {m['build_seconds']} s"
    )
    if m["invalid_samples"]["records"]:
        out.print(
            f"  [yellow]{m['invalid_samples']['records']} record(s) had missing samples (stored as 0 mV)[/]"
        )


@app.command()
def synth(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Option("--out", help="New folder to write (must be empty).")],
    records: Annotated[int, typer.Option("--records", min=1, help="Number of records.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same dataset.")] = 0,
    sampling_rate: Annotated[
        int, typer.Option("--sampling-rate", help="100 (records100) or 500 (records500 and 100).")
    ] = 100,
    workers: Workers = None,
) -> None:
    """Write a synthetic PTB-XL folder (tables, WFDB records) for tests and demos.

    Real table formats and SCP statements; record morphology follows the labels (Q waves and
    ST elevation for MI, ST-T changes, high voltage, wide QRS and long PR) with PTB-XL's class
    imbalance and co-occurrence, and every benchmark task has labels: rhythm by rate and RR
    (SR, SBRAD, STACH, SARRH, AFIB), form (INVT, LVOLT, PVC, NDT, NST_), subclasses.

    Example: ecg data synth --out data/synth --records 2000 --seed 0
    """
    from ecgcli.cli.render import out, progress_events
    from ecgcli.data.synth import write_synthetic_ptbxl

    n_workers = settings_from(ctx, ("workers",), workers=workers).resolved_workers()
    with progress_events() as callback:
        db = write_synthetic_ptbxl(out_dir, records, seed, sampling_rate, n_workers, callback)
    out.print(
        f"[green]wrote[/] {len(db)} synthetic records to {out_dir} "
        f"({sampling_rate} Hz, seed {seed}). Next: ecg data verify --data-root {out_dir}"
    )
