"""`ecg ablate augmentations` end to end on the session's synthetic PTB-XL (tiny settings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecgcli.cli.app import app
from ecgcli.errors import ConfigError
from ecgcli.experiments.ablation import parse_augmentations, parse_ssl_sets

runner = CliRunner()


def _args(synth_root: Path, out: Path) -> list[str]:
    return [
        "ablate",
        "augmentations",
        "--data-root",
        str(synth_root),
        "--device",
        "cpu",
        "--augmentations",
        "jitter,bandpass",
        "--seeds",
        "42,52",
        "--label-fraction",
        "1.0",
        "--ssl-epochs",
        "1",
        "--ssl-batch-size",
        "64",
        "--width",
        "16",
        "--ssl-set",
        "hidden_dim=32",
        "--ssl-set",
        "projection_dim=16",
        "--ssl-set",
        "probe_every=0",
        "--ssl-set",
        "signal_length=250",
        "--signal-length",
        "250",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--out",
        str(out),
    ]


def test_tiny_ablation_reports_each_augmentation_and_resumes(
    synth_root: Path, session_cache: Path, tmp_path: Path, one_torch_thread: None
) -> None:
    out = tmp_path / "ablation"
    env = {"ECG_CACHE_DIR": str(session_cache)}
    result = runner.invoke(app, _args(synth_root, out), env=env)
    assert result.exit_code == 0, result.output
    variants = ["all", "no-bandpass", "no-jitter", "none"]
    for v in variants:
        assert (out / "pretrain" / v / "metrics.json").is_file()
        assert (out / "pretrain" / v / "model.safetensors").is_file()
    enabled = {
        v: json.loads((out / "pretrain" / v / "metrics.json").read_text())["augmentations"] for v in variants
    }
    assert "jitter" in enabled["all"] and "jitter" not in enabled["no-jitter"]
    assert "bandpass" in enabled["no-jitter"] and "bandpass" not in enabled["no-bandpass"]
    assert enabled["none"] == []
    doc = json.loads((out / "finetune" / "multiseed.json").read_text())
    assert doc["complete"] and doc["cells"] == {"total": 8, "finished": 8}
    assert doc["grid"]["baseline"] == "finetune:all"
    report = json.loads((out / "ablation.json").read_text())
    effects = {e["augmentation"]: e for e in report["effects"]}
    assert set(effects) == {"jitter", "bandpass", "(all vs none)"}
    for e in effects.values():
        assert e["n_pairs"] == 2 and e["mean"] is not None and e["ci_low"] <= e["mean"] <= e["ci_high"]
    # the effect is all minus leave-one-out: the negated configuration-minus-baseline difference
    comp = {c["config"]: c for c in doc["comparisons"]}
    assert effects["jitter"]["mean"] == pytest.approx(
        -comp["finetune:no-jitter"]["tests"]["auroc"]["mean_diff"]
    )
    ranked = [e["mean"] for e in report["effects"][:2]]
    assert ranked == sorted(ranked, reverse=True)  # sorted by effect
    table = (out / "ablation.md").read_text()
    assert "| jitter | 2 |" in table and "| bandpass | 2 |" in table
    assert "jitter" in result.output and "bandpass" in result.output

    again = runner.invoke(app, _args(synth_root, out), env=env)
    assert again.exit_code == 0, again.output
    assert "pretraining " not in again.output and again.output.count("already pretrained") == 4
    assert "8 already finished, 0 to train" in again.output
    assert json.loads((out / "ablation.json").read_text())["effects"] == report["effects"]

    # a pretraining cut off after its saved epoch (no metrics.json) resumes; the fine-tunes stay
    (out / "pretrain" / "no-jitter" / "metrics.json").unlink()
    resumed = runner.invoke(app, _args(synth_root, out), env=env)
    assert resumed.exit_code == 0, resumed.output
    assert "resuming no-jitter" in resumed.output and resumed.output.count("already pretrained") == 3
    assert (out / "pretrain" / "no-jitter" / "metrics.json").is_file()
    assert "8 already finished, 0 to train" in resumed.output

    shown = runner.invoke(app, [*_args(synth_root, out), "--show"], env=env)
    assert shown.exit_code == 0 and "| jitter | 2 |" in shown.output and "already" not in shown.output

    changed = runner.invoke(app, [*_args(synth_root, out), "--ssl-set", "temperature=0.2"], env=env)
    assert changed.exit_code == 2 and "was pretrained with temperature=0.07" in changed.output


def test_bad_augmentation_names_are_one_line(synth_root: Path, tmp_path: Path) -> None:
    for args, message in (
        (["--augmentations", "rotate"], "unknown augmentation 'rotate'"),
        (["--ssl-set", "no_aug=jitter"], "no_aug cannot be set here"),
        (["--ssl-set", "bogus=1"], "unknown option 'bogus'"),
        (["--show"], "no fine-tuning has finished yet"),
    ):
        result = runner.invoke(
            app, ["ablate", "augmentations", "--data-root", str(synth_root), "--out", str(tmp_path), *args]
        )
        assert result.exit_code == 2, result.output
        lines = [ln for ln in result.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output


def test_parse_augmentations() -> None:
    assert parse_augmentations("time-warp,jitter") == ("time_warp", "jitter")  # the policy's order
    assert len(parse_augmentations(None)) == 9
    with pytest.raises(ConfigError, match="listed twice"):
        parse_augmentations("jitter,jitter")
    assert parse_ssl_sets(["temperature=0.2", "pretrain_data=a", "pretrain_data=b"]) == {
        "temperature": 0.2,
        "pretrain_data": ["a", "b"],
    }


def test_ctrl_c_during_pretraining_says_rerun(
    synth_root: Path, session_cache: Path, tmp_path: Path, one_torch_thread: None
) -> None:
    from ecgcli.errors import Interrupted
    from ecgcli.events import BatchDone
    from ecgcli.experiments.ablation import plan_ablation, run_ablation

    common = {"data_root": str(synth_root), "cache_dir": str(session_cache), "device": "cpu"}
    ssl = {**common, "epochs": 1, "batch_size": 64, "width": 16, "hidden_dim": 32, "projection_dim": 16}
    ssl["probe_every"] = 0
    plan = plan_ablation(("jitter",), (42, 52), 1.0, ssl, {**common, "epochs": 1}, tmp_path / "abl")

    def stop(event: object) -> None:
        if isinstance(getattr(event, "event", None), BatchDone):
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="interrupted while pretraining all; rerun the same"):
        run_ablation(plan, stop)
