"""Command-line options made from the configuration fields that declare them.

Each training option's type, default and help are written once, on its field in
:mod:`ecgcli.train.config`; :func:`config_options` turns those fields into Typer options for a
command, so `train supervised`, `finetune`, `train ssl` and `multiseed` cannot drift apart.
A command declares only what is its own (``--resume``, ``--nproc``, the settings flags) and
receives the configuration options as one ``options`` dict.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Annotated, Any, get_origin

import typer

from ecgcli.cli.common import DataRoot, Device, SamplingRate, Tracker, Workers, run_settings
from ecgcli.train.config import RECIPES, field_types, option_help

#: The help panel every generated training option is listed under.
PANEL = "Training options"

#: ``--force``: the one declaration of the flag that lets ``--out`` replace a file ecgcli did not
#: write (``ecg export``, and every training command with ``--out``, added by
#: :func:`config_options`). Without it such a file is refused in one line, exit 2.
Force = Annotated[
    bool,
    typer.Option("--force", help="Replace an existing --out file even if ecgcli did not write it."),
]


def flag_name(name: str, metadata: dict[str, Any] | None = None) -> str:
    """``batch_size`` -> ``--batch-size`` (or the field's own ``flag``)."""
    return (metadata or {}).get("flag") or "--" + name.replace("_", "-")


def _cli_type(declared: Any) -> Any:
    """The type Typer parses: ``list[str]`` options are optional lists on the command line."""
    return declared | None if get_origin(declared) is list else declared


def _recipe_value(value: Any) -> str:
    """A recipe's value as help shows it: ``("seconds", 2.5)`` -> ``2.5 s``."""
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "seconds":
        return f"{value[1]:g} s"
    return f"{value:g}" if isinstance(value, float) else str(value)


def config_parameters(
    cls: type, exclude: Iterable[str] = (), defaults: dict[str, Any] | None = None
) -> list[inspect.Parameter]:
    """One keyword parameter per option field of ``cls`` (fields declared with ``option``). Where
    ``defaults`` names a recipe, the help of each field that recipe sets shows the recipe's
    value as the default, since that is what a run without the flag gets."""
    types = field_types(cls)
    skip = set(exclude)
    recipe_name = (defaults or {}).get("recipe")
    recipe = RECIPES.get(recipe_name, {}) if isinstance(recipe_name, str) else {}
    params = []
    for f in fields(cls):
        meta = option_help(cls, f.name)
        if meta is None or f.name in skip:
            continue
        if defaults and f.name in defaults:
            default = defaults[f.name]
        elif f.default is not MISSING:
            default = f.default
        else:  # a default_factory (lists): absent on the command line means the factory's value
            default = None
        text, shown = meta["help"], True
        if f.name in recipe:  # the command's default recipe sets it: say what it is, not the field's
            text = re.sub(r"\s*\\\[default: [^]]*\]", "", text)  # its own (rich-escaped) default
            text += f" \\[default: {_recipe_value(recipe[f.name])}, the {recipe_name} recipe's]"
            shown = False
        flag = typer.Option(flag_name(f.name, meta), help=text, rich_help_panel=PANEL, show_default=shown)
        annotation = Annotated[_cli_type(types[f.name]), flag]
        params.append(
            inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        )
    return params


def _inject(
    extra: list[inspect.Parameter], name: str, build: Callable[[dict[str, Any], dict[str, Any]], Any]
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the ``extra`` parameters to a command (after ``ctx``, before its own) and pass
    ``build(own values, extra values)`` to it as the argument ``name`` instead."""
    names = [p.name for p in extra]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != name]
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
        params = own[:1] + extra + own[1:]  # ctx first, then the injected options, then its own

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            values = {k: kwargs.pop(k) for k in names}
            return fn(**kwargs, **{name: build(kwargs, values)})

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        del command.__wrapped__  # Typer must read the signature above, not fn's
        return command

    return decorate


class Options(dict):
    """A command's configuration options, and which of them the user gave (flag or
    environment) rather than left at their default: a recipe fills in only the others."""

    given: frozenset[str] = frozenset()


def config_options(
    cls: type, exclude: Iterable[str] = (), defaults: dict[str, Any] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a command so that it also takes every option field of ``cls`` (less
    ``exclude``; ``defaults`` changes a default for this command only) and receives their
    values as ``options``. List fields given no value get their factory's value."""
    factories = {f.name: f.default_factory for f in fields(cls) if f.default_factory is not MISSING}
    params = config_parameters(cls, exclude, defaults)
    writes_out = any(p.name == "out" for p in params)
    if writes_out:  # a command that writes --out also takes --force
        params.append(
            inspect.Parameter("force", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Force)
        )

    def build(own: dict[str, Any], values: dict[str, Any]) -> Options:
        if writes_out:
            force = values.pop("force")
            if values.get("out"):  # refused before any work, not after training
                from ecgcli.storage.checkpoint import check_out_replaceable

                check_out_replaceable(Path(values["out"]), force)
        for k, factory in factories.items():
            if k in values and values[k] is None:
                values[k] = factory()
        options = Options(values)
        ctx = own.get("ctx")
        if ctx is not None:
            sources = {k: ctx.get_parameter_source(k) for k in values}
            options.given = frozenset(
                k for k, s in sources.items() if s is not None and s.name not in ("DEFAULT", "DEFAULT_MAP")
            )
        return options

    return _inject(params, "options", build)


_SETTING_FLAGS = {
    **{"data_root": DataRoot, "device": Device, "workers": Workers, "sampling_rate": SamplingRate},
    "tracker": Tracker,
}


def settings_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a training command with the settings flags (``--data-root``, ``--device``,
    ``--workers``, ``--sampling-rate``, ``--tracker``); it receives the resolved values (flag > environment >
    env file > default) as ``settings``, the fields a run configuration takes from settings."""
    extra = [
        inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=a)
        for k, a in _SETTING_FLAGS.items()
    ]
    return _inject(extra, "settings", lambda own, flags: run_settings(own["ctx"], **flags))(fn)
