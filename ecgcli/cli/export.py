"""``ecg export``: a checkpoint as a portable ONNX or TorchScript model, verified before writing.

Thin: parse options, call :func:`ecgcli.inference.export.export_model`, print what it measured.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ecgcli.cli.common import JsonFlag, settings_from
from ecgcli.cli.options import Force
from ecgcli.cli.predict import Checkpoint, classifier_value


class Format(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"


def export(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path | None,
        typer.Argument(
            help="Classifier checkpoint (model.safetensors or its run folder) or a shipped model's name "
            "\\[default: -c, ECG_CHECKPOINT, else the shipped default model].",
            show_default=False,
        ),
    ] = None,
    model: Checkpoint = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="onnx or torchscript.")] = Format.onnx,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="File to write \\[default: model.onnx or model.torchscript.pt beside the checkpoint].",
        ),
    ] = None,
    check_records: Annotated[
        int,
        typer.Option("--check-records", min=100, help="Simulated records the exported model is checked on."),
    ] = 128,
    json_out: JsonFlag = False,
    force: Force = False,
) -> None:
    """Export a classifier with its normalisation baked in: mV in, probabilities out.

    Before anything is written, the exported model and the safetensors model score the same
    simulated ECGs and must agree to 1e-5 in every probability; the measured maximum is
    printed. An existing --out is replaced only if it is an earlier export (else --force).
    Class names, thresholds, rate and window travel in the file's metadata, so
    `ecg predict --runtime onnx -c model.onnx` needs no torch. ONNX needs the onnx extra.

    A shipped model's name exports it to NAME.onnx in the working folder.

    Example: ecg export runs/supervised --format onnx --out model.onnx
    """
    from ecgcli import pretrained
    from ecgcli.cli import machine
    from ecgcli.errors import ConfigError
    from ecgcli.inference.export import export_model

    machine.declare(ctx, "json" if json_out else None)  # an error is a JSON document too

    if checkpoint is not None and model is not None:
        raise ConfigError("give the checkpoint once: as the argument or as -c/--model, not both")
    settings = settings_from(ctx, ("checkpoint",), checkpoint=checkpoint if checkpoint is not None else model)
    value = classifier_value(settings.checkpoint)
    path = pretrained.resolve(value)
    suffix = "onnx" if fmt is Format.onnx else "torchscript.pt"
    if out is None and pretrained.named(value) is not None:  # never write into the package
        out = Path(f"{value}.{suffix}")
    elif out is None:
        base = path if path.is_dir() else path.parent
        out = base / f"model.{suffix}"
    report = export_model(path, fmt.value, out, n_check=check_records, force=force)
    if json_out:
        import json

        doc = {
            "path": str(report.path),
            "format": report.format,
            "checked_records": report.n_checked,
            "max_abs_delta_probability": report.max_delta,
            "bytes": report.size_bytes,
        }
        machine.write(ctx, json.dumps(doc, indent=2))
        return
    from rich.markup import escape

    from ecgcli.cli.render import out as console

    console.print(
        f"wrote {escape(str(report.path))} ({report.format}, {report.size_bytes / 1024:.0f} KiB); "
        f"checked on {report.n_checked} simulated records: max |delta p| = {report.max_delta:.2e} "
        f"(limit 1e-05)",
        soft_wrap=True,
    )
