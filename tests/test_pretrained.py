"""Shipped models: names wherever a checkpoint is accepted, checksums, cards, the re-check, and
(for every model in the installed package) the probabilities recorded when it was built.

The name-handling tests build a private zoo from a tiny synthetic run with the same code the
maintainers' build script uses (:func:`ecgcli.experiments.shipping.build_shipped_model`), so
they hold without PTB-XL and whatever models the package ships.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import train_tiny
from typer.testing import CliRunner

from ecgcli import pretrained
from ecgcli.cli.app import app
from ecgcli.experiments.shipping import Provenance, build_shipped_model, example_stems

pytest.importorskip("onnxruntime")

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "records"
NAME, ENCODER = "tiny-superdiagnostic", "tiny-encoder"


@pytest.fixture(scope="module")
def zoo_source(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A zoo with one calibrated classifier (benchmark-style windows) and one encoder."""
    base = tmp_path_factory.mktemp("zoo")
    result = train_tiny(
        synth_root,
        base / "cache",
        base / "runs",
        run_dir=str(base / "runs" / "clf"),
        signal_length=250,
        window_stride=125,
        aggregate="max",
        calibrate="temperature",
        seed=3,
    )
    zoo = base / "zoo"
    prov = Provenance(command="ecg train supervised --tiny", commit="0000000", population="synthetic")
    build_shipped_model(result.run_dir, NAME, zoo, EXAMPLES, prov, "A tiny test classifier.", default=True)
    _encoder_run(result.run_dir, base / "runs" / "enc")
    build_shipped_model(base / "runs" / "enc", ENCODER, zoo, EXAMPLES, prov, "A tiny test encoder.")
    return zoo


def _encoder_run(classifier_run: Path, out: Path) -> None:
    """An encoder checkpoint cut from the classifier (what ``train ssl`` writes, in shape)."""
    from ecgcli.storage.checkpoint import checkpoint_meta, load_classifier, save_checkpoint

    model, meta = load_classifier(classifier_run / "model.safetensors")
    arch = meta["architecture"]
    out.mkdir(parents=True)
    save_checkpoint(
        out / "model.safetensors",
        model.encoder,
        checkpoint_meta(
            "encoder",
            architecture={"encoder": arch["encoder"], "encoder_args": arch["encoder_args"]},
            sampling_rate=100,
            signal_length=250,
            normalisation=meta["normalisation"],
        ),
    )
    (out / "config.json").write_text(json.dumps({"epochs": 1, "method": "byol"}))


@pytest.fixture()
def zoo(zoo_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the zoo, installed as the package's (a test may damage it)."""
    dest = tmp_path / "zoo"
    shutil.copytree(zoo_source, dest)
    monkeypatch.setattr(pretrained, "zoo_dir", lambda: dest)
    monkeypatch.delenv("ECG_CHECKPOINT", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env of the checkout's
    return dest


def _probs(doc: dict) -> dict[str, list[float]]:
    return {Path(r["record"]).name: list(r["probabilities"].values()) for r in doc["predictions"]}


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_a_name_predicts_as_recorded_at_build(zoo: Path, runtime: str) -> None:
    ref = pretrained.reference(NAME)
    records = [str(s) + ".hea" for s in example_stems(EXAMPLES)]
    out = runner.invoke(app, ["predict", *records, "-c", NAME, "--runtime", runtime, "--json"])
    assert out.exit_code == 0, out.output
    got = _probs(json.loads(out.stdout))
    assert set(got) == set(ref["records"])
    delta = max(np.abs(np.subtract(got[k], ref["records"][k])).max() for k in got)
    assert delta <= 1e-5


def test_model_option_and_default_and_setting(zoo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = str(EXAMPLES / "ptbxl_00009.hea")
    by_name = runner.invoke(app, ["predict", rec, "--model", NAME, "--json"])
    default = runner.invoke(app, ["predict", rec, "--json"])
    assert by_name.exit_code == 0 and default.exit_code == 0, default.output
    assert json.loads(default.stdout)["predictions"] == json.loads(by_name.stdout)["predictions"]
    # ECG_CHECKPOINT still wins over the shipped default: here it names a missing file
    monkeypatch.setenv("ECG_CHECKPOINT", "elsewhere/model.safetensors")
    wins = runner.invoke(app, ["predict", rec])
    assert wins.exit_code == 2 and "elsewhere" in wins.output


def test_unknown_name_lists_the_shipped_ones(zoo: Path) -> None:
    out = runner.invoke(app, ["predict", str(EXAMPLES / "ptbxl_00009.hea"), "-c", "ptbxl-nope"])
    assert out.exit_code == 2
    assert "ptbxl-nope" in out.output and NAME in out.output and ENCODER in out.output
    assert "Traceback" not in out.output


def test_an_encoder_name_is_not_a_classifier(zoo: Path) -> None:
    out = runner.invoke(app, ["predict", str(EXAMPLES / "ptbxl_00009.hea"), "-c", ENCODER])
    assert out.exit_code == 2 and f"--ssl-checkpoint {ENCODER}" in out.output


@pytest.mark.parametrize("role", ["weights", "sidecar", "onnx"])
def test_a_damaged_shipped_file_is_refused(zoo: Path, role: str, tmp_path: Path) -> None:
    path = pretrained.get(NAME).path(role)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    runtime = "onnx" if role == "onnx" else "torch"
    before = sorted(p.name for p in tmp_path.iterdir())
    out = runner.invoke(app, ["predict", str(EXAMPLES / "ptbxl_00009.hea"), "-c", NAME, "--runtime", runtime])
    assert out.exit_code == 2
    assert "damaged" in out.output and path.name in out.output
    assert len(out.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_a_missing_card_is_one_line(zoo: Path) -> None:
    pretrained.get(NAME).path("card").unlink()
    out = runner.invoke(app, ["models", "--card", NAME])
    assert out.exit_code == 2 and "missing" in out.output and "MODEL_CARD.md" in out.output


def test_models_pretrained_lists_the_set(zoo: Path) -> None:
    out = runner.invoke(app, ["models", "--pretrained", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["default"] == NAME
    rows = {m["name"]: m for m in doc["models"]}
    clf = rows[NAME]
    assert clf["kind"] == "classifier" and clf["task"] == "superdiagnostic" and len(clf["classes"]) == 5
    lo, hi = clf["fold10"]["auroc_ci"]
    assert lo <= clf["fold10"]["macro_auroc"] <= hi
    assert clf["fold10"]["ece"] is not None and clf["size_bytes"] > 0
    assert rows[ENCODER]["kind"] == "encoder"
    table = runner.invoke(app, ["models", "--pretrained"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and f"{NAME} (default)" in table.output


def test_card_tells_how_it_was_made(zoo: Path) -> None:
    out = runner.invoke(app, ["models", "--card", NAME, "--json"])
    assert out.exit_code == 0, out.output
    card = json.loads(out.stdout)["card"]
    fold10 = pretrained.get(NAME).fold10
    for text in (
        "ecg train supervised --tiny", "0000000", f"{fold10['macro_auroc']:.3f}", "not a medical device",
        "CC BY 4.0", "Input contract", "temperature", "fold 9",
    ):  # fmt: skip
        assert text in card, text


def test_check_reproduces_the_card_on_its_data(zoo: Path, synth_root: Path, tmp_path: Path) -> None:
    out = runner.invoke(
        app,
        ["models", "--check", NAME, "--data-root", str(synth_root), "--json"],
        env={"ECG_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["agrees"] is True
    assert {r["key"] for r in doc["rows"]} >= {"macro_auroc", "macro_auprc", "fmax", "ece"}
    assert abs(doc["yours"]["macro_auroc"] - pretrained.get(NAME).fold10["macro_auroc"]) < 5e-4


def test_check_says_when_numbers_differ(zoo: Path, synth_root: Path, tmp_path: Path) -> None:
    manifest = zoo / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["models"][NAME]["fold10"]["macro_auroc"] = 0.999
    manifest.write_text(json.dumps(doc))
    pretrained._manifest.cache_clear()
    try:
        out = runner.invoke(
            app,
            ["models", "--check", NAME, "--data-root", str(synth_root)],
            env={"ECG_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "200"},
        )
    finally:
        pretrained._manifest.cache_clear()
    assert out.exit_code == 1 and "differ" in out.output


def test_user_path_wins_over_a_shipped_name(zoo: Path, tmp_path: Path) -> None:
    """A folder in the working directory named like a shipped model is the user's, not ours."""
    (tmp_path / NAME).mkdir()
    out = runner.invoke(app, ["predict", str(EXAMPLES / "ptbxl_00009.hea"), "-c", NAME])
    assert out.exit_code == 2 and "damaged" not in out.output


# ---- the models this install ships --------------------------------------------------------

SHIPPED = pretrained.shipped()


def test_the_shipped_set_is_small_and_matches_its_manifest() -> None:
    total = 0
    for model in SHIPPED:
        for role in model.files:
            model.verified(role)  # raises on a checksum mismatch
        total += model.size_bytes
    assert total < 25e6
    default = pretrained.default_classifier()
    assert default is None or pretrained.get(default).kind == "classifier"


@pytest.mark.parametrize("model", [m for m in SHIPPED if m.kind == "classifier"], ids=lambda m: m.name)
@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_shipped_classifier_reproduces_its_build(model: pretrained.ShippedModel, runtime: str) -> None:
    from ecgcli.inference.onnx_runtime import OnnxPredictor
    from ecgcli.inference.predict import Predictor

    ref = pretrained.reference(model.name)
    stems = example_stems(EXAMPLES)
    if runtime == "torch":
        predictor = Predictor.from_checkpoint(pretrained.resolve(model.name), threads=1)
    else:
        predictor = OnnxPredictor.from_file(pretrained.resolve(model.name, runtime="onnx"))
    for result in predictor.predict(stems):
        got = [result.probabilities[c] for c in ref["class_names"]]  # type: ignore[union-attr]
        expected = ref["records"][Path(result.record).name]
        assert np.abs(np.subtract(got, expected)).max() <= 1e-5


@pytest.mark.parametrize("model", [m for m in SHIPPED if m.kind == "encoder"], ids=lambda m: m.name)
def test_shipped_encoder_reproduces_its_build(model: pretrained.ShippedModel) -> None:
    from ecgcli.experiments.shipping import _encoder_reference

    ref = pretrained.reference(model.name)
    got = _encoder_reference(pretrained.resolve(model.name, kind="encoder"), example_stems(EXAMPLES))
    for k, v in ref["records"].items():  # features are not probabilities: 1e-5 relative to their size
        assert np.abs(np.subtract(got["records"][k], v)).max() <= 1e-5 * max(1.0, np.abs(v).max())


# ---- the example records -------------------------------------------------------------------


def test_example_records_carry_their_labels_and_attribution() -> None:
    from ecgcli.data.records import read_header

    stems = example_stems(EXAMPLES)
    assert len(stems) == 10
    labels = {s.name: read_header(s.with_suffix(".hea")).labels for s in stems}
    assert labels["ptbxl_00009"] == ("NORM",) and labels["ptbxl_07221"] == ()
    assert {c for v in labels.values() for c in v} == {"NORM", "MI", "STTC", "HYP", "CD"}
    assert "CC BY 4.0" in (EXAMPLES / "README.md").read_text()


@pytest.mark.parametrize(
    ("comment", "expected"),
    [("# Labels: MI, CD", ("MI", "CD")), ("#labels:none", ()), ("# Statements: IMI(100)", None)],
)
def test_header_labels_comment(comment: str, expected: tuple | None) -> None:
    from ecgcli.data.records import header_labels

    assert header_labels(["# Source: PTB-XL", comment]) == expected


def test_a_statement_model_is_shown_the_records_statements() -> None:
    from ecgcli.data.records import header_statements, read_header, record_labels

    assert header_statements(["# Statements: ASMI(50), LAFB(100), SR(0)"]) == ("ASMI", "LAFB", "SR")
    assert header_statements(["# Labels: MI"]) is None
    header = read_header(EXAMPLES / "ptbxl_00162.hea")
    assert header.labels == ("MI", "STTC", "HYP", "CD")
    assert header.statements == ("ASMI", "LAFB", "LVH", "ISC_", "SR")
    # superclasses for a superclass model; the statements it knows for a statement model
    assert (
        record_labels(header.labels, header.statements, ["NORM", "MI", "STTC", "CD", "HYP"]) == header.labels
    )
    assert record_labels(header.labels, header.statements, ["SR", "AFIB", "LVH", "ASMI"]) == (
        "ASMI",
        "LVH",
        "SR",
    )
    assert record_labels(("X",), None, ["SR"]) == ("X",)


def test_predict_prints_the_records_labels_beside_its_call(zoo: Path) -> None:
    records = [str(s) + ".hea" for s in example_stems(EXAMPLES)]
    table = runner.invoke(app, ["predict", *records], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "record's labels" in table.output and "MI, STTC, HYP, CD" in table.output
    doc = json.loads(runner.invoke(app, ["predict", records[0], "--json"]).stdout)
    assert doc["predictions"][0]["labels"] == ["NORM"]
    csv = runner.invoke(app, ["predict", *records[:2], "--csv"]).stdout.splitlines()
    header = csv[0].split(",")
    assert header[-2:] == ["labels", "error"] and csv[1].split(",")[-2] == "NORM"


def test_finetune_with_an_unknown_name_fails_before_reading_data(
    zoo: Path, synth_root: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    out = runner.invoke(
        app,
        ["finetune", "--ssl-checkpoint", "ptbxl-nope", "--data-root", str(synth_root)],
        env={"ECG_CACHE_DIR": str(cache)},
    )
    assert out.exit_code == 2 and "ptbxl-nope" in out.output and ENCODER in out.output
    assert not cache.exists()  # refused before the signal cache was built


def _baseline_run(run: Path, dest: Path, spoil: bool) -> Path:
    """A copy of ``run`` whose fold-10 records come in reverse order, with the first class's
    probabilities replaced by noise when ``spoil`` (a worse twin, like a reduced-lead model)."""
    shutil.copytree(run, dest)
    with np.load(dest / "predictions.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key in ("test_ecg_id", "test_y", "test_prob"):
        arrays[key] = arrays[key][::-1].copy()
    if spoil:
        arrays["test_prob"][:, 0] = np.random.default_rng(0).random(len(arrays["test_prob"]))
    np.savez(dest / "predictions.npz", **arrays)
    return dest


def test_card_states_a_paired_comparison_against_a_twin(zoo_source: Path, tmp_path: Path) -> None:
    from ecgcli.errors import ConfigError
    from ecgcli.experiments.shipping import paired_difference, run_fold10
    from ecgcli.scoring.stats import macro_auroc

    run = zoo_source.parent / "runs" / "clf"
    same = paired_difference(run, run_fold10(_baseline_run(run, tmp_path / "same", spoil=False)), "itself")
    assert same["delta"] == 0 and same["ci"] == [0, 0]  # aligned by ecg_id, not by row
    worse = _baseline_run(run, tmp_path / "worse", spoil=True)
    with np.load(run / "predictions.npz") as a, np.load(worse / "predictions.npz") as b:
        worse_auroc = macro_auroc(b["test_y"][::-1], b["test_prob"][::-1])
        expected = macro_auroc(a["test_y"], a["test_prob"]) - worse_auroc
    prov = Provenance(command="ecg train supervised --tiny", commit="0000000", population="synthetic")
    entry = build_shipped_model(
        run,
        "tiny-twin",
        tmp_path / "zoo",
        EXAMPLES,
        prov,
        "A twin.",
        against=(run_fold10(worse), "a noisy twin"),
    )
    cmp = entry["extra"]["compared_to"]
    assert cmp["delta"] == pytest.approx(expected) and cmp["delta"] > 0
    assert cmp["ci"][0] <= cmp["delta"] <= cmp["ci"][1] and cmp["n_boot"] == 1000
    card = (tmp_path / "zoo" / "tiny-twin" / "MODEL_CARD.md").read_text()
    assert "## Against a noisy twin" in card and f"**{cmp['delta']:+.3f} [" in card
    sidecar = json.loads((worse / "model.json").read_text())
    sidecar["class_names"] = list(reversed(sidecar["class_names"]))
    (worse / "model.json").write_text(json.dumps(sidecar))
    with pytest.raises(ConfigError, match="not this model's classes"):
        paired_difference(run, run_fold10(worse), "renamed")


def test_a_shipped_model_scores_fold_10_as_its_run_did(
    zoo: Path, zoo_source: Path, synth_root: Path, tmp_path: Path
) -> None:
    """``build_pretrained.py --against NAME`` scores a shipped model on fold 10: the same records
    and, for the model the run shipped, the same AUROC."""
    from ecgcli.experiments.recheck import shipped_fold10
    from ecgcli.experiments.shipping import paired_difference

    scored = shipped_fold10(NAME, synth_root, tmp_path / "cache")
    same = paired_difference(zoo_source.parent / "runs" / "clf", scored, NAME)
    assert same["n"] == len(scored.ecg_ids) and abs(same["delta"]) < 5e-4


def test_a_grid_configuration_takes_a_shipped_encoders_name(zoo: Path, tmp_path: Path) -> None:
    from ecgcli.experiments.spec import parse_spec

    spec = parse_spec(f"finetune:byol={ENCODER}[encoder_lr=0.001]")
    assert spec.checkpoint == ENCODER and spec.name == "finetune:byol[encoder_lr=0.001]"
    (tmp_path / ENCODER).write_text("a user's own file")  # the cwd's file wins over the name
    assert parse_spec(f"finetune:byol={ENCODER}").checkpoint == str(tmp_path / ENCODER)
    assert parse_spec("finetune:byol=nothing-here").checkpoint == str(tmp_path / "nothing-here")


def test_compare_takes_a_shipped_name_beside_a_run(zoo: Path, zoo_source: Path) -> None:
    run = zoo_source.parent / "runs" / "clf"
    out = runner.invoke(app, ["compare", NAME, str(run), "--format", "json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    shipped, trained = doc["methods"]
    assert shipped["name"] == NAME and shipped["n"] == 1
    # the same model, tested on the same fold-10 records (their ecg_id hash agrees)
    assert shipped["metrics"]["auroc"]["mean"] == pytest.approx(trained["metrics"]["auroc"]["mean"])
    assert shipped["metrics"]["sensitivity"] is None
    assert pretrained.get(NAME).fold10["test_set"]["sha256"] == doc["test_set"]["sha256"]
    for value, words in ((ENCODER, "pretrained encoder"), ("no-such-model", "no shipped model named")):
        bad = runner.invoke(app, ["compare", value])
        assert bad.exit_code == 2 and words in bad.output and "Traceback" not in bad.output


def test_card_words_a_worse_twin_by_its_replicates_and_times_a_resumed_run_whole() -> None:
    from ecgcli.experiments.cards import _replicates_below, _run_seconds

    worse = {"delta": -0.09, "p_not_better": 1.0, "n_boot": 1000}
    assert _replicates_below(worse) == "below it in every one"  # not "p = 1 that it is not better"
    assert (
        _replicates_below({**worse, "delta": -0.004, "p_not_better": 0.93}) == "at or below it in 930 of them"
    )
    assert _replicates_below({"delta": 0.01, "p_not_better": 0.02, "n_boot": 1000}).endswith(
        "p = 0.02 that this model is not better"
    )
    # a run resumed before the fix counted only its last session in total_seconds
    assert _run_seconds({"total_seconds": 3233.0, "train_seconds": 12624.0, "eval_seconds": 123.0}) == 12747.0
    assert _run_seconds({"total_seconds": 5400.0, "train_seconds": 5200.0, "eval_seconds": 100.0}) == 5400.0
    assert _run_seconds({}) is None


def test_a_run_ships_with_the_current_threshold_rule(zoo_source: Path, tmp_path: Path) -> None:
    """A run whose fold-9 threshold for a class calls it nearly everywhere (tuned by an older
    rule) ships with 0.5 for that class, its F1 recomputed and the card saying so; the others
    keep theirs, and fold 10 chooses nothing."""
    from ecgcli.experiments.shipping import retuned

    run = shutil.copytree(zoo_source.parent / "runs" / "clf", tmp_path / "clf")
    with np.load(run / "predictions.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    n = len(arrays["val_y"])
    arrays["val_y"][:, 0] = 0
    arrays["val_y"][:2, 0] = 1  # two positives ranked below nearly every negative
    arrays["val_prob"][:, 0] = np.linspace(0.1, 0.9, n)
    arrays["val_prob"][:2, 0] = 0.1
    np.savez(run / "predictions.npz", **arrays)
    metrics = json.loads((run / "metrics.json").read_text())
    sidecar = json.loads((run / "model.json").read_text())
    old = list(metrics["thresholds"])
    metrics["thresholds"][0] = 0.1  # what the old rule chose: call the class on every record
    new_metrics, new_sidecar = retuned(run, metrics, sidecar)
    first = sidecar["class_names"][0]
    assert new_metrics["thresholds_retuned"] == [first]
    assert new_sidecar["thresholds"][0] == 0.5 and new_sidecar["thresholds"][1:] == pytest.approx(old[1:])
    assert new_metrics["test_tuned"]["per_class"][first]["threshold"] == 0.5
    assert new_sidecar["metrics"]["test_tuned"]["f1"] == pytest.approx(new_metrics["test_tuned"]["macro_f1"])
    assert retuned(run, new_metrics, new_sidecar) == (new_metrics, new_sidecar)  # idempotent
