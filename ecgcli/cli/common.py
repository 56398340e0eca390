"""Option types and helpers shared by the command modules (kept import-light: ``ecg predict``
imports this, so nothing here may pull in the training configuration)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from ecgcli.settings import Settings

DataRoot = Annotated[
    Path | None,
    typer.Option(
        "--data-root",
        rich_help_panel="Data and hardware",
        help="PTB-XL folder \\[default: ECG_DATA_ROOT or data/PTB-XL].",
    ),
]
SamplingRate = Annotated[
    int | None,
    typer.Option(
        "--sampling-rate",
        rich_help_panel="Data and hardware",
        help="100 or 500 Hz records \\[default: ECG_SAMPLING_RATE or 100].",
    ),
]
Workers = Annotated[
    int | None,
    typer.Option(
        "--workers",
        rich_help_panel="Data and hardware",
        min=0,
        help="Reader processes; 0 = one per core \\[default: ECG_WORKERS].",
    ),
]
Device = Annotated[
    str | None,
    typer.Option(
        "--device",
        rich_help_panel="Data and hardware",
        help="auto, cpu, cuda or mps \\[default: ECG_DEVICE or auto].",
    ),
]
Tracker = Annotated[
    str | None,
    typer.Option(
        "--tracker",
        rich_help_panel="Experiment tracking",
        help="Also log each run to an experiment tracker: none, tensorboard (RUN_DIR/tensorboard/) or "
        "mlflow (mlruns/ beside the run folder, or ECG_MLFLOW_TRACKING_URI); needs the extra of that "
        "name \\[default: ECG_TRACKER or none].",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


def settings_from(ctx: typer.Context, uses: tuple[str, ...] | None = None, **overrides: Any) -> Settings:
    """Effective settings for a command: CLI flags over environment over env files. Only the
    settings in ``uses`` (all when None) must be valid; env-file warnings go to stderr."""
    from ecgcli.cli.render import warn_line
    from ecgcli.settings import load_settings

    obj = ctx.find_root().obj or {}
    return load_settings(obj.get("env_file"), uses=uses, warn=warn_line, **overrides)


RUN_SETTINGS = (
    *("data_root", "cache_dir", "runs_dir", "sampling_rate", "workers", "device"),
    *("tracker", "mlflow_tracking_uri"),
)


def run_settings(ctx: typer.Context, **flags: Any) -> dict[str, Any]:
    """The training-configuration fields that come from settings (flag > environment > env
    file > default); ``flags`` are the command's own values of those settings."""
    s = settings_from(ctx, RUN_SETTINGS, **flags)
    return {
        "data_root": str(s.data_root),
        "cache_dir": str(s.cache_dir),
        "runs_dir": str(s.runs_dir),
        "sampling_rate": s.sampling_rate,
        "workers": s.resolved_workers(),
        "device": s.device,
        "tracker": s.tracker,
        "mlflow_tracking_uri": s.mlflow_tracking_uri,
    }
