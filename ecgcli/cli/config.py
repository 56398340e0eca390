"""``ecg config``: the effective settings and where each value came from."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ecgcli.cli.common import DataRoot, Device, JsonFlag, SamplingRate, Workers


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
    from ecgcli.cli import machine
    from ecgcli.cli.render import warn_line
    from ecgcli.settings import ENV_PREFIX, Settings, Sourced, describe_settings

    machine.declare(ctx, "json" if as_json else None)

    overrides = {
        "data_root": data_root,
        "sampling_rate": sampling_rate,
        "workers": workers,
        "device": device,
    }
    env_file = (ctx.find_root().obj or {}).get("env_file")
    rows = describe_settings(env_file, warn_line, **overrides)
    bad = [r for r in rows if r.error]
    if as_json:
        payload = {
            r.name: {
                "value": None if r.value is None else r.value if isinstance(r.value, int) else str(r.value),
                "source": r.source,
                "env": f"{ENV_PREFIX}{r.name.upper()}",
                **({"error": r.error} if r.error else {}),
            }
            for r in rows
        }
        machine.write(ctx, json.dumps(payload, indent=2))  # an invalid setting raises after it: no 2nd doc
    else:
        from rich.markup import escape
        from rich.table import Table

        from ecgcli.cli.render import out

        table = Table(title="ecg settings", title_justify="left")
        for col in ("setting", "value", "source", "variable") + (("meaning",) if show_all else ()):
            table.add_column(col)
        for r in rows:
            value = escape(str(r.value)) + (" [bold red](invalid)[/]" if r.error else "")
            desc = Settings.model_fields[r.name].description or ""
            cells = [r.name, value, escape(r.source), f"{ENV_PREFIX}{r.name.upper()}"]
            table.add_row(*cells, *([desc] if show_all else []))
        out.print(table)
    if bad:
        from ecgcli.errors import ConfigError

        first = bad[0]
        where = Sourced(first.value, first.source).name(first.name)
        more = f" (and {len(bad) - 1} more invalid setting(s) above)" if len(bad) > 1 else ""
        raise ConfigError(f"invalid {where}: {first.error} (got {first.value!r}){more}")
