"""``ecg train supervised`` and ``ecg train ssl``."""

from __future__ import annotations

import typer

from ecgcli.cli.common import not_yet

app = typer.Typer(
    help="Train the encoder: supervised baseline or self-supervised pretraining.",
    no_args_is_help=True,
)


@app.command()
def supervised() -> None:
    """Train the 1D-CNN encoder and a linear head from scratch on the labelled fraction."""
    not_yet("train supervised")


@app.command()
def ssl() -> None:
    """Pretrain the encoder without labels (SimCLR or BYOL)."""
    not_yet("train ssl")
