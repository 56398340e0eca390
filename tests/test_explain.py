"""``ecg explain`` and :mod:`ecgcli.inference.explain`: attribution sanity checks, the figure, bad input."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import train_tiny, untrained_checkpoint
from scipy.stats import spearmanr
from typer.testing import CliRunner

from ecgcli import LEADS
from ecgcli.cli.app import app
from ecgcli.data.records import prepare_record, resolve_records
from ecgcli.data.synth import write_record
from ecgcli.errors import ConfigError, RecordError
from ecgcli.inference.explain import attribute_windows, explain_record, to_timeline
from ecgcli.inference.predict import Predictor

runner = CliRunner()
N_RECORDS = 16


@pytest.fixture(scope="module")
def trained(synth_root: Path, session_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three epochs of `train supervised` (width 16) on the session's synthetic set."""
    return train_tiny(synth_root, session_cache, tmp_path_factory.mktemp("runs"), epochs=3).checkpoint


@pytest.fixture(scope="module")
def predictor(trained: Path) -> Predictor:
    return Predictor.from_checkpoint(trained)


@pytest.fixture(scope="module")
def windows(synth_root: Path) -> np.ndarray:
    """One 10 s window of each of the first records of the synthetic set, (N, 12, 1000) mV."""
    stems = resolve_records([synth_root / "records100"])[:N_RECORDS]
    return np.stack([prepare_record(s, 100, 1000).windows[0] for s in stems])


def _top_class_attr(pred: Predictor, model: torch.nn.Module, w: np.ndarray, method: str) -> np.ndarray:
    """Attribution (N, 12, T) of each record's top class under ``model``."""
    top = pred.score_windows(w.copy(), np.ones(len(w), dtype=int)).argmax(axis=1)
    return np.stack(
        [
            attribute_windows(model, pred.norm.mean, pred.norm.std, w[i : i + 1], [int(top[i])], method)[0][
                0, 0
            ]
            for i in range(len(w))
        ]
    )


@pytest.mark.parametrize("method", ["ig", "gradxinput"])
def test_model_randomisation_changes_attributions(
    predictor: Predictor, windows: np.ndarray, method: str, one_torch_thread
) -> None:
    """Adebayo et al. 2018: re-initialising every weight must change the explanation; an
    attribution that survives it describes the input, not the model. The signed attributions
    of the trained and the randomised model are rank-uncorrelated (Spearman |rho| < 0.2 on
    average). (Their absolute values stay correlated, rho ~0.6 here: both methods multiply by
    the input, the known weakness of gradient x input the paper reports.)"""
    random = copy.deepcopy(predictor.model)
    torch.manual_seed(123)
    for m in random.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    a_trained = _top_class_attr(predictor, predictor.model, windows, method)
    a_random = _top_class_attr(predictor, random, windows, method)
    rho = np.array([spearmanr(a.ravel(), b.ravel())[0] for a, b in zip(a_trained, a_random, strict=True)])
    assert abs(rho.mean()) < 0.2, rho
    # the check can fail: the same model twice gives identical attributions
    again = _top_class_attr(predictor, predictor.model, windows[:2], method)
    assert spearmanr(again[0].ravel(), a_trained[0].ravel())[0] > 0.999


@pytest.mark.parametrize("method", ["ig", "gradxinput"])
def test_deleting_most_attributed_samples_lowers_probability_more_than_random(
    predictor: Predictor, windows: np.ndarray, method: str, one_torch_thread
) -> None:
    """The deletion test: setting the 10% most positively attributed samples (over leads and
    time) to the 0 mV baseline lowers the top class's probability more, on average over
    records, than deleting 10% of the samples at random (mean of 5 random draws), and does so
    for most records."""
    n, ones = len(windows), np.ones(len(windows), dtype=int)
    probs = predictor.score_windows(windows.copy(), ones)
    top = probs.argmax(axis=1)
    attr = _top_class_attr(predictor, predictor.model, windows, method).reshape(n, -1)
    k = attr.shape[1] // 10

    def drop(delete: np.ndarray) -> np.ndarray:
        x = windows.reshape(n, -1).copy()
        np.put_along_axis(x, delete, 0.0, axis=1)
        after = predictor.score_windows(x.reshape(windows.shape), ones)
        return probs[np.arange(n), top] - after[np.arange(n), top]

    targeted = drop(np.argsort(-attr, axis=1)[:, :k])
    rng = np.random.default_rng(0)
    random = np.mean([drop(np.argsort(rng.random(attr.shape), axis=1)[:, :k]) for _ in range(5)], axis=0)
    # a margin, not just ">": here targeted deletion costs ~10x what random deletion does
    assert targeted.mean() > 0 and targeted.mean() > 3 * random.mean(), (targeted.mean(), random.mean())
    assert (targeted > random).mean() >= 0.75, (targeted, random)


def test_integrated_gradients_complete_and_match_the_prediction(
    predictor: Predictor, synth_root: Path, one_torch_thread
) -> None:
    """IG's lead totals add up to logit(x) - logit(0 mV) (completeness, to the Riemann error);
    the probabilities are exactly those `ecg predict` gives."""
    stem = resolve_records([synth_root / "records100"])[0]
    expl = explain_record(predictor, stem, method="ig", steps=64)
    assert expl.classes  # above threshold, or the top class
    for c in expl.classes:
        total = sum(expl.lead_totals(c).values())
        gap = expl.logits[c] - expl.baseline_logits[c]
        assert total == pytest.approx(gap, rel=0.03, abs=0.01)
        assert expl.attributions[c].shape == (12, 1000) == expl.signal.shape
    assert expl.probabilities == predictor.predict_one(stem).probabilities


def test_to_timeline_averages_overlapping_windows() -> None:
    """Two windows of 4 samples on a 6-sample record (starts 0 and 2) overlap on samples 2-3."""
    per_window = np.zeros((2, 12, 4), dtype=np.float32)
    per_window[0] = 1.0
    per_window[1] = 3.0
    out = to_timeline(per_window, np.array([0, 2]), 6)
    assert out.shape == (12, 6)
    np.testing.assert_allclose(out[5], [1, 1, 2, 2, 3, 3])


def test_cli_writes_png_and_json(trained: Path, synth_root: Path, tmp_path: Path, one_torch_thread) -> None:
    stem = resolve_records([synth_root / "records100"])[0]
    fig = tmp_path / "fig.png"
    result = runner.invoke(
        app,
        [
            "explain",
            str(stem),
            "-c",
            str(trained),
            "--out",
            str(fig),
            "--class",
            "MI",
            "--json",
            "--steps",
            "8",
        ],
    )
    assert result.exit_code == 0, result.output
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and fig.stat().st_size > 20_000
    doc = json.loads(result.stdout)
    assert list(doc["classes"]) == ["MI"] and doc["steps"] == 8 and doc["figure"] == str(fig)
    assert set(doc["classes"]["MI"]["lead_totals"]) == set(LEADS)
    assert sum(doc["classes"]["MI"]["lead_share"].values()) == pytest.approx(1.0)
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]  # no temporary left behind


def test_long_resampled_record_is_attributed_over_its_whole_length(
    predictor: Predictor, tmp_path: Path, one_torch_thread
) -> None:
    """25 s at 500 Hz: resampled to 100 Hz, three windows (the last end-aligned, overlapping
    the second), an attribution for every sample, and the figure shows the first 10 s."""
    from ecgcli.inference.ecgpaper import draw_explanation, figure_note
    from ecgcli.inference.export import ecg_like_windows

    x = ecg_like_windows(1, 500, 12_500, seed=3)[0]
    write_record(tmp_path / "long", np.round(x.T * 1000).astype(np.int16), list(LEADS), 500)
    expl = explain_record(predictor, tmp_path / "long", class_name="NORM", method="gradxinput")
    assert expl.signal.shape == (12, 2500) and expl.attributions["NORM"].shape == (12, 2500)
    assert expl.window_totals["NORM"].shape == (3, 12)
    assert (
        np.isfinite(expl.attributions["NORM"]).all() and np.abs(expl.attributions["NORM"][:, -100:]).sum() > 0
    )
    out = draw_explanation(expl, tmp_path / "long.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert figure_note(expl) == (
        "long is 25 s long; the figure draws only its first 10 s (0-10 s); the probability in its "
        "title and the lead totals are for the whole record, as ecg predict scores it"
    )


def test_cli_says_when_the_figure_shows_only_part_of_a_long_record(
    trained: Path, synth_root: Path, tmp_path: Path, one_torch_thread
) -> None:
    from ecgcli.inference.export import ecg_like_windows

    x = ecg_like_windows(1, 100, 2_500, seed=3)[0]
    write_record(tmp_path / "long", np.round(x.T * 1000).astype(np.int16), list(LEADS), 100)
    short = resolve_records([synth_root / "records100"])[0]
    for stem in (tmp_path / "long", short):  # 25 s, and a 10 s record that fits the figure
        args = ["explain", str(stem), "-c", str(trained), "--method", "gradxinput", "--json"]
        result = runner.invoke(app, [*args, "--out", str(tmp_path / "fig.png")])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["figure_seconds"] == [0.0, 10.0]
        warned = [ln for ln in result.stderr.splitlines() if "figure draws only" in ln]
        if stem == short:
            assert warned == []
        else:
            assert warned == [
                "warning: long is 25 s long; the figure draws only its first 10 s (0-10 s); the "
                "probability in its title and the lead totals are for the whole record, as ecg "
                "predict scores it"
            ]


def _one_error_line(result, *expected: str) -> None:
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(e in lines[0] for e in expected), lines[0]
    assert "Traceback" not in result.output


def test_bad_inputs_one_line_nothing_written(trained: Path, synth_root: Path, tmp_path: Path) -> None:
    stem = resolve_records([synth_root / "records100"])[0]
    fig = tmp_path / "out" / "fig.png"
    short = tmp_path / "short"
    write_record(short, np.zeros((500, 12), dtype=np.int16), list(LEADS), 100)  # 5 s < 10 s window
    result = runner.invoke(app, ["explain", str(short), "-c", str(trained), "--out", str(fig)])
    _one_error_line(result, "5 s long", "too short to explain")
    result = runner.invoke(
        app, ["explain", str(stem), "-c", str(trained), "--out", str(fig), "--class", "AFIB"]
    )
    _one_error_line(result, "class 'AFIB' is not in this checkpoint", "NORM, MI, STTC, HYP, CD")
    assert not fig.exists() and not any(fig.parent.iterdir())
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = runner.invoke(app, ["explain", str(stem), "-c", str(trained), "--out", str(blocker / "fig.png")])
    _one_error_line(result, "cannot write --out folder")
    result = runner.invoke(app, ["explain", str(stem), "-c", str(trained)])
    _one_error_line(result, "pass --out FIG.png, --json, or both")


def test_core_errors(predictor: Predictor, synth_root: Path, tmp_path: Path) -> None:
    stem = resolve_records([synth_root / "records100"])[0]
    with pytest.raises(ConfigError, match="unknown attribution method"):
        explain_record(predictor, stem, method="lime")
    with pytest.raises(ConfigError, match="--steps must be at least 1"):
        explain_record(predictor, stem, steps=0)
    with pytest.raises(RecordError, match="no such record|not found"):
        explain_record(predictor, tmp_path / "nothing")


def test_without_matplotlib_one_line_says_what_to_install(
    trained: Path, synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stem = resolve_records([synth_root / "records100"])[0]
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    result = runner.invoke(app, ["explain", str(stem), "-c", str(trained), "--out", str(tmp_path / "f.png")])
    _one_error_line(result, 'pip install "ecgcli[plots]"')
    assert not (tmp_path / "f.png").exists()


def _untrained(path: Path) -> Path:
    """A small untrained classifier checkpoint: attributions need a model, not a good one."""
    return untrained_checkpoint(path)


def test_flat_leads_are_named_and_an_all_flat_record_is_refused(tmp_path: Path) -> None:
    """The same record rules as predict: an all-zero record has nothing to explain; a record
    with a lead off is explained with a warning naming it."""
    ckpt = _untrained(tmp_path / "ck" / "model.safetensors")
    pred = Predictor.from_checkpoint(ckpt)
    zero = tmp_path / "zero"
    write_record(zero, np.zeros((1000, 12), dtype=np.int16), list(LEADS), 100)
    with pytest.raises(RecordError, match="every lead is flat"):
        explain_record(pred, zero, method="gradxinput")
    result = runner.invoke(app, ["explain", str(zero), "-c", str(ckpt), "--json"])
    assert result.exit_code == 2 and "every lead is flat" in json.loads(result.stdout)["error"]

    t = np.arange(1000) / 100
    digital = np.round(1000 * np.sin(2 * np.pi * 1.2 * t)[:, None] * np.linspace(0.5, 1.5, 12)).astype(
        np.int16
    )
    digital[:, LEADS.index("V4")] = 0
    write_record(tmp_path / "v4off", digital, list(LEADS), 100)
    expl = explain_record(pred, tmp_path / "v4off", method="gradxinput")
    assert any("flat" in w and "V4" in w for w in expl.warnings), expl.warnings
