"""Training recipes (--recipe), the one-cycle schedule, AdamW and test-time windows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ecgcli.cli.app import app
from ecgcli.errors import ConfigError
from ecgcli.scoring.evaluate import predict_proba, to_windows
from ecgcli.train.config import RECIPES, apply_recipe
from ecgcli.train.loop import lr_factor

runner = CliRunner()


def test_benchmark_recipe_fills_what_was_not_given_in_samples_at_the_rate() -> None:
    base = {"recipe": "benchmark", "sampling_rate": 100, "epochs": 3, "lr": 1e-3, "loss": "focal"}
    out = apply_recipe(base, given={"epochs"})
    assert out["epochs"] == 3  # given: kept
    assert out["lr"] == 1e-2 and out["loss"] == "bce" and out["optimizer"] == "adamw"
    assert out["signal_length"] == 250 and out["window_stride"] == 125 and out["aggregate"] == "max"
    assert apply_recipe({**base, "sampling_rate": 500})["signal_length"] == 1250
    assert apply_recipe({"recipe": "reference", "lr": 5.0}) == {"recipe": "reference", "lr": 5.0}
    with pytest.raises(ConfigError, match="unknown recipe 'fast'"):
        apply_recipe({"recipe": "fast"})
    assert set(RECIPES) == {"reference", "benchmark"}


def test_the_cli_and_a_grid_make_a_configuration_in_the_one_same_place() -> None:
    from ecgcli.experiments.grid import Grid
    from ecgcli.experiments.spec import parse_spec
    from ecgcli.train.config import SSLConfig, SupervisedConfig

    cfg = SupervisedConfig.from_options({"recipe": "benchmark", "epochs": 3}, {"epochs"})
    assert cfg.epochs == 3 and cfg.lr == 1e-2 and cfg.signal_length == 250  # the recipe, less what was given
    assert SSLConfig.from_options({"epochs": 3}) == SSLConfig(epochs=3)  # no recipe: the options as they are
    common = {"recipe": "benchmark", "epochs": 3}
    grid = Grid(
        (parse_spec("bce+standard"),),
        (42,),
        (0.1,),
        common,
        {},
        "bce+standard",
        Path("g"),
        frozenset({"epochs"}),
    )
    assert grid.config_kwargs(grid.configs[0]) == SupervisedConfig.resolve(
        {"recipe": "benchmark", "epochs": 3, "loss": "bce", "balance_strategy": "standard"},
        {"epochs", "loss", "balance_strategy"},
    )


def test_onecycle_rises_to_the_peak_at_30_percent_then_anneals() -> None:
    f = [lr_factor("onecycle", s, 100, 0) for s in range(100)]
    assert f[0] == pytest.approx(1 / 25)
    assert max(f) == pytest.approx(1.0) and f.index(max(f)) == 30
    assert f[-1] < 1e-3 and all(a <= b for a, b in zip(f[:30], f[1:31], strict=True))


def test_overlapping_windows_and_max_aggregation() -> None:
    x = torch.arange(1000.0).expand(2, 12, 1000)
    w, k = to_windows(x, 250, 125)
    assert k == 7 and w.shape == (14, 12, 250)
    assert w[1, 0, 0] == 125 and w[6, 0, -1] == 999  # second window starts at 125; last ends at the end
    assert to_windows(x, 300)[1] == 4  # a remainder gets one more window, aligned to the end

    class Mean(torch.nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return z.mean(dim=(1, 2))[:, None] / 1000.0

    cpu = torch.device("cpu")
    p_max = predict_proba(Mean(), x, cpu, 250, stride=125, aggregate="max")
    p_mean = predict_proba(Mean(), x, cpu, 250, stride=125, aggregate="mean")
    assert p_max.shape == (2, 1) and (p_max > p_mean).all()


@pytest.mark.usefixtures("one_torch_thread")
def test_cli_recipe_resolves_and_saves_every_value(
    synth_root: Path, session_cache: Path, tmp_path: Path
) -> None:
    run = tmp_path / "bench"
    res = runner.invoke(
        app,
        [
            "train", "supervised", "--recipe", "benchmark", "--data-root", str(synth_root),
            "--epochs", "1", "--batch-size", "32", "--width", "16", "--label-fraction", "1.0",
            "--device", "cpu", "--workers", "1", "--run-dir", str(run),
        ],
        env={"ECG_CACHE_DIR": str(session_cache)},
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["recipe"] == "benchmark" and cfg["epochs"] == 1 and cfg["batch_size"] == 32  # given
    assert (cfg["optimizer"], cfg["schedule"], cfg["lr"], cfg["weight_decay"]) == (
        "adamw",
        "onecycle",
        0.01,
        0.01,
    )
    assert (cfg["signal_length"], cfg["window_stride"], cfg["aggregate"]) == (250, 125, "max")
    assert (cfg["loss"], cfg["balance_strategy"], cfg["head"]) == ("bce", "standard", "benchmark")
    side = json.loads((run / "model.json").read_text())
    assert side["window_stride"] == 125 and side["aggregate"] == "max"
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["bootstrap"]) == {"auroc", "auprc", "fmax", "fmax_bench"}
    assert metrics["test_tuned"]["macro_auprc"] > 0


def test_cli_unknown_recipe_is_one_line(synth_root: Path) -> None:
    res = runner.invoke(app, ["train", "supervised", "--recipe", "fast", "--data-root", str(synth_root)])
    assert res.exit_code == 2 and "unknown recipe 'fast'" in res.output and "Traceback" not in res.output


def test_benchmark_help_shows_the_recipe_s_defaults_not_the_field_s() -> None:
    """`ecg benchmark` trains with the benchmark recipe unless told otherwise, so its help must
    say 50 epochs at 1e-2, not the reference defaults (30 epochs at 1e-3) a run never gets."""
    text = CliRunner().invoke(app, ["benchmark", "--help"], env={"COLUMNS": "400"}).output
    line = {ln.split()[1]: ln for ln in text.splitlines() if ln.strip("│ ").startswith("--")}
    assert "[default: 50, the benchmark recipe's]" in line["--epochs"]
    assert "[default: 0.01, the benchmark recipe's]" in line["--lr"]
    assert "[default: 1.25 s, the benchmark recipe's]" in line["--window-stride"]
    assert "window length" not in line["--window-stride"]  # the field's own default is replaced
    assert "[default: 0]" in line["--warmup-epochs"]  # a field the recipe leaves keeps its own
    plain = CliRunner().invoke(app, ["train", "supervised", "--help"], env={"COLUMNS": "400"}).output
    assert "recipe's]" not in plain and "[default: 30]" in plain
