"""--precision: what each device accepts, one-line refusals, and bf16 autocast in the loop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ecgcli.train.precision as precision
from ecgcli.errors import ConfigError
from ecgcli.train.precision import autocast_dtype

CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parents[1]


def test_cpu_precisions_follow_the_cpu_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(precision.EMULATED_ENV, raising=False)
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "fma"})
    assert autocast_dtype("fp32", CPU) is None and autocast_dtype("auto", CPU) is None
    with pytest.raises(
        ConfigError, match=r"--precision bf16: this CPU has no native bf16 \(no avx512_bf16"
    ) as e:
        autocast_dtype("bf16", CPU)
    assert e.value.exit_code == 2 and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="--precision fp16: this CPU has no native fp16"):
        autocast_dtype("fp16", CPU)
    with pytest.raises(ConfigError, match="--precision must be one of auto, fp32, bf16, fp16, got 'half'"):
        autocast_dtype("half", CPU)
    monkeypatch.setenv(precision.EMULATED_ENV, "1")  # accuracy experiments on any CPU
    assert autocast_dtype("bf16", CPU) == torch.bfloat16
    monkeypatch.delenv(precision.EMULATED_ENV)
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512f", "avx512_bf16", "amx_fp16"})
    assert autocast_dtype("bf16", CPU) == torch.bfloat16 and autocast_dtype("fp16", CPU) == torch.float16
    # auto is bf16 on a CPU that computes it natively, fp32 on one that would emulate it
    monkeypatch.setattr(precision, "CPU_AUTO_BF16", True)
    assert autocast_dtype("auto", CPU) == torch.bfloat16
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "fma"})
    assert autocast_dtype("auto", CPU) is None


def test_other_devices_train_in_fp32_only() -> None:
    mps = torch.device("mps")
    assert autocast_dtype("auto", mps) is None and autocast_dtype("fp32", mps) is None
    with pytest.raises(ConfigError, match="runs on CUDA or the CPU, not on mps"):
        autocast_dtype("bf16", mps)


@pytest.mark.usefixtures("one_torch_thread")
def test_the_loop_trains_under_bf16_autocast(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bf16 step runs the convolutions in bf16 and still lowers the loss; fp32 is untouched."""
    from torch import nn

    from ecgcli.train.loop import LoopConfig, fit

    monkeypatch.setenv(precision.EMULATED_ENV, "1")
    seen: dict[str, set] = {}

    class Objective:
        def __init__(self, name: str) -> None:
            torch.manual_seed(0)
            self.module = nn.Sequential(nn.Conv1d(2, 4, 3), nn.Flatten(), nn.Linear(4 * 30, 1))
            self.name = name
            g = torch.Generator().manual_seed(1)
            self.x = torch.randn(64, 2, 32, generator=g)
            self.y = (self.x[:, 0, :8].mean(1, keepdim=True) > 0).float()

        def n_batches(self, epoch: int) -> int:
            return 4

        def batches(self, epoch: int):
            return (slice(16 * i, 16 * i + 16) for i in range(4))

        def samples(self, batch) -> int:
            return 16

        def loss(self, batch) -> torch.Tensor:
            out = self.module(self.x[batch])
            seen.setdefault(self.name, set()).add(out.dtype)
            return nn.functional.binary_cross_entropy_with_logits(out.float(), self.y[batch])

        def after_step(self, step: int, total: int) -> None:
            pass

        def validate(self, epoch: int) -> dict[str, float]:
            return {}

    losses = {}
    for name in ("fp32", "bf16"):
        obj = Objective(name)
        state = fit(obj, torch.optim.Adam(obj.module.parameters(), 1e-2), LoopConfig(3, CPU, precision=name))
        losses[name] = [h["train_loss"] for h in state.history]
    assert seen == {"fp32": {torch.float32}, "bf16": {torch.bfloat16}}
    assert losses["bf16"][-1] < losses["bf16"][0] and losses["fp32"][-1] < losses["fp32"][0]
    assert losses["bf16"] != losses["fp32"]  # it really ran in another precision


def test_gpu_check_without_cuda_says_so_in_one_line() -> None:
    import os

    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no CUDA GPU is visible"), out.stderr


def test_precision_the_cpu_cannot_is_a_one_line_error(
    synth_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from ecgcli.cli.app import app

    monkeypatch.delenv(precision.EMULATED_ENV, raising=False)
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2"})
    for command in (["train", "supervised"], ["train", "ssl"]):
        args = [*command, "--data-root", str(synth_root), "--device", "cpu", "--precision", "bf16"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        lines = [ln for ln in result.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and "--precision bf16: this CPU has no native bf16" in lines[0], result.output
