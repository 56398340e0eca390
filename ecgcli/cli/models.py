"""``ecg models``: the encoders (parameters, FLOPs), the shipped trained models, their cards,
and a re-check of a card's numbers on the user's PTB-XL."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ecgcli.cli.common import DataRoot, JsonFlag, Workers, settings_from


def _si(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return str(n)


def models(
    ctx: typer.Context,
    as_json: JsonFlag = False,
    samples: Annotated[
        int,
        typer.Option(
            "--samples", min=8, help="Record length in samples for the FLOPs (1000 = 10 s at 100 Hz)."
        ),
    ] = 1000,
    pretrained: Annotated[
        bool,
        typer.Option(
            "--pretrained",
            help="List the trained models that ship with ecgcli (use a name wherever a checkpoint "
            "is accepted: `ecg predict -c NAME`).",
        ),
    ] = False,
    card: Annotated[
        str | None,
        typer.Option(
            "--card", metavar="NAME", help="Show a shipped model's card (how it was made, how well it does)."
        ),
    ] = None,
    check: Annotated[
        str | None,
        typer.Option(
            "--check",
            metavar="NAME",
            help="Recompute a shipped model's fold-10 card numbers on your PTB-XL (--data-root).",
        ),
    ] = None,
    data_root: DataRoot = None,
    workers: Workers = None,
) -> None:
    """List the encoders by name, with parameters and forward FLOPs per 12-lead record.

    Parameters include a 5-class linear head. FLOPs are counted by torch's FlopCounterMode
    on one forward pass: 2 per multiply-add of convolutions and matrix products. With
    --pretrained, the trained models that ship with ecgcli instead; --card NAME prints one's
    model card; --check NAME rescores it on fold 10 of your PTB-XL and prints its numbers
    beside the card's (exit 1 if they differ at the printed precision).

    Example: ecg models --pretrained
    """
    chosen = [flag for flag, on in (("--pretrained", pretrained), ("--card", card), ("--check", check)) if on]
    if len(chosen) > 1:
        from ecgcli.errors import ConfigError

        raise ConfigError(f"{' and '.join(chosen)} cannot be used together (pick one)")
    if pretrained:
        _list_pretrained(as_json)
    elif card is not None:
        _show_card(card, as_json)
    elif check is not None:
        _check(ctx, check, data_root, workers, as_json)
    else:
        _list_encoders(samples, as_json)


def _list_pretrained(as_json: bool) -> None:
    from ecgcli import pretrained
    from ecgcli.cli.pretrained_view import render_pretrained

    rows = pretrained.shipped()
    if as_json:
        typer.echo(
            json.dumps(
                {"default": pretrained.default_classifier(), "models": [m.to_dict() for m in rows]}, indent=2
            )
        )
        return
    render_pretrained(rows, pretrained.default_classifier())


def _show_card(name: str, as_json: bool) -> None:
    from ecgcli import pretrained

    text = pretrained.card_text(name)
    if as_json:
        typer.echo(json.dumps({"model": name, "card": text}))
        return
    from rich.markdown import Markdown

    from ecgcli.cli.compare import table_console

    table_console().print(Markdown(text))


def _check(ctx: typer.Context, name: str, data_root, workers, as_json: bool) -> None:
    from ecgcli.cli.pretrained_view import render_recheck
    from ecgcli.cli.render import progress_events
    from ecgcli.experiments.recheck import recheck

    s = settings_from(ctx, ("data_root", "cache_dir", "workers"), data_root=data_root, workers=workers)
    with progress_events() as callback:
        result = recheck(name, s.data_root, s.cache_dir, s.resolved_workers(), callback)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        render_recheck(result)
    if not result.agrees:
        raise typer.Exit(1)


def _list_encoders(samples: int, as_json: bool) -> None:
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
            "features: channels x time steps of the feature map before pooling. "
            "Trained models that ship with ecgcli: ecg models --pretrained."
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
