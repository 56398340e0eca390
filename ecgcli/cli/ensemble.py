"""``ecg ensemble``: average several trained classifiers into one scored, loadable model.

Thin: parse options, call :func:`ecgcli.experiments.ensemble.build_ensemble`, print its scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ecgcli.cli.common import JsonFlag


def ensemble(
    ctx: typer.Context,
    members: Annotated[
        list[Path],
        typer.Argument(
            help="Run folders of trained classifiers of one task (or their model.safetensors).",
            show_default=False,
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the ensemble to (new or empty).")],
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", min=1, help="Bootstrap replicates of the fold-10 intervals.")
    ] = 1000,
    json_out: JsonFlag = False,
) -> None:
    """Average the calibrated probabilities of several classifiers (other encoders or seeds).

    Members must share task, classes, leads, sampling rate, window, stride and aggregation.
    Nothing is chosen on fold 10: thresholds are re-tuned on fold 9 from the averaged fold-9
    probabilities, and the ensemble is compared with its best member by fold-9 AUROC, by a
    paired bootstrap on the same fold-10 records. DIR gets metrics.json, predictions.npz and
    model.safetensors + model.json, which predict, explain, export and compare accept.

    Example: ecg ensemble runs/s4-s1 runs/wang-s1 runs/wang-s2 --out runs/ensemble
    """
    from ecgcli.cli import machine
    from ecgcli.experiments.ensemble import build_ensemble

    machine.declare(ctx, "json" if json_out else None)  # an error is a JSON document too
    result = build_ensemble(list(members), out, n_boot=bootstrap)
    m = result.metrics
    if json_out:
        import json

        from ecgcli.files import json_safe

        doc = {
            "out": str(result.out),
            "members": m["members"],
            "best_member": m["best_member"],
            "test_auroc": m["test_tuned"]["macro_auroc"],
            "test_auprc": m["test_tuned"]["macro_auprc"],
            "test_fmax": m["test_tuned"]["sample_f1"],
            "bootstrap": m["bootstrap"],
            "vs_best_member": m["vs_best_member"],
        }
        machine.write(ctx, json.dumps(json_safe(doc), indent=2))
        return
    from rich.markup import escape

    from ecgcli.cli.render import out as console

    auroc, vs = m["bootstrap"]["auroc"], m["vs_best_member"]
    best = m["members"][m["best_member"]["index"]]
    console.print(
        f"ensemble of {len(m['members'])} -> {escape(str(result.out))}: fold-10 macro AUROC "
        f"{auroc['estimate']:.4f} [{auroc['ci_low']:.4f}, {auroc['ci_high']:.4f}], AUPRC "
        f"{m['test_tuned']['macro_auprc']:.4f}, Fmax {m['test_tuned']['sample_f1']:.4f}",
        soft_wrap=True,
    )
    console.print(
        f"vs best member by fold-9 AUROC ({escape(best['source'])}, fold-10 {best['test_auroc']:.4f}): "
        f"{vs['delta']:+.4f} [{vs['lo']:+.4f}, {vs['hi']:+.4f}] "
        f"(paired bootstrap, {vs['n_boot']} replicates)",
        soft_wrap=True,
    )
