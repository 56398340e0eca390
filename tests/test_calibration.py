"""Calibration: ECE, Brier, reliability data, temperature scaling, and their place in a run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ecgcli import SUPERCLASSES
from ecgcli.errors import ConfigError
from ecgcli.scoring.calibration import (
    apply_temperature,
    brier_score,
    calibration_report,
    expected_calibration_error,
    fit_temperature,
    reliability,
)


def test_ece_and_brier_by_hand() -> None:
    # class 0: bin [0.2, 0.267) holds 0.2, 0.2 (1 of 2 positive); bin [0.8, 0.867) holds 0.8, 0.8 (2 of 2)
    p = np.array([[0.2, 0.5], [0.2, 0.5], [0.8, 0.5], [0.8, 0.5]])
    y = np.array([[1, 1], [0, 1], [1, 0], [1, 0]])
    ece = expected_calibration_error(y, p)
    assert ece[0] == pytest.approx(0.5 * 0.3 + 0.5 * 0.2)  # |0.5-0.2| and |1.0-0.8|, half the records each
    assert ece[1] == pytest.approx(0.0)  # all at 0.5, half positive
    np.testing.assert_allclose(brier_score(y, p), [(0.64 + 0.04 + 0.04 + 0.04) / 4, 0.25])
    count, conf, frac = reliability(y, p)
    assert count.shape == (2, 15) and count[0].sum() == 4 and count[0, 3] == 2 and count[0, 12] == 2
    assert np.isnan(conf[0, 0]) and frac[0, 12] == 1.0
    report = calibration_report(y, p, ["A", "B"])
    assert report["n_bins"] == 15 and report["macro_ece"] == pytest.approx(0.125)
    assert report["reliability"]["A"]["mean_probability"][0] is None
    json.dumps(report)  # JSON-ready: no NaN


def test_calibrated_probabilities_have_small_ece_and_overconfident_ones_do_not() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, (20_000, 3))
    y = (rng.uniform(0, 1, p.shape) < p).astype(float)
    assert expected_calibration_error(y, p).max() < 0.02
    z = np.log(p / (1 - p))
    overconfident = 1 / (1 + np.exp(-3 * z))
    assert expected_calibration_error(y, overconfident).min() > 0.08


def test_temperature_fit_recovers_the_true_temperature_and_lowers_ece() -> None:
    rng = np.random.default_rng(1)
    true_t = np.array([0.5, 2.0, 4.0, 1.0])
    z = rng.normal(0, 3, (30_000, 2, 4))  # two windows per record
    p_true = apply_temperature(z, true_t)
    y = (rng.uniform(0, 1, p_true.shape) < p_true).astype(float)
    t = fit_temperature(z, y)
    np.testing.assert_allclose(t, true_t, rtol=0.08)
    before = expected_calibration_error(y, apply_temperature(z, 1.0))
    after = expected_calibration_error(y, apply_temperature(z, t))
    assert (after[:3] < before[:3] / 2).all() and after.max() < 0.02
    # a class with only negatives has nothing to fit: T stays 1
    y[:, 3] = 0
    assert fit_temperature(z, y)[3] == 1.0


def test_run_with_temperature_scaling(train_kwargs: dict, one_torch_thread) -> None:
    """metrics.json has the test calibration before and after; the checkpoint carries the
    temperature and predict applies it (its probabilities are the run's calibrated ones)."""
    from ecgcli.inference.predict import Predictor
    from ecgcli.train.config import SupervisedConfig
    from ecgcli.train.supervised import train_classifier

    cfg = SupervisedConfig(**{**train_kwargs, "epochs": 1, "calibrate": "temperature"})
    result = train_classifier(cfg)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    cal = metrics["calibration"]
    assert cal["method"] == "temperature" and set(cal["temperature"]) == set(SUPERCLASSES)
    for key in ("test", "test_uncalibrated"):
        assert set(cal[key]["ece"]) == set(SUPERCLASSES) and cal[key]["n_bins"] == 15
    # fitted on fold 9 to minimise NLL, so on fold 9 it cannot be worse than T = 1
    side = json.loads((result.run_dir / "model.json").read_text())
    assert side["temperature"] == [cal["temperature"][c] for c in SUPERCLASSES]
    predictor = Predictor.from_checkpoint(result.run_dir)
    np.testing.assert_allclose(predictor.temperature, side["temperature"])
    with pytest.raises(ConfigError, match="--calibrate must be temperature"):
        train_classifier(SupervisedConfig(**{**train_kwargs, "calibrate": "platt"}))


def test_run_without_calibration_still_reports_it(train_kwargs: dict, one_torch_thread) -> None:
    from ecgcli.train.config import SupervisedConfig
    from ecgcli.train.supervised import train_classifier

    result = train_classifier(SupervisedConfig(**{**train_kwargs, "epochs": 1}))
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["calibration"]["method"] is None
    assert 0 <= metrics["calibration"]["test"]["macro_ece"] <= 1
    assert "temperature" not in json.loads((result.run_dir / "model.json").read_text())
    assert Path(result.run_dir / "predictions.npz").is_file()
