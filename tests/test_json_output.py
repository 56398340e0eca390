"""``--json`` and ``--csv`` mean a parseable document on stdout, on success and on every error
(issue 31 O): whatever fails, a script reading stdout gets one document saying what."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ecgcli.cli.app import app

runner = CliRunner()


def _commands(group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    """Every command of the app with its path (``("data", "verify")``)."""
    found = []
    for name, cmd in getattr(group, "commands", {}).items():
        if getattr(cmd, "commands", None):
            found += _commands(cmd, (*path, name))
        else:
            found.append(((*path, name), cmd))
    return found


def _machine_flags() -> list[tuple[tuple[str, ...], str]]:
    root = typer.main.get_command(app)
    return [
        (path, flag)
        for path, cmd in _commands(root)
        for param in cmd.params
        for flag in param.opts
        if flag in ("--json", "--csv")
    ]


MACHINE_FLAGS = _machine_flags()


def _error_doc(result, fmt: str) -> dict:
    """The error document on stdout: ``error`` and ``exit_code`` (JSON keys or CSV columns)."""
    assert result.stdout.strip(), f"nothing on stdout: {result.output}"
    if fmt == "--json":
        doc = json.loads(result.stdout)
    else:
        rows = list(csv.DictReader(io.StringIO(result.stdout)))
        assert rows and "error" in rows[0], result.stdout
        doc = {"error": rows[0]["error"], "exit_code": result.exit_code}
    assert isinstance(doc["error"], str) and doc["error"], doc
    assert doc["exit_code"] == result.exit_code != 0
    return doc


def test_every_machine_readable_command_is_covered() -> None:
    """The commands this file checks; a new --json/--csv command shows up here."""
    names = {" ".join(path) for path, _ in MACHINE_FLAGS}
    assert {"predict", "explain", "export", "data verify", "data cache", "config", "models"} <= names


@pytest.mark.parametrize(
    ("path", "flag"), MACHINE_FLAGS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else v
)
def test_a_usage_error_is_a_document_too(path: tuple[str, ...], flag: str) -> None:
    result = runner.invoke(app, [*path, flag, "--no-such-option"])
    assert result.exit_code == 2, result.output
    doc = _error_doc(result, flag)
    assert "no-such-option" in doc["error"] and "no-such-option" in result.stderr


def test_data_verify_unknown_task(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "verify", "--task", "bogus", "--json", "--data-root", str(tmp_path)])
    doc = _error_doc(result, "--json")
    assert result.exit_code == 2 and "unknown task 'bogus'" in doc["error"] and doc["status"] == "error"
    (line,) = result.stderr.strip().splitlines()  # the person still gets the one line
    assert line == f"error: {doc['error']}"


def test_data_cache_and_export_and_explain_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "cache", "--data-root", str(tmp_path / "none"), "--json"])
    assert "not found" in _error_doc(result, "--json")["error"]
    result = runner.invoke(app, ["export", str(tmp_path / "none.safetensors"), "--json"])
    assert "checkpoint not found" in _error_doc(result, "--json")["error"]
    for args in (
        [str(tmp_path / "none"), "-c", str(tmp_path / "none.safetensors"), "--json"],  # no record
        [str(tmp_path / "none"), "--json", "--steps", "0"],  # a bad value
        [str(tmp_path / "none"), "--json", "--class", "NORM", "--method", "nope"],
    ):
        result = runner.invoke(app, ["explain", *args])
        _error_doc(result, "--json")


def test_an_error_after_the_document_does_not_print_a_second_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`config --json` prints the settings, then fails on an invalid one: one document."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ECG_DEVICE", raising=False)
    Path(".env").write_text("ECG_DEVICE=banana\n")
    result = runner.invoke(app, ["config", "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["device"]["value"] == "banana"  # one parseable document


def test_an_internal_error_is_a_document_too(monkeypatch: pytest.MonkeyPatch) -> None:
    import ecgcli.models.profile as profile

    def boom(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(profile, "profile_encoders", boom)
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 70
    assert "internal error: RuntimeError: boom" in _error_doc(result, "--json")["error"]


def test_without_json_stdout_stays_empty_on_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", str(tmp_path / "none.safetensors")])
    assert result.exit_code == 2 and result.stdout == ""
    # a --json that is an option's value, after `--`, is not a request for JSON
    result = runner.invoke(app, ["data", "verify", "--data-root", str(tmp_path), "--", "--json"])
    assert result.exit_code == 2 and result.stdout == ""
