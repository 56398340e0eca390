"""The ``ecg`` application: the root Typer app, global options, and the error boundary.

Every sub-app lives in its own module and imports the core lazily inside its commands, so
``ecg --help`` never imports torch or pandas. The command modules themselves are imported only
when needed: :func:`main` builds a root app holding just the command on the command line (``ecg
predict`` imports neither the training options nor the other fourteen commands, which is a
tenth of its cold start), and the full :data:`app` is built on first use (help, completion, a
mistyped command, the tests).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ecgcli import __version__


def reflow(text: str) -> str:
    """Join the hard-wrapped lines of each help paragraph so the terminal can wrap them.

    Docstrings are wrapped at the source's line length; rich markup mode keeps single line
    breaks, which gives ragged help on terminals narrower than the source. Paragraphs with an
    indented line (examples, lists) keep their line breaks.
    """
    paragraphs = text.split("\n\n")
    return "\n\n".join(
        p
        if any(line[:1].isspace() or line.startswith(("\b", "-")) for line in p.splitlines())
        else " ".join(line.strip() for line in p.splitlines())
        for p in paragraphs
    )


def reflow_help(command: Any) -> None:
    """Apply :func:`reflow` to a command and every subcommand, once."""
    if getattr(command, "_ecg_reflowed", False):
        return
    if getattr(command, "help", None):
        command.help = reflow(command.help)
    command._ecg_reflowed = True
    for sub in getattr(command, "commands", {}).values():
        reflow_help(sub)


#: Exit codes of a command stopped by Ctrl-C (SIGINT) and by SIGTERM (128 + the signal
#: number, as a shell reports it): a scheduler's job script can tell the two apart.
SIGINT_EXIT, SIGTERM_EXIT = 130, 143


def stop_exit_code() -> int:
    """130 for Ctrl-C, 143 when SIGTERM stopped the command (see ``stop_like_ctrl_c``)."""
    import signal

    from ecgcli.files import stopped_by

    return SIGTERM_EXIT if stopped_by() == signal.SIGTERM else SIGINT_EXIT


def _by_sigterm(message: str) -> str:
    """The core says "interrupted ..." for either signal; under SIGTERM the line says which."""
    if message.startswith("interrupted"):
        return "stopped by SIGTERM" + message[len("interrupted") :]
    return message


class EcgGroup(TyperGroup):
    """Root group: every error a user can cause becomes one red line and an exit code."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        reflow_help(self)
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.TyperException as exc:  # usage errors: bad option values, missing args
            from ecgcli.cli.render import error_line

            ctx = getattr(exc, "ctx", None)
            where = f" (see '{ctx.command_path} -h')" if ctx is not None else ""
            error_line(f"{exc.format_message()}{where}")
            sys.exit(getattr(exc, "exit_code", 2))
        except typer.Abort:
            sys.exit(stop_exit_code())
        if code == SIGINT_EXIT and stop_exit_code() == SIGTERM_EXIT:
            # typer turns a KeyboardInterrupt raised before the command runs (SIGTERM while the
            # options are parsed) into exit 130 with nothing said; invoke() never saw it
            from ecgcli.cli.render import error_line

            error_line("stopped by SIGTERM")
            code = SIGTERM_EXIT
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: typer.Context) -> Any:
        from ecgcli.cli.machine import emit_error
        from ecgcli.errors import EcgError

        argv = [*getattr(ctx, "_protected_args", ()), *ctx.args]  # the command's, for --json/--csv
        try:
            return super().invoke(ctx)
        except EcgError as exc:
            from ecgcli.cli.render import error_line
            from ecgcli.errors import Interrupted

            message, code = str(exc), exc.exit_code
            if isinstance(exc, Interrupted) and stop_exit_code() == SIGTERM_EXIT:
                message, code = _by_sigterm(message), SIGTERM_EXIT
            if not exc.quiet:
                emit_error(ctx, argv, message, code)  # --json/--csv: a document on stdout
            error_line(message)
            ctx.exit(code)
        except (typer.Exit, typer.Abort):
            raise  # typer's own control flow: --help, explicit exit codes
        except typer.TyperException as exc:  # usage errors: main prints the line
            emit_error(ctx, argv, exc.format_message(), getattr(exc, "exit_code", 2))
            raise
        except BrokenPipeError:  # output piped into `head` and the like
            sys.stderr.close()
            ctx.exit(0)
        except KeyboardInterrupt:
            from ecgcli.cli.render import error_line

            code = stop_exit_code()
            message = "stopped by SIGTERM" if code == SIGTERM_EXIT else "interrupted"
            emit_error(ctx, argv, message, code)
            error_line(message)
            ctx.exit(code)
        except Exception as exc:
            if (ctx.obj or {}).get("debug"):
                raise
            from ecgcli.cli.render import error_line

            message = f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)"
            emit_error(ctx, argv, message, 70)
            error_line(message)
            ctx.exit(70)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ecg (ecgcli) {__version__}")
        raise typer.Exit()


def _root_app() -> typer.Typer:
    """The root Typer app with its help and settings, no commands yet."""
    return typer.Typer(
        name="ecg",
        cls=EcgGroup,
        help=(
            "Label-efficient 12-lead ECG classification on PTB-XL: the benchmark's six tasks and "
            "encoders, supervised baselines, SimCLR/BYOL/CPC pretraining, fine-tuning, multi-seed "
            "statistics, prediction, explanations, calibration and export."
        ),
        epilog=(
            "[bold]Examples[/]\n\n"
            "  ecg data synth --out data/synth --records 2000\n\n"
            "  ecg data verify --data-root data/PTB-XL\n\n"
            "  ecg train supervised --epochs 30 --loss focal --balance-strategy oversample\n\n"
            "  ecg train ssl --method simclr --epochs 20\n\n"
            "  ecg finetune --ssl-checkpoint runs/simclr/model.safetensors\n\n"
            "  ecg multiseed --seeds 42,52,62 && ecg compare runs/multiseed\n\n"
            "  ecg predict path/to/record.hea --checkpoint runs/supervised/model.safetensors"
        ),
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def root(
    ctx: typer.Context,
    env_file: Annotated[
        Path | None,
        typer.Option("--env-file", help="Read settings from this env file (over ./.env)."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show a traceback for unexpected errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Global options, read before any command."""
    ctx.obj = {"env_file": env_file, "debug": debug}


#: Every command in the order of the help: name -> (module under ecgcli.cli, attribute, whether
#: it is a group of subcommands).
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "data": ("data", "app", True),
    "train": ("train", "app", True),
    "finetune": ("finetune", "finetune", False),
    "multiseed": ("multiseed", "multiseed", False),
    "benchmark": ("benchmark", "benchmark", False),
    "ablate": ("ablate", "app", True),
    "compare": ("compare", "compare", False),
    "ensemble": ("ensemble", "ensemble", False),
    "predict": ("predict", "predict", False),
    "models": ("models", "models", False),
    "explain": ("explain", "explain", False),
    "export": ("export", "export", False),
    "config": ("config", "config", False),
    "quickstart": ("quickstart", "quickstart", False),
}


def build_app(only: str | None = None) -> typer.Typer:
    """The root app with every command, or with the command ``only`` alone."""
    root_app = _root_app()
    root_app.callback()(root)
    for name, (module, attr, group) in COMMANDS.items():
        if only is not None and name != only:
            continue
        target = getattr(importlib.import_module(f"ecgcli.cli.{module}"), attr)
        if group:
            root_app.add_typer(target, name=name, rich_help_panel="Commands")
        else:
            root_app.command(name)(target)
    return root_app


#: Root options that take a value (the command is the first word after the root options).
_VALUE_OPTIONS = ("--env-file",)
_COMPLETION = ("--show-completion", "--install-completion")


def command_named(argv: list[str]) -> str | None:
    """The command ``argv`` runs when it is one of :data:`COMMANDS` and nothing before it asks
    for the root's help or version; else None (the full app then answers)."""
    words = iter(argv)
    for word in words:
        if word in _VALUE_OPTIONS:
            next(words, None)
        elif word.startswith("-"):
            if word in ("-h", "--help", "--version") or word.startswith(_COMPLETION):
                return None
        else:
            return word if word in COMMANDS else None
    return None


def __getattr__(name: str) -> Any:
    """``app``: the full application, built on first use."""
    if name == "app":
        full = build_app()
        globals()["app"] = full
        return full
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Console-script entry point. SIGTERM (Slurm's warning before it kills a job, `kill`) is
    handled like Ctrl-C: the current write finishes, the saved epoch is kept, the resume hint
    is printed, and the exit code is 143."""
    import os

    from ecgcli.files import stop_like_ctrl_c

    # pydantic looks up every installed package's entry points for its plugins on first import
    # (about 20 ms of `ecg predict`'s cold start); ecg uses none. A value the
    # user set is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    stop_like_ctrl_c()
    command = command_named(sys.argv[1:])
    (build_app(command) if command else build_app())(prog_name="ecg")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
