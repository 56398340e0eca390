"""``ecg predict``: classify WFDB records with a trained checkpoint.

Thin: parse options, call :class:`ecgcli.inference.predict.Predictor`, render. torch, rich tables and
the core are imported inside the command, so ``ecg --help`` stays light.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ecgcli.cli.common import Device, JsonFlag, settings_from

if TYPE_CHECKING:
    from rich.text import Text

    from ecgcli.inference.onnx_runtime import OnnxPredictor
    from ecgcli.inference.predict import Failure, Prediction, Predictor


class Runtime(str, Enum):
    torch = "torch"
    onnx = "onnx"


class Aggregate(str, Enum):
    mean = "mean"
    max = "max"


Records = Annotated[
    list[Path],
    typer.Argument(
        help="WFDB records: a .hea or .dat file, a record name without suffix, or a folder (every "
        "record under it).",
        metavar="RECORD",
        show_default=False,
    ),
]
Checkpoint = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint",
        "-c",
        help="Classifier checkpoint (model.safetensors or its run folder); default: ECG_CHECKPOINT.",
        show_default=False,
    ),
]
AggregateOpt = Annotated[
    Aggregate | None,
    typer.Option(
        "--aggregate",
        help="How a long record's window probabilities are combined \\[default: the checkpoint's, "
        "as its run scored fold 10; mean for older checkpoints].",
    ),
]
CsvFlag = Annotated[bool, typer.Option("--csv", help="Print CSV on stdout, one row per record.")]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Windows per forward pass.")]
RuntimeOpt = Annotated[
    Runtime,
    typer.Option(
        "--runtime",
        help="torch: a safetensors checkpoint; onnx: an `ecg export` .onnx file scored with onnxruntime "
        "(no torch needed).",
    ),
]


def predict(
    ctx: typer.Context,
    records: Records,
    checkpoint: Checkpoint = None,
    aggregate: AggregateOpt = None,
    json_out: JsonFlag = False,
    csv_out: CsvFlag = False,
    device: Device = None,
    batch_size: BatchSize = 256,
    runtime: RuntimeOpt = Runtime.torch,
) -> None:
    """Classify WFDB records (NORM, MI, STTC, HYP, CD) with a trained classifier.

    Leads are matched by name (extra channels ignored), signals converted to mV and resampled
    to the model's rate; long records are scored window by window and aggregated, short ones
    zero-padded (with a warning). The checkpoint's normalisation and per-class thresholds
    (tuned on fold 9) apply.

    Exit codes: 0 all scored, 1 some records failed, 2 nothing could be scored or bad options.

    Example: ecg predict data/synth/records100/00000/00001_lr.hea -c runs/supervised/model.safetensors
    """
    from ecgcli.errors import ConfigError, EcgError

    if json_out and csv_out:
        raise ConfigError("--json and --csv cannot be used together (pick one output format)")

    from ecgcli.cli.render import progress_events
    from ecgcli.inference.predict import exit_code

    try:
        predictor, stems = _prepare(ctx, records, checkpoint, device, runtime)
        with progress_events() as callback:
            how = aggregate.value if aggregate is not None else predictor.aggregate
            results = list(predictor.predict(stems, how, callback, batch_size=batch_size))
    except EcgError as exc:
        # a script reading --json/--csv gets a document in its format even when nothing ran
        if json_out:
            _print_json_error(checkpoint, str(exc))
        elif csv_out:
            _print_csv_error(str(exc))
        raise

    if json_out:
        _print_json(predictor, results, how)
    elif csv_out:
        _print_csv(predictor, results)
    elif len(results) == 1 and not _failures(results):
        print_prediction(predictor, results[0], how)  # type: ignore[arg-type]
    elif len(results) > 1:
        _print_many(predictor, results)
    _report_failures(results)
    code = exit_code(results)
    if code:
        raise typer.Exit(code)


def _prepare(
    ctx: typer.Context, records: list[Path], checkpoint: Path | None, device: str | None, runtime: Runtime
):
    """The loaded predictor (torch or onnxruntime) and the resolved record stems; any problem
    is an EcgError."""
    from ecgcli.data.records import resolve_records
    from ecgcli.errors import ConfigError

    settings = settings_from(ctx, ("checkpoint", "device"), checkpoint=checkpoint, device=device)
    if settings.checkpoint is None:
        raise ConfigError("no checkpoint: pass --checkpoint PATH or set ECG_CHECKPOINT")
    stems = resolve_records(records)  # a typo fails here, before torch is even imported
    if runtime is Runtime.onnx:
        from ecgcli.inference.onnx_runtime import OnnxPredictor

        if device not in (None, "cpu"):
            raise ConfigError("--device applies to --runtime torch; onnx runs on the CPU")
        return OnnxPredictor.from_file(settings.checkpoint), stems
    from ecgcli.inference.predict import Predictor

    return Predictor.from_checkpoint(settings.checkpoint, device=settings.device), stems


def _failures(results: list) -> list[Failure]:
    from ecgcli.inference.predict import Failure

    return [r for r in results if isinstance(r, Failure)]


def _report_failures(results: list) -> None:
    """Each bad record as one red line on stderr, then how many were scored."""
    from ecgcli.cli.render import err, error_line

    failed = _failures(results)
    for f in failed:
        error_line(f.message)  # error_line escapes rich markup itself
    if failed and len(results) > 1:
        err.print(f"scored {len(results) - len(failed)} of {len(results)} records; {len(failed)} failed")


# --- human output ------------------------------------------------------------------------------

_BLOCKS = " ▏▎▍▌▋▊▉█"


def _bar(p: float, width: int = 24, style: str = "green") -> Text:
    """A horizontal bar ``p`` (0..1) of ``width`` cells, in eighths of a cell."""
    from rich.text import Text

    eighths = round(min(max(p, 0.0), 1.0) * width * 8)
    full, part = divmod(eighths, 8)
    bar = "█" * full + (_BLOCKS[part] if part else "")
    return Text(bar.ljust(width), style=style)


def print_prediction(predictor: Predictor | OnnxPredictor, pred: Prediction, aggregate: str) -> None:
    from rich.table import Table

    from ecgcli.cli.render import out

    windows = f"{pred.n_windows} window{'s' if pred.n_windows != 1 else ''} of {predictor.window_seconds:g} s"
    how = f", {aggregate} over windows" if pred.n_windows > 1 else ""
    padded = ", zero-padded" if pred.padded else ""
    table = Table(
        title=f"{pred.record}  ({pred.duration_s:.3g} s at {pred.fs_in:g} Hz; {windows}{how}{padded})",
        title_justify="left",
    )
    table.add_column("class", no_wrap=True)
    table.add_column("probability", justify="right", no_wrap=True)
    table.add_column("threshold", justify="right", no_wrap=True)
    table.add_column("above threshold", justify="center", no_wrap=True)
    table.add_column("", no_wrap=True)
    for name, p in pred.probabilities.items():
        above = pred.above(name)
        table.add_row(
            name,
            f"{p:.3f}",
            f"{pred.thresholds[name]:.3f}",
            "[bold green]yes[/]" if above else "[dim]no[/]",
            _bar(p, style="green" if above else "grey50"),
            style="bold" if above else None,
        )
    out.print(table)
    colour = "bold green" if pred.positive else "bold"
    out.print(f"[{colour}]{_escape(pred.verdict())}[/]", soft_wrap=True)


def _print_many(predictor: Predictor | OnnxPredictor, results: list) -> None:
    """One row per record; failed records show their problem in the last column."""
    from rich import box
    from rich.table import Table

    from ecgcli.cli.render import out
    from ecgcli.inference.predict import Failure

    names = predictor.class_names
    base = _common_folder([r.record for r in results])
    table = Table(
        title=f"{len(results)} records under {base}" if base else f"{len(results)} records",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        caption="probability per class; bold green = at or above the checkpoint's threshold ("
        + ", ".join(f"{c} {t:.2f}" for c, t in zip(names, predictor.thresholds, strict=True))
        + ")",
        caption_justify="left",
    )
    table.add_column("record", overflow="fold")
    table.add_column("top", no_wrap=True)
    for name in names:
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("positive classes")
    for r in results:
        if isinstance(r, Failure):
            table.add_row(
                _short(r.record, base), "", *([""] * len(names)), f"[red]error: {_escape(r.problem)}[/]"
            )
            continue
        cells = [
            f"[bold green]{r.probabilities[c]:.3f}[/]" if r.above(c) else f"{r.probabilities[c]:.3f}"
            for c in names
        ]
        positive = ", ".join(r.positive) if r.positive else "[dim]none[/]"
        table.add_row(
            _short(r.record, base),
            r.top_class,
            *cells,
            positive + (" [yellow](padded)[/]" if r.padded else ""),
        )
    out.print(table)


def _common_folder(records: list[str]) -> str:
    """The deepest folder holding every record ("" when they share none worth naming)."""
    import os

    try:
        base = os.path.commonpath([os.path.dirname(r) for r in records])
    except ValueError:  # absolute and relative paths mixed
        return ""
    return "" if base in ("", ".", os.sep) else base


def _short(record: str, base: str) -> str:
    """A record's path relative to ``base``, escaped for rich markup."""
    import os

    return _escape(os.path.relpath(record, base) if base else record)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


# --- machine output ----------------------------------------------------------------------------


def _print_json(predictor: Predictor | OnnxPredictor, results: list, aggregate: str) -> None:
    import json
    import sys

    from ecgcli.inference.predict import Failure

    doc = {
        "checkpoint": str(predictor.checkpoint),
        "class_names": list(predictor.class_names),
        "thresholds": dict(zip(predictor.class_names, predictor.thresholds.tolist(), strict=True)),
        "sampling_rate": predictor.fs,
        "window": predictor.window,
        "leads": list(predictor.leads),
        "aggregate": aggregate,
        "predictions": [r.to_dict() for r in results if not isinstance(r, Failure)],
        "errors": [r.to_dict() for r in results if isinstance(r, Failure)],
    }
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    sys.stdout.flush()


def _print_json_error(checkpoint: Path | None, message: str) -> None:
    """The errors-only JSON document: what was asked, no predictions, the one problem."""
    import json
    import sys

    doc = {
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "predictions": [],
        "errors": [{"record": None, "problem": message}],
    }
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    sys.stdout.flush()


def _print_csv_error(message: str) -> None:
    """The errors-only CSV: a header and one row holding the problem."""
    import csv
    import sys

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["record", "error"])
    writer.writerow(["", message])
    sys.stdout.flush()


def _print_csv(predictor: Predictor | OnnxPredictor, results: list) -> None:
    import csv
    import sys

    from ecgcli.inference.predict import Failure

    names = predictor.class_names
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["record", *names, *(f"{c}_positive" for c in names), "n_windows", "padded", "error"])
    for r in results:
        if isinstance(r, Failure):
            writer.writerow([r.record, *([""] * (2 * len(names))), "", "", r.problem])
        else:
            writer.writerow(
                [
                    r.record,
                    *(f"{r.probabilities[c]:.6f}" for c in names),
                    *(int(r.above(c)) for c in names),
                    r.n_windows,
                    int(r.padded),
                    "",
                ]
            )
    sys.stdout.flush()
