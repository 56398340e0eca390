"""``ecg predict``: classify WFDB records with a trained checkpoint.

Thin: parse options, call :class:`ecgcli.inference.predict.Predictor`, render. torch, rich tables and
the core are imported inside the command, so ``ecg --help`` stays light.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ecgcli.cli.common import Device, JsonFlag, settings_from

if TYPE_CHECKING:
    from ecgcli.inference.onnx_runtime import OnnxPredictor
    from ecgcli.inference.predict import Failure, Prediction, Predictor


class Runtime(str, Enum):
    auto = "auto"
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
        "--model",
        help="Classifier checkpoint (model.safetensors or its run folder) or a shipped model's name "
        "(`ecg models --pretrained`) \\[default: ECG_CHECKPOINT, else the shipped default model].",
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
        help="auto: onnx for a shipped model or an .onnx file when onnxruntime is installed, else "
        "torch; torch: a safetensors checkpoint; onnx: an `ecg export` .onnx file scored with onnxruntime "
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
    runtime: RuntimeOpt = Runtime.auto,
) -> None:
    """Classify WFDB records with a trained classifier (the default: NORM, MI, STTC, HYP, CD).

    Leads are matched by name (extra channels ignored), signals converted to mV and resampled
    to the model's rate; long records are scored window by window and aggregated, short ones
    zero-padded (with a warning). The checkpoint's normalisation and per-class thresholds
    (tuned on fold 9) apply.

    Exit codes: 0 all scored, 1 some records failed, 2 nothing could be scored or bad options.

    Example: ecg predict examples/records/*.hea -c ptbxl-all
    """
    from ecgcli.cli import machine
    from ecgcli.errors import ConfigError

    fmt = "json" if json_out else "csv" if csv_out else None
    asked = _Asked(list(records), checkpoint)
    # a script reading --json/--csv gets a document of the same shape even when nothing ran
    machine.declare(ctx, fmt, None if fmt is None else functools.partial(_error_document, fmt, asked))
    if json_out and csv_out:
        raise ConfigError("--json and --csv cannot be used together (pick one output format)")

    from ecgcli.cli.render import progress_events
    from ecgcli.inference.predict import exit_code

    predictor, stems = _prepare(ctx, records, checkpoint, device, runtime)
    asked.class_names = tuple(predictor.class_names)
    with progress_events() as callback:
        how = aggregate.value if aggregate is not None else predictor.aggregate
        results = list(predictor.predict(stems, how, callback, batch_size=batch_size))
    code = exit_code(results)
    if json_out:
        machine.write(ctx, machine.json_text(_json_document(predictor, results, how, code)))
    elif csv_out:
        names = predictor.class_names
        machine.write(ctx, machine.csv_text([_csv_header(names), *(_csv_row(names, r) for r in results)]))
    elif len(results) == 1 and not _failures(results):
        from ecgcli.cli.predict_view import print_prediction

        print_prediction(predictor, results[0], how)  # type: ignore[arg-type]
    elif len(results) > 1:
        from ecgcli.cli.predict_view import print_many

        print_many(predictor, results)
    _report_failures(results)
    if code:
        raise typer.Exit(code)


def _prepare(
    ctx: typer.Context, records: list[Path], checkpoint: Path | None, device: str | None, runtime: Runtime
):
    """The loaded predictor (torch or onnxruntime) and the resolved record stems; any problem
    is an EcgError."""
    from ecgcli import pretrained
    from ecgcli.data.records import resolve_record_args
    from ecgcli.errors import ConfigError

    settings = settings_from(ctx, ("checkpoint", "device"), checkpoint=checkpoint, device=device)
    value = classifier_value(settings.checkpoint)
    stems = resolve_record_args(records)  # a typo is that record's failure, in its place
    if runtime is Runtime.auto:
        runtime = _auto_runtime(value, settings.device)
    path = pretrained.resolve(value, runtime=runtime.value)
    if runtime is Runtime.onnx:
        from ecgcli.inference.onnx_runtime import OnnxPredictor

        if device not in (None, "cpu"):
            raise ConfigError("--device applies to --runtime torch; onnx runs on the CPU")
        return OnnxPredictor.from_file(path), stems
    from ecgcli.inference.predict import Predictor

    return Predictor.from_checkpoint(path, device=settings.device), stems


def classifier_value(setting: Path | None) -> Path | str:
    """The checkpoint a command uses: ``-c`` or ECG_CHECKPOINT, else the shipped default model."""
    from ecgcli import pretrained
    from ecgcli.errors import ConfigError

    value = setting if setting is not None else pretrained.default_classifier()
    if value is None:
        raise ConfigError(
            "no checkpoint: pass --checkpoint PATH (or a shipped model's name: ecg models --pretrained) "
            "or set ECG_CHECKPOINT"
        )
    return value


def _auto_runtime(value: Path | str, device: str) -> Runtime:
    """onnx where it gives the same probabilities faster: an .onnx file, or a shipped model
    (which carries its ONNX file) on the CPU with onnxruntime installed; torch otherwise."""
    import importlib.util

    from ecgcli import pretrained

    if str(value).endswith(".onnx"):
        return Runtime.onnx
    shipped = pretrained.named(value)
    if (
        shipped is not None
        and shipped.has("onnx")
        and device in ("auto", "cpu")
        and importlib.util.find_spec("onnxruntime") is not None
    ):
        return Runtime.onnx
    return Runtime.torch


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


# --- machine output ----------------------------------------------------------------------------


@dataclass
class _Asked:
    """What the command was asked: enough for an error document before anything was scored."""

    records: list[Path]
    checkpoint: Path | str | None
    class_names: tuple[str, ...] | None = None


def _json_document(
    predictor: Predictor | OnnxPredictor | None, results: list, aggregate: str | None, exit_code: int
) -> dict:
    """The JSON document; ``error`` is None unless the command failed as a whole, and every
    key is present either way, so a script reads the same shape on success and on error."""
    from ecgcli.inference.predict import Failure

    names = None if predictor is None else list(predictor.class_names)
    return {
        "checkpoint": None if predictor is None else str(predictor.checkpoint),
        "class_names": names,
        "thresholds": None
        if predictor is None
        else dict(zip(predictor.class_names, predictor.thresholds.tolist(), strict=True)),
        "sampling_rate": None if predictor is None else predictor.fs,
        "window": None if predictor is None else predictor.window,
        "leads": None if predictor is None else list(predictor.leads),
        "aggregate": aggregate,
        "predictions": [r.to_dict() for r in results if not isinstance(r, Failure)],
        "errors": [r.to_dict() for r in results if isinstance(r, Failure)],
        "error": None,
        "exit_code": exit_code,
    }


def _csv_header(names: tuple[str, ...] | list[str]) -> list[str]:
    """``record``, a probability and a positive flag per class, then ``n_windows``,
    ``padded``, ``warnings``, ``labels`` (the record's own, from its header) and ``error``: the
    same columns for a scored and a failed record."""
    return [
        "record", *names, *(f"{c}_positive" for c in names),
        "n_windows", "padded", "warnings", "labels", "error",
    ]  # fmt: skip


def _csv_row(names: tuple[str, ...] | list[str], r: Prediction | Failure) -> list:
    from ecgcli.inference.predict import Failure

    if isinstance(r, Failure):
        return [r.record, *([""] * (2 * len(names))), "", "", "", "", r.problem]
    return [
        r.record,
        *(f"{r.probabilities[c]:.6f}" for c in names),
        *(int(r.above(c)) for c in names),
        r.n_windows,
        int(r.padded),
        "; ".join(r.warnings),
        "" if r.labels is None else ";".join(r.labels) or "none",
        "",
    ]


def _error_document(fmt: str, asked: _Asked, message: str, exit_code: int) -> str:
    """The document for a command that failed as a whole (no checkpoint, bad options,
    Ctrl-C): the success document's shape, every requested record failed with ``message``.
    The CSV header has the class columns whenever the checkpoint's sidecar names them."""
    from ecgcli.cli.machine import csv_text, json_text
    from ecgcli.inference.predict import Failure

    failed = [Failure(str(r), message) for r in asked.records]
    if fmt == "json":
        doc = _json_document(None, failed, None, exit_code)
        doc["checkpoint"] = None if asked.checkpoint is None else str(asked.checkpoint)
        doc["class_names"] = None if asked.class_names is None else list(asked.class_names)
        return json_text({**doc, "error": message})
    names = asked.class_names or _sidecar_class_names(asked.checkpoint) or ()
    return csv_text([_csv_header(names), *(_csv_row(names, f) for f in failed)])


def _sidecar_class_names(checkpoint: Path | str | None) -> tuple[str, ...] | None:
    """The class names a checkpoint's JSON sidecar lists (read as text, nothing validated:
    only for the columns of an error document), or None."""
    import json

    if checkpoint is None:
        return None
    path = Path(checkpoint)
    path = path / "model.safetensors" if path.is_dir() else path
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    names = meta.get("class_names") if isinstance(meta, dict) else None
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        return tuple(names)
    return None
