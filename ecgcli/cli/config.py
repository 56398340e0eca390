"""``ecg config``: the effective settings and where each value came from."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ecgcli.cli.common import DataRoot, Device, JsonFlag, SamplingRate, Workers, settings_from


def config(
    ctx: typer.Context,
    data_root: DataRoot = None,
    sampling_rate: SamplingRate = None,
    workers: Workers = None,
    device: Device = None,
    as_json: JsonFlag = False,
    show_all: Annotated[bool, typer.Option("--descriptions", help="Also describe each setting.")] = False,
) -> None:
    """Show the effective settings (flag > ECG_* environment > --env-file > .env > default).

    Example: ecg --env-file prod.env config
    """
    from ecgcli.settings import ENV_PREFIX, Settings, setting_sources

    overrides = {
        "data_root": data_root,
        "sampling_rate": sampling_rate,
        "workers": workers,
        "device": device,
    }
    settings = settings_from(ctx, **overrides)
    sources = setting_sources((ctx.find_root().obj or {}).get("env_file"), **overrides)
    rows = [
        (
            name,
            getattr(settings, name),
            sources[name],
            Settings.model_fields[name].description or "",
        )
        for name in Settings.model_fields
    ]
    if as_json:
        payload = {
            n: {
                "value": None if v is None else str(v) if not isinstance(v, int) else v,
                "source": s,
                "env": f"{ENV_PREFIX}{n.upper()}",
            }
            for n, v, s, _ in rows
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    from rich.table import Table

    from ecgcli.cli.render import out

    table = Table(title="ecg settings", title_justify="left")
    for col in ("setting", "value", "source", "variable") + (("meaning",) if show_all else ()):
        table.add_column(col)
    for name, value, source, desc in rows:
        cells = [name, str(value), source, f"{ENV_PREFIX}{name.upper()}"] + ([desc] if show_all else [])
        table.add_row(*cells)
    out.print(table)
