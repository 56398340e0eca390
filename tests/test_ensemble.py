"""``ecg ensemble``: two tiny synthetic runs averaged; its scores are the scores of the mean of
the members' stored probabilities; its checkpoint predicts, explains and exports as the mean
of the members; mismatched members are refused in one line. One module-scoped pair of runs
(width 8, one epoch) keeps the file to seconds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import train_tiny
from typer.testing import CliRunner

from ecgcli.cli.app import app
from ecgcli.errors import ConfigError
from ecgcli.experiments.ensemble import build_ensemble
from ecgcli.scoring.stats import macro_auroc, paired_bootstrap_auroc

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()


@pytest.fixture(scope="module")
def runs(synth_root: Path, session_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    base = tmp_path_factory.mktemp("ens_runs")
    tiny = {"width": 8, "signal_length": 250}  # 2.5 s crops train 4x faster than whole records
    a = train_tiny(synth_root, session_cache, base, seed=1, name="a", **tiny).run_dir
    b = train_tiny(synth_root, session_cache, base, seed=2, name="b", calibrate="temperature", **tiny).run_dir
    return [Path(a), Path(b)]


@pytest.fixture(scope="module")
def ensemble_dir(runs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ens") / "ens"
    build_ensemble(runs, out, n_boot=50)
    return out


def _preds(run: Path) -> dict[str, np.ndarray]:
    with np.load(run / "predictions.npz") as npz:
        return {k: npz[k] for k in npz.files}


def test_scores_are_those_of_the_mean_probability(runs: list[Path], ensemble_dir: Path) -> None:
    a, b = _preds(runs[0]), _preds(runs[1])
    mean_test = (a["test_prob"] + b["test_prob"]) / 2
    metrics = json.loads((ensemble_dir / "metrics.json").read_text())
    assert metrics["kind"] == "ensemble" and len(metrics["members"]) == 2
    assert metrics["test_tuned"]["macro_auroc"] == pytest.approx(
        macro_auroc(a["test_y"], mean_test), abs=1e-12
    )
    assert metrics["bootstrap"]["auroc"]["estimate"] == pytest.approx(metrics["test_tuned"]["macro_auroc"])
    assert np.allclose(_preds(ensemble_dir)["test_prob"], mean_test)
    # thresholds come from fold 9 of the averaged probabilities, the best member from fold-9 AUROC
    from ecgcli.scoring.metrics import tune_thresholds

    mean_val = (a["val_prob"] + b["val_prob"]) / 2
    assert np.allclose(metrics["thresholds"], tune_thresholds(a["val_y"], mean_val))
    val_aurocs = [macro_auroc(a["val_y"], p["val_prob"]) for p in (a, b)]
    best = int(np.argmax(val_aurocs))
    assert metrics["best_member"]["index"] == best
    paired = paired_bootstrap_auroc(a["test_y"], mean_test, (a, b)[best]["test_prob"], n_boot=50)
    assert metrics["vs_best_member"]["delta"] == pytest.approx(paired["delta"])
    assert metrics["vs_best_member"]["lo"] == pytest.approx(paired["lo"]) and paired["lo"] <= paired["hi"]


def test_paired_bootstrap_of_identical_scores_is_zero() -> None:
    rng = np.random.default_rng(0)
    y = rng.random((80, 3)) < 0.4
    s = rng.random((80, 3))
    out = paired_bootstrap_auroc(y, s, s, n_boot=30)
    assert out["delta"] == 0 and out["lo"] == 0 and out["hi"] == 0 and out["n_boot"] == 30


def test_predict_is_the_mean_of_the_members(runs: list[Path], ensemble_dir: Path, synth_root: Path) -> None:
    from ecgcli.inference.predict import Predictor
    from ecgcli.storage.checkpoint import load_tensors

    stems = sorted(str(p.with_suffix("")) for p in (synth_root / "records100").rglob("*.hea"))[:3]
    ens = list(Predictor.from_checkpoint(ensemble_dir).predict(stems))
    members = [list(Predictor.from_checkpoint(r).predict(stems)) for r in runs]
    for i, pred in enumerate(ens):
        for cls, p in pred.probabilities.items():
            assert p == pytest.approx(np.mean([m[i].probabilities[cls] for m in members]), abs=1e-6)
    tensors, meta = load_tensors(ensemble_dir / "model.safetensors")
    assert meta["kind"] == "ensemble" and len(meta["members"]) == 2
    assert any(k.startswith("member0.model.") for k in tensors) and any(
        k.startswith("member1.") for k in tensors
    )
    assert meta["members"][1]["temperature"] is not None  # the calibrated member keeps its temperatures


def test_explain_reads_the_ensemble(ensemble_dir: Path, synth_root: Path) -> None:
    from ecgcli.inference.explain import explain_record
    from ecgcli.inference.predict import Predictor

    stem = sorted(p.with_suffix("") for p in (synth_root / "records100").rglob("*.hea"))[0]
    exp = explain_record(Predictor.from_checkpoint(ensemble_dir), stem, method="gradxinput")
    assert exp.attributions and all(np.isfinite(a).all() for a in exp.attributions.values())
    assert exp.signal.shape == next(iter(exp.attributions.values())).shape


def test_export_torchscript_agrees(ensemble_dir: Path, tmp_path: Path) -> None:
    from ecgcli.inference.export import TOLERANCE, export_model

    report = export_model(ensemble_dir, "torchscript", tmp_path / "ens.pt", n_check=100)
    assert report.max_delta <= TOLERANCE


def test_export_onnx_agrees(ensemble_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from ecgcli.inference.export import TOLERANCE, export_model

    report = export_model(ensemble_dir, "onnx", tmp_path / "ens.onnx", n_check=100)
    assert report.max_delta <= TOLERANCE  # one graph averaging the members' probabilities


def test_compare_reads_the_ensemble(runs: list[Path], ensemble_dir: Path) -> None:
    res = runner.invoke(app, ["compare", str(runs[0]), str(ensemble_dir), "--format", "json"])
    assert res.exit_code == 0, res.output
    assert "ensemble:cnn1d+cnn1d" in res.stdout


def test_cli_json(runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "cli_ens"
    res = runner.invoke(app, ["ensemble", *map(str, runs), "--out", str(out), "--bootstrap", "20", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["out"] == str(out) and len(doc["members"]) == 2 and 0 <= doc["test_auroc"] <= 1
    assert doc["vs_best_member"]["n_boot"] == 20 and (out / "model.json").is_file()
    res = runner.invoke(app, ["ensemble", *map(str, runs), "--out", str(out), "--bootstrap", "20"])
    assert res.exit_code == 0 and "vs best member" in res.output  # an earlier ensemble is replaced


def _edited_copy(run: Path, dest: Path, **changes: object) -> Path:
    shutil.copytree(run, dest)
    side = json.loads((dest / "model.json").read_text())
    side.update(changes)
    (dest / "model.json").write_text(json.dumps(side))
    return dest


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"task": "diagnostic"}, "members of different tasks cannot be ensembled"),
        ({"leads": ["I", "II"]}, "members of different leads cannot be ensembled"),
        ({"sampling_rate": 500}, "members of different sampling rates"),
        ({"class_names": ["NORM", "MI", "STTC", "CD", "HYP"]}, "members of different classes"),
        ({"window_stride": 125}, "members of different window strides"),
    ],
)
def test_mismatched_members_are_refused_in_one_line(
    runs: list[Path], tmp_path: Path, changes: dict, words: str
) -> None:
    other = _edited_copy(runs[1], tmp_path / "other", **changes)
    res = runner.invoke(app, ["ensemble", str(runs[0]), str(other), "--out", str(tmp_path / "e")])
    assert res.exit_code == 2 and words in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "e").exists()


def test_other_refusals(runs: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 2 members"):
        build_ensemble([runs[0]], tmp_path / "one")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="other files in it"):
        build_ensemble(runs, tmp_path / "busy")
    lone = tmp_path / "lone"
    lone.mkdir()
    for name in ("model.safetensors", "model.json"):
        shutil.copy(runs[0] / name, lone / name)
    with pytest.raises(ConfigError, match="no predictions.npz"):
        build_ensemble([runs[0], lone / "model.safetensors"], tmp_path / "e")
