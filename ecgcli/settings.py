"""Settings read from command-line flags, the environment and env files.

Precedence, highest first: a CLI flag, an ``ECG_*`` environment variable, ``--env-file PATH``,
``.env`` in the working directory, the default below. ``ecg config`` shows the effective value
of each setting and which of these it came from.

Sourcing is done here rather than by pydantic-settings so that every value keeps its origin:
a bad value is reported under the name the user wrote (``--device``, ``ECG_DEVICE`` in the
environment, ``ECG_DEVICE`` at ``.env`` line 3); an empty value (``ECG_CHECKPOINT=``) means
unset, not the current folder; a malformed env-file line is one error naming file and line;
an unknown ``ECG_*`` key in an env file or the environment is warned about with the nearest
valid name. pydantic
still validates the values. A command validates only the settings it uses (``uses``), so a
bad ``ECG_DEVICE`` does not stop ``ecg data verify``.
"""

from __future__ import annotations

import codecs
import difflib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field, ValidationError

from ecgcli.errors import ConfigError

ENV_PREFIX = "ECG_"

#: ``ECG_*`` variables that are not settings but are read directly by one module, so an
#: unknown-variable warning must not name them: ``ECG_BF16_EMULATED`` (train/precision.py)
#: and ``ECG_TEST_FAIL`` (train/distributed.py, tests only).
OTHER_ENV = frozenset({"ECG_BF16_EMULATED", "ECG_TEST_FAIL"})


class Settings(BaseModel):
    """Where data, caches and runs live, and which hardware to use."""

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


@dataclass(frozen=True)
class Sourced:
    """A raw setting value and where it came from: ``cli``, ``env``, ``PATH line N``."""

    value: Any
    source: str

    def name(self, setting: str) -> str:
        """How the user wrote this setting: the flag, or the variable and where it is set."""
        if self.source == "cli":
            return f"--{setting.replace('_', '-')}"
        var = f"{ENV_PREFIX}{setting.upper()}"
        return f"{var} in the environment" if self.source == "env" else f"{var} at {self.source}"


def env_key(name: str) -> str:
    return f"{ENV_PREFIX}{name.upper()}"


def _decode_line(path: Path, number: int, raw: bytes) -> str:
    """One env-file line as text; bytes that are not UTF-8 are an error naming file and line
    (decoding line by line is what lets the message say which line to fix)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.end].hex(" ")
        raise ConfigError(
            f"{path} line {number}: not UTF-8 text (byte(s) {bad} at column {exc.start + 1}); "
            "save the file as UTF-8"
        ) from None


def read_env_file(path: Path) -> dict[str, tuple[str, int]]:
    """``KEY=VALUE`` lines of an env file (``export``, comments and quotes as in shells):
    upper-cased key -> (value, line number). A line that is not an assignment is an error."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read env file {path}: {exc.strerror or exc}") from None
    if data.startswith(codecs.BOM_UTF8):  # editors on Windows write one; it is not part of the key
        data = data[len(codecs.BOM_UTF8) :]
    out: dict[str, tuple[str, int]] = {}
    for number, raw_bytes in enumerate(data.splitlines(), 1):
        raw = _decode_line(path, number, raw_bytes)
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, eq, value = line.partition("=")
        key = key.strip()
        if not eq or not key or not key.replace("_", "").isalnum():
            raise ConfigError(f"{path} line {number}: expected KEY=VALUE, got {raw.strip()!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        out[key.upper()] = (value, number)
    return out


def _env_files(env_file: Path | None) -> tuple[Path, ...]:
    files = [Path(".env")]
    if env_file is not None:
        if not Path(env_file).is_file():
            raise ConfigError(f"env file not found: {env_file}")
        files.append(Path(env_file))
    return tuple(files)


def _hint(key: str, known: Iterable[str]) -> str:
    """`` (did you mean ECG_WORKERS?)`` for a near miss, else the list of valid names."""
    names = list(known)
    near = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    return f" (did you mean {near[0]}?)" if near else f" (known: {', '.join(names)})"


def gather(
    env_file: Path | None = None, warn: Callable[[str], None] | None = None, **overrides: Any
) -> dict[str, Sourced]:
    """The raw value of every setting that is set, with its source, by precedence. Empty
    values count as unset; unknown ``ECG_*`` keys in env files are passed to ``warn``."""
    found: dict[str, Sourced] = {}
    known = {env_key(n): n for n in Settings.model_fields}
    for path in _env_files(env_file):  # .env first, so --env-file overrides it
        if not path.is_file():
            continue
        for key, (value, line) in read_env_file(path).items():
            if key in known:
                if value != "":
                    found[known[key]] = Sourced(value, f"{path} line {line}")
                else:
                    found.pop(known[key], None)
            elif key.startswith(ENV_PREFIX) and warn is not None:
                warn(f"{path} line {line}: unknown setting {key} ignored{_hint(key, known)}")
    environ = {k.upper(): v for k, v in os.environ.items()}
    if warn is not None:
        for key in sorted(environ):
            if key.startswith(ENV_PREFIX) and key not in known and key not in OTHER_ENV:
                warn(f"unknown setting {key} in the environment ignored{_hint(key, known)}")
    for key, name in known.items():
        if key in environ:
            if environ[key] != "":
                found[name] = Sourced(environ[key], "env")
            else:
                found.pop(name, None)
    for name, value in overrides.items():
        if value is not None:
            found[name] = Sourced(value, "cli")
    return found


def _typed(name: str, value: Any) -> Any:
    """Text from a file or the environment as the int a ``Literal[100, 500]`` field expects
    (pydantic's lax mode converts text to ``int`` fields but not to int literals)."""
    args = get_args(Settings.model_fields[name].annotation)
    if isinstance(value, str) and args and all(isinstance(a, int) for a in args):
        try:
            return int(value.strip())
        except ValueError:
            return value
    return value


def _build(values: dict[str, Sourced], skip: Iterable[str] = ()) -> Settings:
    return Settings(**{n: _typed(n, s.value) for n, s in values.items() if n not in skip})


def _problems(values: dict[str, Sourced]) -> dict[str, str]:
    """Setting name -> pydantic's message, for each value that does not validate."""
    try:
        _build(values)
    except ValidationError as exc:
        return {str(e["loc"][0]): e["msg"] for e in exc.errors() if e["loc"]}
    return {}


def load_settings(
    env_file: Path | None = None,
    uses: Iterable[str] | None = None,
    warn: Callable[[str], None] | None = None,
    **overrides: Any,
) -> Settings:
    """Build the effective settings; ``overrides`` are CLI flags (``None`` means not given).

    A bad value of a setting in ``uses`` (all settings when None) is a one-line
    :class:`ConfigError` naming where it was written; a bad value of a setting the command
    does not use falls back to its default.
    """
    values = gather(env_file, warn, **overrides)
    needed = set(Settings.model_fields if uses is None else uses)
    problems = _problems(values)
    for name, msg in problems.items():
        if name in needed:
            src = values[name]
            raise ConfigError(f"invalid {src.name(name)}: {msg} (got {src.value!r})")
    return _build(values, problems)


@dataclass(frozen=True)
class SettingRow:
    """One line of ``ecg config``: the value (raw when invalid), its source, and any error."""

    name: str
    value: Any
    source: str
    error: str | None


def describe_settings(
    env_file: Path | None = None, warn: Callable[[str], None] | None = None, **overrides: Any
) -> list[SettingRow]:
    """Every setting's effective value and source, never refusing: an invalid value is shown
    as written, with its error, so ``ecg config`` can point at the line to fix."""
    values = gather(env_file, warn, **overrides)
    problems = _problems(values)
    valid = _build(values, problems)
    rows = []
    for name in Settings.model_fields:
        src = values.get(name)
        if name in problems:
            rows.append(SettingRow(name, src.value, src.source, problems[name]))
        else:
            rows.append(SettingRow(name, getattr(valid, name), src.source if src else "default", None))
    return rows


def setting_sources(env_file: Path | None = None, **overrides: Any) -> dict[str, str]:
    """Where each setting's effective value comes from: ``cli``, ``env``, a file, or ``default``."""
    return {row.name: row.source for row in describe_settings(env_file, **overrides)}
