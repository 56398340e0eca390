"""SIGTERM, an impatient second Ctrl-C, and Ctrl-C between two epochs (issue 31 I, J): the real
CLI in a subprocess, signalled at a file or an output line, as in test_faults.py. Each must end
with one error line that says which epoch is saved and how to resume, the exit code of its
signal (130 Ctrl-C, 143 SIGTERM), no temporary, and a run that resumes.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from injector import ecg, killed, run, temporaries

INT, TERM = signal.SIGINT, signal.SIGTERM

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def env(session_cache: Path) -> dict[str, str]:
    return {"ECG_CACHE_DIR": str(session_cache), "OMP_NUM_THREADS": "1", "COLUMNS": "150"}


def _supervised(data_root: Path, run_dir: Path) -> list[str]:
    return [
        "train", "supervised", "--data-root", str(data_root), "--epochs", "2", "--batch-size", "32",
        "--label-fraction", "1.0", "--seed", "7", "--workers", "1", "--device", "cpu",
        "--signal-length", "128", "--width", "16", "--run-dir", str(run_dir),
    ]  # fmt: skip


def _one_error(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in output, output
    return errors[0]


def _saved(run_dir: Path) -> int | None:
    """The epoch the run's resume state holds (read whole: a torn file would not load)."""
    from ecgcli.train.resume import read_resume_state

    return int(read_resume_state(run_dir / "state" / "last.safetensors")[1]["epoch"])


def _resumes(command: str, run_dir: Path, env: dict) -> None:
    again = run(ecg(*command.split(), "--resume", str(run_dir)), env={**env, "FAULT_WRITE_DELAY": "0"})
    assert again.returncode == 0, again.output
    assert (run_dir / "metrics.json").is_file() and temporaries(run_dir) == []


@pytest.mark.parametrize(
    ("watch", "says"),
    [
        pytest.param("state/last.safetensors", "", id="in-epoch-2"),
        pytest.param("state/.last.safetensors.tmp-*", " after epoch 2 was saved.", id="at-the-epoch-2-save"),
    ],
)
def test_sigterm_saves_says_how_to_resume_and_exits_143(
    watch: str, says: str, synth_root: Path, env: dict, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    hit = run(
        ecg(*_supervised(synth_root, run_dir)),
        watch=str(run_dir / watch),
        after=r"^epoch 1/2",
        sig=TERM,
        env=env,
    )
    assert hit.fired and killed(hit, TERM), (hit.returncode, hit.output)
    line = _one_error(hit.output)
    assert line.startswith(f"error: stopped by SIGTERM{says}"), line
    assert line.endswith(f"Resume with: ecg train supervised --resume {run_dir}"), line
    assert temporaries(run_dir) == []
    assert sum(line.startswith("epoch 2/2") for line in hit.lines) <= 1  # never twice
    done = _saved(run_dir)  # what the line says is saved is what is on disk
    assert f"epoch {done} is saved." in line or f"after epoch {done} was saved." in line, line
    if says:  # the save the signal waited for is the one a resume continues from
        _resumes("train supervised", run_dir, env)


def test_a_second_ctrl_c_50ms_after_the_first_still_saves(
    synth_root: Path, env: dict, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    hit = run(
        ecg(*_supervised(synth_root, run_dir)),
        watch=str(run_dir / "state" / ".last.safetensors.tmp-*"),
        after=r"^epoch 1/2",
        sig=INT,
        env=env,
        again_after=0.05,
    )
    assert hit.fired and killed(hit, INT), (hit.returncode, hit.output)
    line = _one_error(hit.output)
    assert (
        line
        == f"error: interrupted after epoch 2 was saved. Resume with: ecg train supervised --resume {run_dir}"
    )
    assert temporaries(run_dir) == []
    assert _saved(run_dir) == 2


#: Widens the step between two epochs (seeding the next one) to 1.5 s, so a Ctrl-C sent when
#: an epoch's line appears lands there, where issue 31 J lost the resume hint.
SLOW_EPOCH_START = (
    "import time as _t, ecgcli.train.loop as _loop\n"
    "_seed = _loop.epoch_seed\n"
    "_loop.epoch_seed = lambda s, e, k: (_t.sleep(1.5) if e >= 1 else None) or _seed(s, e, k)\n"
)


def test_ssl_ctrl_c_between_epochs_says_how_to_resume(synth_root: Path, env: dict, tmp_path: Path) -> None:
    run_dir = tmp_path / "ssl"
    args = [
        "train", "ssl", "--data-root", str(synth_root), "--epochs", "3", "--probe-every", "0",
        "--batch-size", "64", "--signal-length", "128", "--width", "16", "--hidden-dim", "32",
        "--projection-dim", "16", "--workers", "1", "--device", "cpu", "--run-dir", str(run_dir),
    ]  # fmt: skip
    hit = run(
        ecg(*args, patch=SLOW_EPOCH_START),
        watch=str(run_dir / "state" / "last.safetensors"),
        after=r"^epoch 1/3",
        sig=INT,
        env={**env, "FAULT_WRITE_DELAY": "0"},
    )
    assert hit.fired and killed(hit, INT), (hit.returncode, hit.output)
    line = _one_error(hit.output)
    hint = f"Resume with: ecg train ssl --resume {run_dir}"
    assert line in (
        f"error: interrupted in epoch 2; epoch 1 is saved. {hint}",  # the next epoch had begun
        f"error: interrupted after epoch 1 was saved. {hint}",
    ), line
    assert [line[:9] for line in hit.lines if line.startswith("epoch ")] == ["epoch 1/3"], hit.output
    assert _saved(run_dir) == 1 and temporaries(run_dir) == []


def test_sigterm_to_a_parallel_multiseeds_process_group_stops_it_cleanly(
    synth_root: Path, env: dict, tmp_path: Path
) -> None:
    """Slurm's scancel, `kill -- -PGID` and `pkill -f` signal the workers as well as the
    parent: the workers must stop like the parent asks them to (keep their epoch), not die
    and break the pool, which left the parent hanging after a traceback."""
    out = tmp_path / "ms"
    args = [
        "multiseed", "--data-root", str(synth_root), "--seeds", "42,52", "--jobs", "2",
        "-c", "bce+standard", "-c", "focal+standard", "--epochs", "2", "--batch-size", "32",
        "--label-fraction", "1.0", "--signal-length", "128", "--width", "16", "--workers", "1",
        "--device", "cpu", "--out", str(out),
    ]  # fmt: skip
    # four runs for two workers: the pool hands out three at once, so one is still pending
    hit = run(ecg(*args), watch=str(out), after=r"epoch 1/2", sig=TERM, env=env, group=True, timeout=120)
    assert hit.fired and killed(hit, TERM), (hit.returncode, hit.output)
    line = _one_error(hit.output)
    assert line.startswith("error: stopped by SIGTERM: 0 of 4 runs finished and saved in"), line
    assert line.endswith("an interrupted one resumes from its last saved epoch)"), line
    assert temporaries(out) == []
    again = run(ecg(*args), env={**env, "FAULT_WRITE_DELAY": "0"}, timeout=240)
    assert again.returncode == 0, again.output
    assert "resuming" in again.output, again.output
    assert (out / "multiseed.json").is_file() and temporaries(out) == []


def test_sigterm_to_an_nproc_2_runs_process_group_prints_one_line_and_exits_143(
    synth_root: Path, env: dict, tmp_path: Path
) -> None:
    """`--nproc 2` signalled as scancel or a terminal does it, every process at once (a signal
    to the launcher alone reaches the workers the same way: torchrun forwards it): rank 0 says
    where to resume and nobody else says anything (rank 1 and the launcher each printed a line
    of their own)."""
    run_dir = tmp_path / "run"
    args = [*_supervised(synth_root, run_dir), "--epochs", "3", "--nproc", "2"]
    hit = run(ecg(*args), watch=str(run_dir / "state" / "last.safetensors"), sig=TERM, env=env, group=True)
    assert hit.fired and killed(hit, TERM), (hit.returncode, hit.output)
    line = _one_error(hit.output)
    assert line.startswith("error: stopped by SIGTERM"), line
    assert line.endswith(f"Resume with: ecg train supervised --resume {run_dir}"), line
    assert temporaries(run_dir) == []
