"""`ecg train ssl` and `ecg finetune` end to end on the session's synthetic PTB-XL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ecgcli.cli.app import app
from ecgcli.errors import ConfigError, Interrupted
from ecgcli.events import EpochDone, EpochStarted
from ecgcli.storage.checkpoint import load_classifier, load_encoder
from ecgcli.train.config import SSLConfig, SupervisedConfig
from ecgcli.train.ssl import resume_ssl, train_ssl
from ecgcli.train.supervised import train_classifier

runner = CliRunner()


@pytest.fixture()
def ssl_kwargs(train_kwargs: dict) -> dict:
    """The tiny supervised run's settings (conftest), with SSL's batch, heads and probe."""
    common = {k: v for k, v in train_kwargs.items() if k != "label_fraction"}
    return {**common, "batch_size": 64, "hidden_dim": 64, "projection_dim": 32, "probe_fraction": 1.0}


@pytest.fixture(scope="module")
def simclr_checkpoint(synth_root: Path, session_cache: Path, tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("ssl-runs")
    cfg = SSLConfig(
        data_root=str(synth_root),
        cache_dir=str(session_cache),
        runs_dir=str(runs),
        device="cpu",
        workers=1,
        epochs=2,
        batch_size=64,
        width=16,
        hidden_dim=64,
        projection_dim=32,
        probe_fraction=1.0,
        no_aug=["mixup"],
        save_every=1,
    )
    run_dir = train_ssl(cfg).run_dir
    return run_dir / "model.safetensors"


def test_simclr_writes_an_encoder_checkpoint_with_its_recipe(simclr_checkpoint: Path) -> None:
    encoder, meta = load_encoder(simclr_checkpoint)
    assert meta["kind"] == "encoder" and meta["ssl"]["method"] == "simclr"
    assert meta["augmentations"]["mixup"]["p"] == 0.0  # --no-aug mixup is recorded
    assert "mixup" not in meta["augmentations_enabled"] and "bandpass" in meta["augmentations_enabled"]
    assert len(meta["normalisation"]["mean"]) == 12 and meta["sampling_rate"] == 100
    assert encoder(torch.randn(2, 12, 1000)).shape == (2, 64)
    metrics = json.loads((simclr_checkpoint.parent / "metrics.json").read_text())
    hist = metrics["history"]
    assert len(hist) == 2 and all("probe_auroc" in h for h in hist)
    assert all(0.0 <= h["augment_share"] < 1.0 for h in hist)
    assert metrics["data"]["n_pretrain"] > metrics["data"]["n_probe_train"]  # unlabelled used too
    assert set(metrics["probe_at_init"]) == {"probe_auroc", "probe_f1"}  # the random-init bar


def test_save_every_keeps_each_epochs_encoder(simclr_checkpoint: Path) -> None:
    from safetensors.torch import load_file

    kept = sorted((simclr_checkpoint.parent / "checkpoints").glob("*.safetensors"))
    assert [p.name for p in kept] == ["epoch-001.safetensors", "epoch-002.safetensors"]
    final = load_file(simclr_checkpoint)
    last, first = load_file(kept[1]), load_file(kept[0])
    assert all(torch.equal(final[k], last[k]) for k in final)  # the last kept one is the final encoder
    assert not all(torch.equal(final[k], first[k]) for k in final)
    _, meta = load_encoder(kept[0])
    assert meta["ssl"]["epochs"] == 1 and meta["metrics"]["probe_auroc"] is not None


def test_byol_pretrains(ssl_kwargs: dict) -> None:
    events: list = []
    metrics = train_ssl(
        SSLConfig(**{**ssl_kwargs, "method": "byol", "epochs": 1, "probe_every": 0}), events.append
    ).metrics
    assert metrics["final_probe"] is None  # --probe-every 0: never probed
    loss = [e for e in events if isinstance(e, EpochDone)][0].train_loss
    assert 0.0 <= loss <= 8.0  # BYOL's symmetric loss lies in [0, 8]


def test_ssl_resume_matches_uninterrupted(ssl_kwargs: dict) -> None:
    kwargs = {**ssl_kwargs, "probe_every": 0}
    full = train_ssl(SSLConfig(**kwargs, name="full")).metrics

    def stop(event: object) -> None:
        if isinstance(event, EpochStarted) and event.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="ecg train ssl --resume"):
        train_ssl(SSLConfig(**kwargs, name="cut"), stop)
    resumed = resume_ssl(Path(kwargs["runs_dir"]) / "cut").metrics
    for a, b in zip(full["history"], resumed["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "moco"}, "unknown method 'moco'"),
        ({"temperature": 0.0}, "--temperature must be positive"),
        ({"momentum_tau": 1.5}, r"--momentum-tau must be in \[0, 1\]"),
        ({"batch_size": 1}, "--batch-size must be at least 2"),
        ({"no_aug": ["rotate"]}, "unknown augmentation 'rotate'"),
        ({"save_every": -1}, "--save-every must be 0"),
    ],
)
def test_bad_ssl_options(ssl_kwargs: dict, change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SSLConfig(**{**ssl_kwargs, **change}).check()


def test_cli_bad_ssl_options_are_one_line(synth_root: Path) -> None:
    for args in (
        ["--method", "moco"],
        ["--temperature", "-1"],
        ["--momentum-tau", "2"],
        ["--batch-size", "1"],
    ):
        result = runner.invoke(app, ["train", "ssl", "--data-root", str(synth_root), *args])
        assert result.exit_code == 2, args
        assert len([ln for ln in result.output.splitlines() if ln.strip()]) == 1
        assert "Traceback" not in result.output


def test_finetune_full_and_frozen(simclr_checkpoint: Path, train_kwargs: dict) -> None:
    base = {**train_kwargs, "width": None, "epochs": 1, "ssl_checkpoint": str(simclr_checkpoint)}
    full = train_classifier(SupervisedConfig(**base, name="ft", encoder_lr=1e-4))
    frozen = train_classifier(SupervisedConfig(**base, name="probe", freeze_encoder=True))
    assert full.metrics["kind"] == "finetune"
    encoder, _ = load_encoder(simclr_checkpoint)
    probe_model, meta = load_classifier(frozen.checkpoint)
    for k, v in encoder.state_dict().items():  # a linear probe leaves the encoder untouched
        assert torch.equal(probe_model.encoder.state_dict()[k], v), k
    ft_model, _ = load_classifier(full.checkpoint)
    changed = any(
        not torch.equal(ft_model.encoder.state_dict()[k], v) for k, v in encoder.state_dict().items()
    )
    assert changed  # full fine-tuning moves the encoder
    assert meta["pretrained"]["method"] == "simclr"
    # the encoder's pretraining normalisation is kept
    assert meta["normalisation"] == load_encoder(simclr_checkpoint)[1]["normalisation"]


def test_finetune_refuses_mismatched_or_wrong_checkpoints(
    simclr_checkpoint: Path, train_kwargs: dict, tmp_path: Path
) -> None:
    def cli(*args: str):
        return runner.invoke(
            app,
            ["finetune", "--data-root", train_kwargs["data_root"], "--run-dir", str(tmp_path / "r"), *args],
        )

    result = cli("--ssl-checkpoint", str(simclr_checkpoint), "--width", "64")
    assert result.exit_code == 2 and "has width 16, the run asks for --width 64" in result.output
    result = cli("--ssl-checkpoint", str(tmp_path / "missing.safetensors"))
    assert result.exit_code == 2 and "checkpoint not found" in result.output
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"not a checkpoint")
    (broken / "model.json").write_text(simclr_checkpoint.with_suffix(".json").read_text())
    result = cli("--ssl-checkpoint", str(broken / "model.safetensors"))
    assert result.exit_code == 2 and "corrupt" in result.output
    sup = train_classifier(SupervisedConfig(**{**train_kwargs, "epochs": 1, "name": "sup"}))
    result = cli("--ssl-checkpoint", str(sup.checkpoint))
    assert result.exit_code == 2 and "not an encoder" in result.output
    meta = json.loads(simclr_checkpoint.with_suffix(".json").read_text())
    meta["architecture"]["encoder_args"]["in_ch"] = 8
    other = tmp_path / "eight"
    other.mkdir()
    (other / "model.safetensors").write_bytes(simclr_checkpoint.read_bytes())
    (other / "model.json").write_text(json.dumps(meta))
    result = cli("--ssl-checkpoint", str(other / "model.safetensors"))
    assert (
        result.exit_code == 2 and "the encoder takes 8 input leads but its sidecar lists 12" in result.output
    )
    assert not (tmp_path / "r").exists()  # refused before any run directory was made
