"""``ecg models``: every encoder with its parameters and forward FLOPs per record."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ecgcli.cli.common import JsonFlag


def _si(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return str(n)


def models(
    as_json: JsonFlag = False,
    samples: Annotated[
        int,
        typer.Option(
            "--samples", min=8, help="Record length in samples for the FLOPs (1000 = 10 s at 100 Hz)."
        ),
    ] = 1000,
) -> None:
    """List the encoders by name, with parameters and forward FLOPs per 12-lead record.

    Parameters include a 5-class linear head. FLOPs are counted by torch's FlopCounterMode
    on one forward pass: 2 per multiply-add of convolutions and matrix products.

    Example: ecg models --json
    """
    from ecgcli.models.profile import FLOPS_NOTE, profile_encoders

    rows = profile_encoders(samples=samples)
    if as_json:
        payload = {"samples": samples, "flops": FLOPS_NOTE, "encoders": [r.to_dict() for r in rows]}
        typer.echo(json.dumps(payload, indent=2))
        return

    from rich import box
    from rich.table import Table

    from ecgcli.cli.compare import table_console

    table = Table(
        title=f"Encoders: one record of 12 leads x {samples} samples ({samples / 100:g} s at 100 Hz)",
        caption=(
            f"params: encoder + 5-class linear head. FLOPs: one forward pass of one record, {FLOPS_NOTE}. "
            "features: channels x time steps of the feature map before pooling."
        ),
        box=box.SIMPLE_HEAD,
    )
    table.add_column("encoder", style="bold")
    table.add_column("params", justify="right")
    table.add_column("FLOPs", justify="right")
    table.add_column("features", justify="right")
    table.add_column("default arguments")
    for r in rows:
        name = f"{r.name} (default)" if r.name == "cnn1d" else r.name
        args = ", ".join(f"{k}={v}" for k, v in r.args.items() if k != "in_ch")
        table.add_row(name, _si(r.params), _si(r.flops), f"{r.out_dim} x {r.feature_steps}", args)
    table_console().print(table)
