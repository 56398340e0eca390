"""What `--resume` and starting a run may do with a folder (issue 31): resume continues a run
with its saved configuration and only ``--epochs`` may change it; resuming with the wrong
command says which command; starting a run deletes nothing ecgcli did not write and says where
it went when its name was taken. Real CLI calls in-process on tiny runs (width 16, 128 samples).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecgcli.cli.app import app
from ecgcli.errors import Interrupted
from ecgcli.events import EpochStarted

runner = CliRunner()
TINY = ["--device", "cpu", "--workers", "1", "--signal-length", "128", "--width", "16"]


def _stop_in_epoch(n: int):
    def stop(event: object) -> None:
        if isinstance(event, EpochStarted) and event.epoch == n:
            raise KeyboardInterrupt

    return stop


@pytest.fixture(scope="module")
def saved_runs(synth_root: Path, session_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A supervised run with 2 of 3 epochs saved and an SSL run with 1 of 2 (both cut by
    Ctrl-C), made once; each test resumes its own copy."""
    import torch

    from ecgcli.train.config import SSLConfig, SupervisedConfig
    from ecgcli.train.ssl import train_ssl
    from ecgcli.train.supervised import train_classifier

    runs = tmp_path_factory.mktemp("saved-runs")
    common = {
        "data_root": str(synth_root), "cache_dir": str(session_cache), "runs_dir": str(runs),
        "device": "cpu", "workers": 1, "signal_length": 128, "width": 16,
    }  # fmt: skip
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.raises(Interrupted):
            sup = SupervisedConfig(**common, label_fraction=1.0, epochs=3, batch_size=32, name="sup")
            train_classifier(sup, _stop_in_epoch(3))
        with pytest.raises(Interrupted):
            ssl = SSLConfig(
                **common, epochs=2, batch_size=64, hidden_dim=32, projection_dim=16, probe_every=0, name="ssl"
            )
            train_ssl(ssl, _stop_in_epoch(2))
    finally:
        torch.set_num_threads(before)
    return {"sup": runs / "sup", "ssl": runs / "ssl"}


@pytest.fixture()
def env(session_cache: Path, tmp_path: Path) -> dict[str, str]:
    return {"ECG_CACHE_DIR": str(session_cache), "ECG_RUNS_DIR": str(tmp_path / "rd"), "COLUMNS": "200"}


def _copy(saved_runs: dict, kind: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved_runs[kind], tmp_path / kind))


def _errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def _one_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    (line,) = _errors(result.output)
    return line


# --- D: --resume keeps the saved configuration; --epochs alone may change it -------------------


@pytest.mark.parametrize(
    ("command", "kind", "extra", "named"),
    [
        (["train", "supervised"], "sup", ["--lr", "0.5", "--epochs", "4"], "--lr"),
        (["train", "ssl"], "ssl", ["--lr", "0.5", "--batch-size", "8"], "--batch-size, --lr"),
        (["finetune"], "sup", ["--seed", "3"], "--seed"),
        (["train", "supervised"], "sup", ["--device", "cpu"], "--device"),
    ],
)
def test_resume_refuses_options_it_would_ignore(
    command: list[str], kind: str, extra: list[str], named: str, saved_runs: dict, env: dict, tmp_path: Path
) -> None:
    run = _copy(saved_runs, kind, tmp_path)
    before = (run / "config.json").read_bytes()
    result = runner.invoke(app, [*command, "--resume", str(run), *extra], env=env)
    line = _one_error(result)
    assert line.startswith(f"error: {named} cannot be given with --resume"), line
    assert "--epochs" in line  # what may be given instead
    assert (run / "config.json").read_bytes() == before


def test_resume_refuses_fewer_epochs_than_done(saved_runs: dict, env: dict, tmp_path: Path) -> None:
    run = _copy(saved_runs, "sup", tmp_path)
    result = runner.invoke(app, ["train", "supervised", "--resume", str(run), "--epochs", "1"], env=env)
    line = _one_error(result)
    assert line == f"error: --epochs 1 is fewer than the 2 epochs {run} has already trained; give 2 or more"
    assert json.loads((run / "config.json").read_text())["epochs"] == 3


def test_resume_with_more_epochs_trains_them(saved_runs: dict, env: dict, tmp_path: Path) -> None:
    run = _copy(saved_runs, "sup", tmp_path)
    result = runner.invoke(app, ["train", "supervised", "--resume", str(run), "--epochs", "4"], env=env)
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3, 4]
    assert json.loads((run / "config.json").read_text())["epochs"] == 4
    assert "epoch 4/4" in result.output and "epoch 2/" not in result.output


# --- L: the wrong command for the run says the right one --------------------------------------


@pytest.mark.parametrize(
    ("command", "kind", "finetune", "says"),
    [
        (
            ["train", "ssl"],
            "sup",
            False,
            "is a supervised run; resume it with `ecg train supervised --resume",
        ),
        (["finetune"], "sup", False, "is a supervised run; resume it with `ecg train supervised --resume"),
        (["train", "supervised"], "ssl", False, "is an SSL run; resume it with `ecg train ssl --resume"),
        (["finetune"], "ssl", False, "is an SSL run; resume it with `ecg train ssl --resume"),
        (["train", "supervised"], "sup", True, "is a finetune run; resume it with `ecg finetune --resume"),
        (["train", "ssl"], "sup", True, "is a finetune run; resume it with `ecg finetune --resume"),
    ],
)
def test_resume_with_the_wrong_command_names_the_right_one(
    command: list[str], kind: str, finetune: bool, says: str, saved_runs: dict, env: dict, tmp_path: Path
) -> None:
    run = _copy(saved_runs, kind, tmp_path)
    if finetune:  # a fine-tuning run is a supervised one with an encoder checkpoint
        config = json.loads((run / "config.json").read_text())
        (run / "config.json").write_text(json.dumps({**config, "ssl_checkpoint": "enc.safetensors"}))
    result = runner.invoke(app, [*command, "--resume", str(run)], env=env)
    assert _one_error(result) == f"error: {run} {says} {run}`"


# --- A, B: starting a run deletes nothing it did not write ------------------------------------


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize(
    "command",
    [
        ["train", "supervised", "--label-fraction", "1.0"],
        ["train", "ssl", "--probe-every", "0", "--batch-size", "64"],
        ["finetune", "--ssl-checkpoint", "SSL"],
    ],
    ids=["supervised", "ssl", "finetune"],
)
def test_run_dir_with_the_users_files_is_refused_untouched(
    command: list[str], synth_root: Path, saved_runs: dict, env: dict, tmp_path: Path
) -> None:
    mine = tmp_path / "myfiles2"
    (mine / "state").mkdir(parents=True)
    for name in ("notes.txt", "config.json", "train.log", "state/keep.txt"):
        (mine / name).write_text("mine")
    before = _tree(mine)
    if command[0] == "finetune":  # an encoder to fine-tune: the SSL run's, finished
        command = [*command[:-1], str(_encoder(saved_runs, tmp_path)), *TINY[:-2]]
    else:
        command = [*command, *TINY]
    args = [*command, "--data-root", str(synth_root), "--epochs", "1", "--run-dir", str(mine)]
    result = runner.invoke(app, args, env=env)
    line = _one_error(result)
    assert "did not write" in line and "nothing was deleted" in line, line
    assert _tree(mine) == before


def _encoder(saved_runs: dict, tmp_path: Path) -> Path:
    """The SSL fixture run finished (one more epoch), so its encoder checkpoint exists."""
    run = _copy(saved_runs, "ssl", tmp_path)
    from ecgcli.train.ssl import resume_ssl

    return resume_ssl(run).checkpoint


def test_a_taken_name_is_left_alone_and_the_new_one_is_said(
    synth_root: Path, env: dict, tmp_path: Path
) -> None:
    taken = tmp_path / "rd" / "exp1"
    (taken / "state").mkdir(parents=True)
    for name in ("config.json", "state/x.bin", "notes.md"):
        (taken / name).write_text("mine")
    before = _tree(taken)
    args = ["train", "supervised", "--data-root", str(synth_root), "--epochs", "1", "--name", "exp1"]
    result = runner.invoke(app, [*args, "--label-fraction", "1.0", *TINY], env=env)
    assert result.exit_code == 0, result.output
    assert _tree(taken) == before
    said = f"training into {taken.parent / 'exp1-2'} because {taken} is taken"
    said += " (it holds files ecgcli did not write)"
    assert said in result.output.replace("\n", " ")
    assert (taken.parent / "exp1-2" / "metrics.json").is_file()


# --- the epoch line printed twice on Ctrl-C ---------------------------------------------------


def test_ctrl_c_while_an_epoch_line_is_written_prints_it_once(ctrl_c_raises: None) -> None:
    """A Ctrl-C that lands after rich wrote a line but before it emptied its buffer printed
    that line again with the next one (the error). The signal is sent from inside the write."""
    import io
    import signal

    from rich.console import Console

    from ecgcli.cli.render import TrainingView
    from ecgcli.events import EpochDone

    class SignalOnFlush(io.StringIO):
        armed = True

        def flush(self) -> None:
            if self.armed:
                self.armed = False
                signal.raise_signal(signal.SIGINT)

    out = SignalOnFlush()
    console = Console(file=out, force_terminal=False, width=200)
    view = TrainingView("t", console)
    with pytest.raises(KeyboardInterrupt), view:
        view(EpochDone(1, 3, 0.5, {"auroc": 0.7}, True, 1.0, 1e-3, 100.0))
    console.print("error: interrupted")
    assert [line[:9] for line in out.getvalue().splitlines()] == ["epoch 1/3", "error: in"]


def test_ctrl_c_while_a_resumed_run_loads_its_data_says_how_to_resume(
    saved_runs: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 31 J: the hint whenever an epoch is saved, also before the loop has begun."""
    from ecgcli.train import run as run_skeleton
    from ecgcli.train import supervised

    def ctrl_c(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(run_skeleton, "load_data", ctrl_c)
    run = _copy(saved_runs, "sup", tmp_path)
    with pytest.raises(Interrupted) as stopped:
        supervised.resume_classifier(run)
    assert (
        str(stopped.value)
        == f"interrupted; epoch 2 is saved. Resume with: ecg train supervised --resume {run}"
    )
