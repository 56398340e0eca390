"""The ``ecg`` application: the root Typer app, global options, and the error boundary.

Every sub-app lives in its own module and imports the core lazily inside its commands, so
``ecg --help`` never imports torch or pandas.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ecgcli import __version__
from ecgcli.cli import (
    ablate,
    benchmark,
    compare,
    config,
    data,
    ensemble,
    explain,
    export,
    finetune,
    models,
    multiseed,
    predict,
    quickstart,
    train,
)


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


def _stop_code() -> int:
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
            sys.exit(_stop_code())
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
            if isinstance(exc, Interrupted) and _stop_code() == SIGTERM_EXIT:
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

            code = _stop_code()
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


app = typer.Typer(
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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ecg (ecgcli) {__version__}")
        raise typer.Exit()


@app.callback()
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


app.add_typer(data.app, name="data", rich_help_panel="Commands")
app.add_typer(train.app, name="train", rich_help_panel="Commands")
app.command("finetune")(finetune.finetune)
app.command("multiseed")(multiseed.multiseed)
app.command("benchmark")(benchmark.benchmark)
app.add_typer(ablate.app, name="ablate", rich_help_panel="Commands")
app.command("compare")(compare.compare)
app.command("ensemble")(ensemble.ensemble)
app.command("predict")(predict.predict)
app.command("models")(models.models)
app.command("explain")(explain.explain)
app.command("export")(export.export)
app.command("config")(config.config)
app.command("quickstart")(quickstart.quickstart)


def main() -> None:
    """Console-script entry point. SIGTERM (Slurm's warning before it kills a job, `kill`) is
    handled like Ctrl-C: the current write finishes, the saved epoch is kept, the resume hint
    is printed, and the exit code is 143."""
    from ecgcli.files import stop_like_ctrl_c

    stop_like_ctrl_c()
    app(prog_name="ecg")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
