"""The baselines a pretrained encoder must beat: probe:random, finetune:random and the
handcrafted-feature models, as grid configurations paired by seed; and the feature extractor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgcli import LEADS
from ecgcli.cli.app import app
from ecgcli.data.features import (
    extract_features,
    feature_names,
    rhythm_features,
    wavedec,
)
from ecgcli.errors import ConfigError
from ecgcli.experiments.grid import Cell, build_grid
from ecgcli.experiments.results import load_results, results_path
from ecgcli.experiments.runner import run_multiseed
from ecgcli.experiments.spec import parse_spec

runner = CliRunner()


def common(train_kwargs: dict[str, Any], **over: Any) -> dict[str, Any]:
    keys = ("data_root", "cache_dir", "device", "workers", "epochs", "batch_size")
    return {**{k: train_kwargs[k] for k in keys}, **over}


# --- grammar ------------------------------------------------------------------------------


def test_random_and_features_specs_parse() -> None:
    p = parse_spec("probe:random")
    assert (p.kind, p.name, p.checkpoint, p.slug) == ("probe", "probe:random", None, "probe_random")
    f = parse_spec(" finetune:random[encoder_lr=1e-4] ")
    assert (f.kind, f.name, f.checkpoint, f.overrides) == (
        "finetune",
        "finetune:random[encoder_lr=1e-4]",
        None,
        (("encoder_lr", "1e-4"),),
    )
    g = parse_spec("features:forest[forest_trees=50]")
    assert (g.kind, g.classifier, g.name) == ("features", "forest", "features:forest[forest_trees=50]")
    assert parse_spec("features:logreg").classifier == "logreg"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("probe:random=runs/x.safetensors", "takes no checkpoint"),
        ("finetune:random=", "takes no checkpoint"),
        ("features:svm", "features:logreg or features:forest"),
        ("features:", "features:logreg or features:forest"),
        ("probe:", "or probe:random"),
    ],
)
def test_malformed_baseline_specs_are_one_line(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        parse_spec(spec)
    assert "\n" not in str(err.value)


def test_features_keys_are_checked(train_kwargs: dict, tmp_path: Path) -> None:
    def grid(config: str) -> Any:
        return build_grid([config], (42,), (1.0,), common(train_kwargs), [], tmp_path)

    with pytest.raises(ConfigError, match="does not apply to a handcrafted-feature baseline"):
        grid("features:logreg[epochs=3]")
    with pytest.raises(ConfigError, match="logreg_c=.x. is not a valid float"):
        grid("features:logreg[logreg_c=x]")
    with pytest.raises(ConfigError, match="logreg_c must be positive"):
        grid("features:logreg[logreg_c=0]")
    g = build_grid(
        ["features:logreg[logreg_c=0.5]", "probe:random", "finetune:random"],
        (42,),
        (1.0,),
        common(train_kwargs, encoder_lr=1e-4, epochs=3),
        ["width=16", "lr=0.01"],
        tmp_path,
    )
    feats, probe, ft = (g.cell_config(Cell(s, 1.0, 42)).to_dict() for s in g.configs)
    # network options do not reach the feature run; the probe and fine-tune get the run's
    assert feats["logreg_c"] == 0.5 and feats["classifier"] == "logreg"
    assert not {"epochs", "lr", "width", "encoder_lr", "loss"} & set(feats)
    assert probe["freeze_encoder"] and probe["ssl_checkpoint"] is None and probe["encoder_lr"] is None
    assert (probe["width"], probe["lr"], probe["epochs"], probe["loss"]) == (16, 0.01, 3, "focal")
    assert not ft["freeze_encoder"] and ft["encoder_lr"] == 1e-4 and ft["ssl_checkpoint"] is None
    assert ft["balance_strategy"] == "oversample" and ft["width"] == 16


def test_cli_refuses_a_checkpoint_named_random(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["multiseed", "--config", "probe:random=x.safetensors", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "takes no checkpoint" in result.output and "Traceback" not in result.output


# --- the feature extractor ----------------------------------------------------------------


def _pulses(rate_bpm: np.ndarray, fs: int = 100, seconds: float = 10.0) -> np.ndarray:
    """12-lead records of narrow Gaussian "R waves" at the given rates, plus a slow T-ish wave
    and noise: (N, 12, T)."""
    t = np.arange(int(fs * seconds)) / fs
    rng = np.random.default_rng(0)
    out = []
    for rate in rate_bpm:
        beats = np.arange(0.3, seconds, 60.0 / rate)
        r = np.exp(-0.5 * ((t[None, :] - beats[:, None]) / 0.012) ** 2).sum(0)
        tw = 0.3 * np.exp(-0.5 * ((t[None, :] - beats[:, None] - 0.25) / 0.05) ** 2).sum(0)
        gains = rng.uniform(-1.5, 1.5, (12, 1))
        out.append(gains * (r + tw)[None, :] + rng.normal(0, 0.02, (12, len(t))))
    return np.stack(out).astype(np.float32)


def test_heart_rate_of_pulse_trains_within_two_bpm() -> None:
    rates = np.array([45.0, 60.0, 75.0, 100.0, 140.0])
    hr = rhythm_features(_pulses(rates).astype(np.float64), 100)[:, 0]
    assert np.all(np.abs(hr - rates) < 2.0), hr


def test_heart_rate_of_simulated_ecgs_within_three_bpm() -> None:
    from ecgcli.data import ecgsim

    rng = np.random.default_rng(3)
    beats = [ecgsim.normal_beat(rng) for _ in range(12)]
    x = np.stack([ecgsim.simulate(b, 100, 1000, rng)[0] for b in beats])
    hr = rhythm_features(x.astype(np.float64), 100)[:, 0]
    assert np.all(np.abs(hr - np.array([b.heart_rate for b in beats])) < 3.0)


def test_features_are_deterministic_and_shaped_as_documented() -> None:
    x = _pulses(np.array([60.0, 90.0, 120.0]))
    f1, f2 = extract_features(x, 100), extract_features(x.copy(), 100)
    names = feature_names(LEADS, 100)
    # 12 statistics + 5 DWT levels x 2 + 1 approximation per lead, then 7 rhythm features
    assert f1.shape == (3, len(names)) == (3, 12 * (12 + 2 * 5 + 1) + 7)
    assert np.array_equal(f1, f2)
    assert len(feature_names(LEADS, 500)) == 12 * (12 + 2 * 7 + 1) + 7  # 7 levels at 500 Hz
    # a flat record: statistics 0, rhythm unknown (NaN, imputed by the classifier), no warning
    flat = extract_features(np.zeros((1, 12, 1000), np.float32), 100)
    assert np.isnan(flat[0, -7:-1]).all() and flat[0, -1] == 0
    assert np.isfinite(flat[0, :-7]).all()
    # column names line up with values: lead II's maximum is its largest sample
    assert f1[1, names.index("II_max")] == pytest.approx(x[1, 1].max(), rel=1e-6)


def test_dwt_is_orthonormal() -> None:
    z = np.random.default_rng(1).normal(size=(3, 2, 1024))
    coeffs = wavedec(z, 5)
    assert [c.shape[-1] for c in coeffs] == [32, 32, 64, 128, 256, 512]
    assert sum((c**2).sum() for c in coeffs) == pytest.approx((z**2).sum(), rel=1e-10)


# --- a paired grid of baselines -----------------------------------------------------------


def test_baselines_in_a_multiseed_grid_are_paired_by_seed(
    train_kwargs: dict, tmp_path: Path, one_torch_thread: None
) -> None:
    out = tmp_path / "grid"
    grid = build_grid(
        ["focal+oversample", "probe:random", "finetune:random", "features:logreg"],
        (42, 52),
        (1.0,),
        common(train_kwargs, epochs=1, encoder_lr=1e-4),
        ["width=8"],
        out,
    )
    doc = run_multiseed(grid)
    assert doc["complete"] and doc == load_results(results_path(out))
    by_name = {r["config"]: r for r in doc["results"]}
    assert set(by_name) == {"focal+oversample", "probe:random", "finetune:random", "features:logreg"}
    assert {r["config"]: r["kind"] for r in doc["results"]}["features:logreg"] == "features"
    for r in doc["results"]:
        assert sorted(run["seed"] for run in r["runs"]) == [42, 52]
    comps = {c["config"]: c for c in doc["comparisons"]}
    assert set(comps) == {"probe:random", "finetune:random", "features:logreg"}
    assert all(c["seeds"] == [42, 52] and c["n_pairs"] == 2 for c in comps.values())
    # the same labelled records per seed: the run directories report the same training set
    for seed in (42, 52):
        n_train = {
            name: json.loads(
                (
                    out / r["runs"][[x["seed"] for x in r["runs"]].index(seed)]["run_dir"] / "metrics.json"
                ).read_text()
            )["data"]["n_train"]
            for name, r in by_name.items()
        }
        assert len(set(n_train.values())) == 1
    probe = json.loads((out / "probe_random/lf1/seed42/config.json").read_text())
    assert probe["freeze_encoder"] and probe["ssl_checkpoint"] is None and probe["width"] == 8
    ft = json.loads((out / "finetune_random/lf1/seed42/config.json").read_text())
    assert ft["encoder_lr"] == 1e-4 and not ft["freeze_encoder"]
    # the handcrafted baseline learns the synthetic labels well above chance, paired or not
    feats = by_name["features:logreg"]["summary"]["test"]["auroc"]
    assert feats["mean"] > 0.75, feats
    metrics = json.loads((out / "features_logreg/lf1/seed42/metrics.json").read_text())
    assert metrics["kind"] == "features" and len(metrics["history"]) == 3  # C chosen on fold 9
    # rerunning reuses every finished run, the feature runs included
    again = run_multiseed(grid)
    assert [r["runs"] for r in again["results"]] == [r["runs"] for r in doc["results"]]
    # a feature run killed before its metrics.json (model and predictions written) starts again
    cell = out / "features_logreg/lf1/seed52"
    (cell / "metrics.json").unlink()
    redo = run_multiseed(grid)
    assert (cell / "metrics.json").is_file()
    assert {r["config"]: r["summary"]["test"]["auroc"]["mean"] for r in redo["results"]} == {
        r["config"]: r["summary"]["test"]["auroc"]["mean"] for r in doc["results"]
    }


def test_forest_baseline_writes_an_ordinary_run(
    synth_root: Path, session_cache: Path, tmp_path: Path
) -> None:
    from ecgcli.experiments.inputs import read_run
    from ecgcli.storage.checkpoint import load_tensors
    from ecgcli.train.config import FeaturesConfig
    from ecgcli.train.features import train_features

    cfg = FeaturesConfig(
        data_root=str(synth_root),
        cache_dir=str(session_cache),
        runs_dir=str(tmp_path),
        label_fraction=1.0,
        classifier="forest",
        forest_trees=20,
    )
    result = train_features(cfg)
    assert result.run_dir == tmp_path / "features-forest-s42"
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert [h["params"]["min_leaf"] for h in metrics["history"]] == [1, 5]  # chosen on fold 9
    assert metrics["test_tuned"]["macro_auroc"] > 0.7
    tensors, meta = load_tensors(result.checkpoint)
    assert meta["kind"] == "features" and meta["classifier"] == "forest"
    assert (
        len(tensors["tree_offsets"]) == 21 and len(meta["feature_names"]) == tensors["impute_median"].shape[0]
    )
    _, method = read_run(result.run_dir)  # ecg compare reads it as the method features:forest
    assert (method.name, method.kind) == ("features:forest", "features")


def test_train_supervised_flags_make_the_random_baselines(
    synth_root: Path, session_cache: Path, tmp_path: Path, one_torch_thread: None
) -> None:
    from ecgcli.experiments.inputs import method_name

    res = runner.invoke(app, ["train", "supervised", "--freeze-encoder", "--encoder-lr", "1e-4"])
    assert res.exit_code == 2 and "--freeze-encoder and --encoder-lr exclude each other" in res.output
    args = ["--data-root", str(synth_root), "--device", "cpu", "--epochs", "1", "--width", "8"]
    env = {"ECG_CACHE_DIR": str(session_cache), "ECG_RUNS_DIR": str(tmp_path)}
    res = runner.invoke(
        app, ["train", "supervised", "--freeze-encoder", *args, "--label-fraction", "1"], env=env
    )
    assert res.exit_code == 0, res.output
    config = json.loads((tmp_path / "supervised-focal-oversample-frozen-s42" / "config.json").read_text())
    assert config["freeze_encoder"] and config["ssl_checkpoint"] is None
    assert method_name(config) == ("probe:random", "probe")
    assert method_name({**config, "freeze_encoder": False, "encoder_lr": 1e-4}) == (
        "finetune:random",
        "finetune",
    )


def test_a_random_probe_normalises_with_the_statistics_of_its_training_records() -> None:
    import torch

    from ecgcli.models import build_encoder
    from ecgcli.train.supervised import refit_batchnorm

    torch.manual_seed(0)
    encoder = build_encoder("cnn1d", in_ch=12, width=4)
    x = 3.0 + 2.0 * torch.randn(40, 12, 300)
    assert refit_batchnorm(encoder, x, window=200, batch_size=16) == 6
    first_conv, first_bn = encoder.features[0], encoder.features[1]
    with torch.no_grad():
        h = first_conv(x[..., :200])
    # the cumulative average of the batch means, batches of 16, 16 and 8 records, weighted 1:1:1
    means = torch.stack([h[i : i + 16].mean(dim=(0, 2)) for i in (0, 16, 32)]).mean(0)
    assert torch.allclose(first_bn.running_mean, means, atol=1e-5)
    assert first_bn.momentum == 0.1 and encoder.training  # put back as it was
