"""The app shell: help without torch, version, settings precedence, error boundary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecgcli import __version__
from ecgcli.cli.app import app

runner = CliRunner()


def test_help_lists_every_group_without_importing_torch() -> None:
    code = (
        "import sys\n"
        "from ecgcli.cli.app import app\n"
        "try:\n    app(['--help'], prog_name='ecg')\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', [m for m in ('torch', 'pandas', 'sklearn') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout
    for group in ("data", "train", "finetune", "multiseed", "compare", "predict", "config"):
        assert group in out.stdout


def test_a_command_imports_only_its_own_module() -> None:
    """``ecg predict`` builds a root app with predict alone: no training or other command module."""
    code = (
        "import sys\n"
        "sys.argv = ['ecg', '--env-file', '/dev/null', 'predict', '-h']\n"
        "from ecgcli.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    print('CODE', e.code)\n"
        "print('LOADED', sorted(m for m in sys.modules if m.startswith('ecgcli.cli.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "CODE 0" in out.stdout and "Usage: ecg predict" in out.stdout
    loaded = out.stdout.split("LOADED", 1)[1]
    assert "ecgcli.cli.predict" in loaded
    for other in ("train", "multiseed", "ablate", "finetune", "benchmark", "quickstart"):
        assert f"ecgcli.cli.{other}'" not in loaded


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["predict", "r.hea"], "predict"),
        (["--env-file", "x.env", "--debug", "train", "ssl"], "train"),
        (["--env-file=x.env", "models"], "models"),
        (["--help", "predict"], None),
        (["--version"], None),
        (["predcit"], None),  # a typo: the full app suggests the name
        ([], None),
    ],
)
def test_command_named(argv: list[str], command: str | None) -> None:
    from ecgcli.cli.app import command_named

    assert command_named(argv) == command


def test_python_m_and_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ecgcli", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"ecg (ecgcli) {__version__}"


def _config(args: list[str], env: dict[str, str] | None = None) -> dict:
    result = runner.invoke(app, [*args, "config", "--json"], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_settings_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("ECG_DATA_ROOT", "ECG_WORKERS", "ECG_DEVICE", "ECG_RUNS_DIR"):
        monkeypatch.delenv(var, raising=False)
    assert _config([])["data_root"] == {
        "value": "data/PTB-XL",
        "source": "default",
        "env": "ECG_DATA_ROOT",
    }

    Path(".env").write_text("ECG_DATA_ROOT=from-dotenv\nECG_WORKERS=3\nECG_RUNS_DIR=dot-runs\n")
    cfg = _config([])
    assert cfg["data_root"]["value"] == "from-dotenv" and cfg["data_root"]["source"] == ".env line 1"

    extra = tmp_path / "extra.env"
    extra.write_text("ECG_DATA_ROOT=from-file\n")
    cfg = _config(["--env-file", str(extra)])
    assert cfg["data_root"] == {"value": "from-file", "source": f"{extra} line 1", "env": "ECG_DATA_ROOT"}
    assert cfg["workers"]["value"] == 3  # still from .env

    cfg = _config(["--env-file", str(extra)], env={"ECG_DATA_ROOT": "from-env"})
    assert cfg["data_root"]["value"] == "from-env" and cfg["data_root"]["source"] == "env"

    result = runner.invoke(
        app,
        ["--env-file", str(extra), "config", "--json", "--data-root", "from-flag"],
        env={"ECG_DATA_ROOT": "from-env"},
    )
    cfg = json.loads(result.stdout)
    assert cfg["data_root"] == {"value": "from-flag", "source": "cli", "env": "ECG_DATA_ROOT"}


def test_bad_settings_are_one_line_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config"], env={"ECG_DEVICE": "gpu"})
    assert result.exit_code == 2
    assert "invalid ECG_DEVICE in the environment" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["--env-file", str(tmp_path / "none.env"), "config"])
    assert result.exit_code == 2 and "env file not found" in result.output


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_a_bad_flag_is_reported_under_the_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["config", "--device", "banana"], env={"ECG_DEVICE": "cpu"})
    assert result.exit_code == 2
    assert _lines(result.stderr) == [
        "error: invalid --device: Input should be 'auto', 'cpu', 'cuda' or 'mps' (got 'banana')"
    ]


def test_a_bad_env_file_value_names_file_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ECG_DEVICE", raising=False)
    Path(".env").write_text("# settings\nECG_WORKERS=2\nECG_DEVICE=banana\n")
    result = runner.invoke(app, ["config", "--json"])
    assert result.exit_code == 2
    shown = json.loads(result.stdout)["device"]
    assert shown["value"] == "banana" and shown["source"] == ".env line 3" and "auto" in shown["error"]
    assert _lines(result.stderr) == [
        "error: invalid ECG_DEVICE at .env line 3: Input should be 'auto', 'cpu', 'cuda' or 'mps' "
        "(got 'banana')"
    ]
    # a command that never uses the device is not stopped by it
    verify = runner.invoke(app, ["data", "verify", "--data-root", str(tmp_path / "none"), "--json"])
    assert "ECG_DEVICE" not in verify.output and "not found" in verify.output


def test_empty_values_mean_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path(".env").write_text("ECG_RUNS_DIR=\n")
    cfg = _config([], env={"ECG_DATA_ROOT": "", "ECG_CHECKPOINT": ""})
    assert cfg["data_root"] == {"value": "data/PTB-XL", "source": "default", "env": "ECG_DATA_ROOT"}
    assert cfg["checkpoint"]["value"] is None and cfg["checkpoint"]["source"] == "default"
    assert cfg["runs_dir"]["value"] == "runs" and cfg["runs_dir"]["source"] == "default"


def test_env_file_syntax_error_and_unknown_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.env"
    bad.write_text("ECG_DEVICE=cpu\nnot an assignment\n")
    result = runner.invoke(app, ["--env-file", str(bad), "config"])
    assert result.exit_code == 2
    assert _lines(result.stderr) == [f"error: {bad} line 2: expected KEY=VALUE, got 'not an assignment'"]
    typo = tmp_path / "typo.env"
    typo.write_text("export ECG_WORKRS=2\nECG_SAMPLING_RATE='500'\n")
    result = runner.invoke(app, ["--env-file", str(typo), "config", "--json"])
    assert result.exit_code == 0
    assert _lines(result.stderr) == [
        f"warning: {typo} line 1: unknown setting ECG_WORKRS ignored (did you mean ECG_WORKERS?)"
    ]
    assert json.loads(result.stdout)["sampling_rate"] == {
        "value": 500,
        "source": f"{typo} line 2",
        "env": "ECG_SAMPLING_RATE",
    }


def test_console_script_error_is_one_line(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("ecg")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "ecgcli"]
    out = subprocess.run(
        [*cmd, "data", "verify", "--data-root", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")


def test_reflow_joins_wrapped_paragraph_lines_but_keeps_indented_ones() -> None:
    from ecgcli.cli.app import reflow

    text = "First line\nof one paragraph.\n\nExamples:\n  ecg a\n  ecg b\n\n- item\n- item"
    assert reflow(text) == "First line of one paragraph.\n\nExamples:\n  ecg a\n  ecg b\n\n- item\n- item"


def test_help_paragraphs_flow_with_the_terminal_width() -> None:
    result = runner.invoke(app, ["quickstart", "--help"], terminal_width=200, env={"COLUMNS": "200"})
    assert result.exit_code == 0
    # one source paragraph, hard-wrapped in the docstring, is one line on a wide terminal
    assert "reuses what is done and resumes what was interrupted." in result.stdout


def test_a_non_utf8_env_file_is_one_line_naming_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path(".env").write_bytes(b"# settings\nECG_WORKERS=\xff\xfe\n")
    for args in (["config"], ["predict", str(tmp_path / "none.hea"), "--json"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        lines = _lines(result.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: .env line 2: not UTF-8 text"), lines


def test_a_utf8_bom_at_the_start_of_an_env_file_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ECG_WORKERS", raising=False)
    Path(".env").write_bytes(b"\xef\xbb\xbfECG_WORKERS=3\n")
    result = runner.invoke(app, ["config", "--json"])
    assert result.exit_code == 0 and _lines(result.stderr) == []
    assert json.loads(result.stdout)["workers"] == {"value": 3, "source": ".env line 1", "env": "ECG_WORKERS"}


def test_an_unknown_ecg_variable_in_the_environment_gets_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["config", "--json"], env={"ECG_WORKRS": "2", "ECG_BF16_EMULATED": "1"})
    assert result.exit_code == 0
    assert _lines(result.stderr) == [
        "warning: unknown setting ECG_WORKRS in the environment ignored (did you mean ECG_WORKERS?)"
    ]


@pytest.mark.parametrize(
    "args",
    [
        ["train", "supervised", "--width", "0"],
        ["train", "supervised", "--width", "-5"],
        ["train", "ssl", "--width", "0"],
        ["finetune", "--ssl-checkpoint", "none.safetensors", "--width", "0"],
    ],
)
def test_a_zero_width_is_refused_like_a_negative_one(tmp_path: Path, args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--data-root", str(tmp_path / "none"), "--device", "cpu"])
    assert result.exit_code == 2, result.output
    assert _lines(result.stderr) == [f"error: --width must be at least 1, got {args[-1]}"]


def test_sigterm_while_options_are_parsed_says_so_and_exits_143(monkeypatch, capsys) -> None:
    """typer turns a KeyboardInterrupt raised before the command runs into a silent exit 130;
    under SIGTERM (stop_like_ctrl_c raised it) the root group says so and exits 143."""
    import signal

    import typer

    from ecgcli import files
    from ecgcli.cli.app import EcgGroup

    def stop(value: int) -> int:
        monkeypatch.setitem(files._STOPPING, "signal", signal.SIGTERM)  # as the handler records it
        raise files.Terminated()

    tiny = typer.Typer(cls=EcgGroup)

    @tiny.callback()
    def root(x: int = typer.Option(1, callback=stop)) -> None:  # parsed before any command
        raise AssertionError("the root callback must not run")

    @tiny.command()
    def go() -> None:
        raise AssertionError("the command must not run")

    @tiny.command()
    def other() -> None:
        pass

    with pytest.raises(SystemExit) as exit_:
        tiny(["go"], prog_name="ecg")
    assert exit_.value.code == 143
    assert "error: stopped by SIGTERM" in capsys.readouterr().err
