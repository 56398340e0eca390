"""Settings read from command-line flags, the environment and env files, on pydantic-settings.

Precedence, highest first: a CLI flag, an ``ECG_*`` environment variable, ``--env-file PATH``,
``.env`` in the working directory, the default below. ``ecg config`` shows the effective value
of each setting and which of these it came from.

:class:`Settings` is a pydantic-settings ``BaseSettings`` (prefix ``ECG_``). Its sources are
custom (:meth:`Settings.settings_customise_sources`: the built-in init source for flags, then
:class:`EnvironSource` and one :class:`EnvFileSource` per env file) instead of the built-in
``EnvSettingsSource`` and ``DotEnvSettingsSource``, because those do not say where a value came
from, and every value here keeps its origin (a :class:`Sourced`):

- a bad value is reported under the name the user wrote (``--device``, ``ECG_DEVICE in the
  environment``, ``ECG_DEVICE at .env line 3``);
- an empty value (``ECG_CHECKPOINT=``) means unset (the default, whatever a lower source says),
  not the current folder;
- a malformed env-file line, or one that is not UTF-8, is one error naming file and line
  (python-dotenv, behind ``DotEnvSettingsSource``, logs and skips the first and raises a
  ``UnicodeDecodeError`` that names no line for the second); a UTF-8 BOM is accepted;
- an unknown ``ECG_*`` key in an env file or the environment is warned about with the nearest
  valid name.

pydantic validates the merged values as usual. A command validates only the settings it uses
(``uses``): a bad value of another setting falls back to its default, so a bad ``ECG_DEVICE``
does not stop ``ecg data verify``.
"""

from __future__ import annotations

import codecs
import difflib
import os
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ecgcli.errors import ConfigError

ENV_PREFIX = "ECG_"
DOTENV = Path(".env")
#: The source label of a setting that is not set (or set empty): its default applies.
DEFAULT = "default"

#: ``ECG_*`` variables that are not settings but are read directly by one module, so an
#: unknown-variable warning must not name them: ``ECG_BF16_EMULATED`` (train/precision.py)
#: and ``ECG_TEST_FAIL`` (train/distributed.py, tests only).
OTHER_ENV = frozenset({"ECG_BF16_EMULATED", "ECG_TEST_FAIL"})


@dataclass(frozen=True)
class Sourced:
    """A raw setting value and where it came from: ``cli``, ``env``, ``PATH line N``, ``default``."""

    value: Any
    source: str

    def name(self, setting: str) -> str:
        """How the user wrote this setting: the flag, or the variable and where it is set."""
        if self.source == "cli":
            return f"--{setting.replace('_', '-')}"
        var = env_key(setting)
        return f"{var} in the environment" if self.source == "env" else f"{var} at {self.source}"


def env_key(name: str) -> str:
    return f"{ENV_PREFIX}{name.upper()}"


@dataclass
class _Plan:
    """What one :func:`_construct` asks of the sources, and the sources it got back (highest
    precedence first): the env files (lowest first), and the settings to leave at default."""

    env_files: tuple[Path, ...] = (DOTENV,)
    skip: frozenset[str] = frozenset()
    sources: tuple[OriginSource, ...] = ()


#: The plan of the construction in progress. ``settings_customise_sources`` is a classmethod
#: that pydantic-settings calls with no arguments of ours, so the env files of this call and
#: the place to leave the sources (for their origins and warnings) travel in a context variable.
_PLAN: ContextVar[_Plan | None] = ContextVar("ecgcli_settings_plan", default=None)


class Settings(BaseSettings):
    """Where data, caches and runs live, and which hardware to use."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)

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
    tracker: Literal["none", "tensorboard", "mlflow"] = Field(
        "none",
        description="Experiment tracker every training run also logs to: none, tensorboard "
        "(RUN_DIR/tensorboard/) or mlflow; each needs the extra of that name installed.",
    )
    mlflow_tracking_uri: str | None = Field(
        None,
        description="Where the mlflow tracker logs: a tracking URI or a folder (default: the "
        "file store mlruns/ beside the run folder, or beside the grid folder of a grid).",
    )

    def resolved_workers(self) -> int:
        """Number of reader processes to start (``workers``, or the CPU count when 0)."""
        return self.workers or usable_cores()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (keyword arguments), then the environment, then the env files, later files
        first; pydantic-settings merges them in this order. Secrets directories are not used."""
        plan = _PLAN.get() or _Plan()
        sources: tuple[OriginSource, ...] = (
            EnvironSource(settings_cls, plan.skip),
            *(EnvFileSource(settings_cls, path, plan.skip) for path in reversed(plan.env_files)),
        )
        plan.sources = sources
        return (init_settings, *sources)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask; the CPU count where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _hint(key: str, known: Iterable[str]) -> str:
    """`` (did you mean ECG_WORKERS?)`` for a near miss, else the list of valid names."""
    names = list(known)
    near = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    return f" (did you mean {near[0]}?)" if near else f" (known: {', '.join(names)})"


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


class OriginSource(PydanticBaseSettingsSource):
    """A pydantic-settings source of ``ECG_*`` text values that remembers where each was written.

    A subclass yields ``(KEY, value, where)`` from :meth:`entries`, later entries over earlier
    ones. After construction, :attr:`origins` maps each setting this source sets to a
    :class:`Sourced` (an empty value to ``Sourced(None, "default")``: this source resets it) and
    :attr:`warnings` holds one line per unknown ``ECG_*`` key. Settings in ``skip`` are left out.
    """

    def __init__(self, settings_cls: type[BaseSettings], skip: Iterable[str] = ()) -> None:
        super().__init__(settings_cls)
        self.skip = frozenset(skip)
        prefix = str(self.config.get("env_prefix") or "").upper()
        self.known = {f"{prefix}{name.upper()}": name for name in settings_cls.model_fields}
        self.origins: dict[str, Sourced] = {}
        self.warnings: list[str] = []
        for key, value, where in self.entries():
            name = self.known.get(key)
            if name is not None:
                self.origins[name] = Sourced(value, where) if value != "" else Sourced(None, DEFAULT)
            elif key.startswith(prefix):
                self.warnings.append(self.unknown(key, where) + _hint(key, self.known))

    def entries(self) -> Iterator[tuple[str, str, str]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def unknown(self, key: str, where: str) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """The raw value of one setting, its variable name, and False (never JSON)."""
        sourced = self.origins.get(field_name)
        return (None if sourced is None else sourced.value), env_key(field_name), False

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        return _typed(field_name, value)

    def __call__(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, field_info in self.settings_cls.model_fields.items():
            sourced = self.origins.get(name)
            if sourced is None or name in self.skip:
                continue
            if sourced.source == DEFAULT:  # set empty here: the default, over any lower source
                out[name] = field_info.get_default(call_default_factory=True)
            else:
                value, _, complex_ = self.get_field_value(field_info, name)
                out[name] = self.prepare_field_value(name, field_info, value, complex_)
        return out


class EnvironSource(OriginSource):
    """``ECG_*`` variables of the process environment (source ``env``). Variables in
    :data:`OTHER_ENV` belong to other modules and are not warned about."""

    def entries(self) -> Iterator[tuple[str, str, str]]:
        environ = {k.upper(): v for k, v in os.environ.items()}
        for key in sorted(environ):
            if key not in OTHER_ENV:
                yield key, environ[key], "env"

    def unknown(self, key: str, where: str) -> str:
        return f"unknown setting {key} in the environment ignored"


class EnvFileSource(OriginSource):
    """The ``KEY=VALUE`` lines of one env file (source ``PATH line N``); a missing file sets
    nothing (``load_settings`` refuses a missing ``--env-file`` before this runs)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path, skip: Iterable[str] = ()) -> None:
        self.path = Path(path)
        super().__init__(settings_cls, skip)

    def entries(self) -> Iterator[tuple[str, str, str]]:
        if self.path.is_file():
            for key, (value, line) in read_env_file(self.path).items():
                yield key, value, f"{self.path} line {line}"

    def unknown(self, key: str, where: str) -> str:
        return f"{where}: unknown setting {key} ignored"


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
    if env_file is None:
        return (DOTENV,)
    if not Path(env_file).is_file():
        raise ConfigError(f"env file not found: {env_file}")
    return (DOTENV, Path(env_file))


@dataclass
class _Outcome:
    """One construction of :class:`Settings`: the settings (None when a value did not
    validate), each set setting's origin, the warnings (lowest source first), the problems."""

    settings: Settings | None
    origins: dict[str, Sourced]
    warnings: list[str]
    problems: dict[str, str]


def _construct(env_file: Path | None, overrides: dict[str, Any], skip: Iterable[str] = ()) -> _Outcome:
    """Build :class:`Settings` through its sources, with the flags in ``overrides`` (``None``
    means not given) and the settings in ``skip`` left at their defaults."""
    plan = _Plan(_env_files(env_file), frozenset(skip))
    flags = {n: v for n, v in overrides.items() if v is not None}
    token = _PLAN.set(plan)
    try:
        settings: Settings | None = Settings(**{n: v for n, v in flags.items() if n not in plan.skip})
        problems: dict[str, str] = {}
    except ValidationError as exc:
        settings = None
        problems = {str(e["loc"][0]): e["msg"] for e in exc.errors() if e["loc"]}
    finally:
        _PLAN.reset(token)
    origins = {n: Sourced(v, "cli") for n, v in flags.items()}
    for source in plan.sources:  # highest precedence first
        for name, sourced in source.origins.items():
            origins.setdefault(name, sourced)
    warnings = [w for source in reversed(plan.sources) for w in source.warnings]
    return _Outcome(settings, origins, warnings, problems)


def _valid(env_file: Path | None, outcome: _Outcome, overrides: dict[str, Any]) -> Settings:
    """The outcome's settings, or the settings with its invalid values at their defaults."""
    if outcome.settings is not None:
        return outcome.settings
    again = _construct(env_file, overrides, outcome.problems)
    if again.settings is None:  # pragma: no cover - defaults always validate
        raise ConfigError(f"invalid settings: {again.problems}")
    return again.settings


def _origin(outcome: _Outcome, name: str) -> Sourced:
    return outcome.origins.get(name) or Sourced(None, DEFAULT)


def load_settings(
    env_file: Path | None = None,
    uses: Iterable[str] | None = None,
    warn: Callable[[str], None] | None = None,
    **overrides: Any,
) -> Settings:
    """Build the effective settings; ``overrides`` are CLI flags (``None`` means not given).

    A bad value of a setting in ``uses`` (all settings when None) is a one-line
    :class:`ConfigError` naming where it was written; a bad value of a setting the command
    does not use falls back to its default. Unknown ``ECG_*`` keys are passed to ``warn``.
    """
    outcome = _construct(env_file, overrides)
    for line in outcome.warnings if warn is not None else ():
        warn(line)
    needed = set(Settings.model_fields if uses is None else uses)
    for name, msg in outcome.problems.items():
        if name in needed:
            src = _origin(outcome, name)
            raise ConfigError(f"invalid {src.name(name)}: {msg} (got {src.value!r})")
    return _valid(env_file, outcome, overrides)


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
    outcome = _construct(env_file, overrides)
    for line in outcome.warnings if warn is not None else ():
        warn(line)
    valid = _valid(env_file, outcome, overrides)
    rows = []
    for name in Settings.model_fields:
        src = _origin(outcome, name)
        if name in outcome.problems:
            rows.append(SettingRow(name, src.value, src.source, outcome.problems[name]))
        else:
            rows.append(SettingRow(name, getattr(valid, name), src.source, None))
    return rows


def setting_sources(env_file: Path | None = None, **overrides: Any) -> dict[str, str]:
    """Where each setting's effective value comes from: ``cli``, ``env``, a file, or ``default``."""
    return {row.name: row.source for row in describe_settings(env_file, **overrides)}
