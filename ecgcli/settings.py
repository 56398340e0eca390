"""Settings read from the environment and env files (pydantic-settings).

Precedence, highest first: a CLI flag, an ``ECG_*`` environment variable, ``--env-file PATH``,
``.env`` in the working directory, the default below. ``ecg config`` shows the effective value
of each setting and which of these it came from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ecgcli.errors import ConfigError

ENV_PREFIX = "ECG_"


class Settings(BaseSettings):
    """Where data, caches and runs live, and which hardware to use."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", case_sensitive=False
    )

    data_root: Path = Field(
        Path("data/PTB-XL"),
        description="PTB-XL folder (holds ptbxl_database.csv, scp_statements.csv, records100/).",
    )
    cache_dir: Path = Field(
        Path("data/cache"),
        description="Where the memory-mapped signal caches are built (one per dataset and rate).",
    )
    runs_dir: Path = Field(Path("runs"), description="Where run directories (checkpoints, metrics, logs) go.")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="Compute device; auto picks cuda, then mps, then cpu."
    )
    workers: int = Field(0, ge=0, description="Processes for reading records; 0 means one per CPU core.")
    sampling_rate: Literal[100, 500] = Field(
        100, description="Which PTB-XL records to use: 100 Hz (records100) or 500 Hz (records500)."
    )
    checkpoint: Path | None = Field(None, description="Default model checkpoint for `ecg predict`.")

    def resolved_workers(self) -> int:
        """Number of reader processes to start (``workers``, or the CPU count when 0)."""
        return self.workers or usable_cores()


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask; the CPU count where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _env_files(env_file: Path | None) -> tuple[Path, ...]:
    files = [Path(".env")]
    if env_file is not None:
        if not env_file.is_file():
            raise ConfigError(f"env file not found: {env_file}")
        files.append(env_file)
    return tuple(files)


def load_settings(env_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the effective settings; ``overrides`` are CLI flags (``None`` means not given)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(_env_file=_env_files(env_file), **given)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else "?"
        raise ConfigError(
            f"invalid setting {ENV_PREFIX}{name.upper()}: {err['msg']} (got {err.get('input')!r})"
        ) from None


def setting_sources(env_file: Path | None = None, **overrides: Any) -> dict[str, str]:
    """Where each setting's effective value comes from: ``cli``, ``env``, a file, or ``default``."""
    from dotenv import dotenv_values  # a dependency of pydantic-settings

    file_values: dict[str, str] = {}
    for path in _env_files(env_file):
        if path.is_file():
            for key in dotenv_values(path):
                file_values[key.upper()] = str(path)
    environ = {k.upper() for k in os.environ}
    sources = {}
    for name in Settings.model_fields:
        key = f"{ENV_PREFIX}{name}".upper()
        if overrides.get(name) is not None:
            sources[name] = "cli"
        elif key in environ:
            sources[name] = "env"
        elif key in file_values:
            sources[name] = file_values[key]
        else:
            sources[name] = "default"
    return sources
