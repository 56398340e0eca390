"""``ecg explain``: a record on ECG paper with the attribution of a class shaded over it.

Thin: parse options, call :mod:`ecgcli.inference.explain` and :mod:`ecgcli.inference.ecgpaper`,
render. torch, matplotlib and the core are imported inside the command.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ecgcli.cli.common import Device, JsonFlag, settings_from
from ecgcli.cli.predict import Checkpoint, classifier_value


class Method(str, Enum):
    ig = "ig"
    gradxinput = "gradxinput"


Record = Annotated[
    Path,
    typer.Argument(help="One WFDB record: a .hea or .dat file or a record name.", show_default=False),
]
Out = Annotated[
    Path | None,
    typer.Option(
        "--out", "-o", help="Write the figure here (PNG; needs the plots extra).", show_default=False
    ),
]
ClassName = Annotated[
    str | None,
    typer.Option(
        "--class",
        help="Explain this class \\[default: every class above its threshold, else the top class].",
        show_default=False,
    ),
]
MethodOpt = Annotated[
    Method,
    typer.Option("--method", help="ig: integrated gradients; gradxinput: gradient x input."),
]
Steps = Annotated[int, typer.Option("--steps", min=1, help="Integrated-gradients interpolation steps.")]


def explain(
    ctx: typer.Context,
    record: Record,
    checkpoint: Checkpoint = None,
    out: Out = None,
    class_name: ClassName = None,
    method: MethodOpt = Method.ig,
    steps: Steps = 32,
    json_out: JsonFlag = False,
    device: Device = None,
) -> None:
    """Show which leads and moments of a record drove a class score, on ECG paper.

    The record is scored exactly as `ecg predict` scores it; each window's logit for the class
    is attributed to the input (integrated gradients from a flat 0 mV baseline, or gradient x
    input) and shaded over the standard 3 x 4 layout plus a lead II rhythm strip (25 mm/s,
    10 mm/mV): red raises the score, blue lowers it. --json prints per-lead totals.

    Example: ecg explain data/synth/records100/00000/00001_lr -c runs/supervised --out fig.png
    """
    from ecgcli import pretrained
    from ecgcli.cli import machine
    from ecgcli.errors import ConfigError

    machine.declare(ctx, "json" if json_out else None)  # an error is a JSON document too
    if out is None and not json_out:
        raise ConfigError("nothing to do: pass --out FIG.png, --json, or both")
    settings = settings_from(ctx, checkpoint=checkpoint, device=device)
    checkpoint_path = pretrained.resolve(classifier_value(settings.checkpoint))
    if out is not None:
        from ecgcli.files import probe_writable
        from ecgcli.inference.ecgpaper import pyplot

        pyplot()  # no matplotlib: say so before any work
        if out.is_dir():
            raise ConfigError(f"--out {out} is a folder; give a file name such as {out / 'explain.png'}")
        probe_writable(out.parent, "--out folder")

    from ecgcli.data.records import resolve_records
    from ecgcli.inference.explain import check_options, explain_record
    from ecgcli.inference.predict import Predictor

    stems = resolve_records([record])
    if len(stems) != 1:
        raise ConfigError(f"{record}: explain takes one record, this folder has {len(stems)}")
    predictor = Predictor.from_checkpoint(checkpoint_path, device=settings.device)
    check_options(predictor, class_name, method.value, steps)
    expl = explain_record(predictor, stems[0], class_name, method.value, steps)
    if expl.warnings:
        from ecgcli.cli.render import warn_line

        for text in expl.warnings:
            warn_line(text)
    figure: dict = {}
    if out is not None:
        from ecgcli.cli.render import warn_line
        from ecgcli.inference.ecgpaper import draw_explanation, figure_note, shown_seconds

        draw_explanation(expl, out)
        figure = {"figure_seconds": [0.0, shown_seconds(expl)]}
        note = figure_note(expl)
        if note is not None:
            warn_line(note)
    if json_out:
        import json

        doc = {
            "checkpoint": str(predictor.checkpoint),
            "figure": str(out) if out else None,
            **figure,
            **expl.to_dict(),
        }
        machine.write(ctx, json.dumps(doc, indent=2))
        return
    _print_summary(expl, out)


def _print_summary(expl, out: Path | None) -> None:
    from rich.markup import escape

    from ecgcli.cli.render import out as console

    for name in expl.classes:
        totals = expl.lead_totals(name)
        top = sorted(totals, key=lambda k: -totals[k])[:3]
        p, t = expl.probabilities[name], expl.thresholds[name]
        console.print(
            f"[bold]{name}[/] p {p:.3f} ({'above' if p >= t else 'below'} threshold {t:.3f}); "
            f"leads raising it most: {', '.join(top)}",
            soft_wrap=True,
        )
    if expl.chosen == "top class":
        console.print("[dim]no class above its threshold: explained the top class[/]")
    if out is not None:
        console.print(f"wrote {escape(str(out))}", soft_wrap=True)
