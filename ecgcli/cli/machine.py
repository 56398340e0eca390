"""Machine-readable output: with ``--json`` or ``--csv`` a command prints exactly one parseable
document on stdout, whether it succeeds or fails.

A script that runs ``ecg ... --json`` parses stdout; an empty stdout, or a second document
after the first, breaks it at the moment something went wrong, which is when it most needs
to read what happened. So the rule lives here, once, and not in each command:

- a command prints its document through :func:`write` (which remembers that it did);
- the error boundary (:class:`ecgcli.cli.app.EcgGroup`) calls :func:`emit_error` for every
  error it turns into an exit code (ecgcli's errors, usage errors, Ctrl-C, internal errors);
  when the command was asked for JSON or CSV and printed nothing yet, that prints the error
  document: ``{"error": "...", "exit_code": 2}`` in JSON, ``error,exit_code`` in CSV, or the
  command's own (:func:`declare` with ``on_error``) when its success document has a shape a
  script expects to find again (``ecg predict``'s columns, ``ecg data verify``'s ``status``).

The error line still goes to stderr as for every command, so a person sees the same thing.
Which format was asked for is known from :func:`declare` once the command runs, and from the
command line before that (a usage error happens before the command runs).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import typer

FORMATS = ("json", "csv")
_FLAGS = {"--json": "json", "--csv": "csv"}
_KEY = "ecgcli.machine"

#: ``on_error(message, exit_code) -> document text``: a command's own error document.
ErrorDocument = Callable[[str, int], str]


@dataclass
class Output:
    """What one command invocation promised on stdout, and whether it was printed."""

    fmt: str
    on_error: ErrorDocument | None = None
    written: bool = False


def declare(ctx: typer.Context, fmt: str | None, on_error: ErrorDocument | None = None) -> Output | None:
    """Say that this command prints a ``fmt`` document (``json``, ``csv`` or None for text),
    first thing in the command, so an error from then on prints a document in that format;
    ``on_error`` builds the command's own error document instead of the generic one."""
    if fmt is None:
        ctx.meta.pop(_KEY, None)
        return None
    if fmt not in FORMATS:
        raise ValueError(fmt)
    out = Output(fmt, on_error)
    ctx.meta[_KEY] = out  # a context shares its meta with its parents: the error boundary sees it
    return out


def write(ctx: typer.Context, text: str) -> None:
    """Print the command's document on stdout (flushed, newline-terminated) and remember that
    it was printed, so an error raised afterwards does not append a second one."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()
    out = ctx.meta.get(_KEY)
    if isinstance(out, Output):
        out.written = True


def json_text(obj: Any) -> str:
    """``obj`` as an indented JSON document; NaN and infinities become null (JSON has none)."""
    from ecgcli.files import json_safe

    return json.dumps(json_safe(obj), indent=2, allow_nan=False, default=str) + "\n"


def csv_text(rows: Sequence[Sequence[Any]]) -> str:
    """Rows (the header first) as CSV text with ``\\n`` line ends."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def error_document(fmt: str, message: str, exit_code: int) -> str:
    """The generic error document: ``{"error": ..., "exit_code": ...}`` or its CSV twin."""
    if fmt == "csv":
        return csv_text([["error", "exit_code"], [message, exit_code]])
    return json_text({"error": message, "exit_code": exit_code})


def requested(args: Sequence[str] | None) -> str | None:
    """The format a command line asks for (``--json`` or ``--csv`` before any ``--``)."""
    for arg in args or ():
        if arg == "--":
            break
        if arg in _FLAGS:
            return _FLAGS[arg]
    return None


def emit_error(ctx: typer.Context | None, args: Sequence[str] | None, message: str, exit_code: int) -> None:
    """Print the error document for a failed command when it was asked for JSON or CSV and
    printed no document yet; nothing otherwise. Never raises: the error line and the exit
    code must still follow whatever happens here."""
    out = ctx.meta.get(_KEY) if ctx is not None else None
    if not isinstance(out, Output):
        fmt = requested(args)
        if fmt is None:
            return
        out = Output(fmt)
        if ctx is not None:
            ctx.meta[_KEY] = out
    if out.written:
        return
    try:
        if out.on_error is not None:
            text = out.on_error(message, exit_code)
        else:
            text = error_document(out.fmt, message, exit_code)
    except Exception:  # a broken custom document must not hide the error itself
        text = error_document(out.fmt, message, exit_code)
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (OSError, ValueError):  # stdout closed (a pipe's reader went away)
        return
    out.written = True


__all__ = [
    "FORMATS",
    "Output",
    "csv_text",
    "declare",
    "emit_error",
    "error_document",
    "json_text",
    "requested",
    "write",
]
