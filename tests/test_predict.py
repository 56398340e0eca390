"""``ecg predict`` and :mod:`ecgcli.inference.predict`: foreign records, aggregation, outputs, bad input."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb
from conftest import train_tiny
from typer.testing import CliRunner

from ecgcli import LEADS, SUPERCLASSES
from ecgcli.cli.app import app
from ecgcli.data.records import prepare_record
from ecgcli.data.synth import write_record
from ecgcli.errors import CheckpointError, ConfigError
from ecgcli.events import Message, TaskDone, TaskProgress, TaskStarted
from ecgcli.inference.predict import Failure, Prediction, Predictor, exit_code
from ecgcli.models import ECGClassifier
from ecgcli.storage.checkpoint import checkpoint_meta, load_classifier, save_checkpoint

runner = CliRunner()
LOWER = ["i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6"]
THRESHOLDS = [0.5, 0.4, 0.3, 0.6, 0.45]
NORM = {"mean": [0.01 * i for i in range(12)], "std": [0.1 + 0.02 * i for i in range(12)]}


# --- fixtures ----------------------------------------------------------------------------------


def _make_checkpoint(path: Path, width: int = 8, seed: int = 0, **overrides) -> Path:
    """A small, untrained but non-trivial classifier checkpoint (random BatchNorm statistics)."""
    torch.manual_seed(seed)
    model = ECGClassifier.build("cnn1d", n_classes=5, width=width)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    fields = {
        "architecture": model.architecture(),
        "class_names": list(SUPERCLASSES),
        "leads": list(LEADS),
        "sampling_rate": 100,
        "signal_length": 1000,
        "thresholds": THRESHOLDS,
        "normalisation": NORM,
        **overrides,
    }
    return save_checkpoint(path, model.eval(), checkpoint_meta("classifier", **fields))


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.safetensors")


@pytest.fixture(scope="session")
def predictor(ckpt: Path) -> Predictor:
    return Predictor.from_checkpoint(ckpt)


@pytest.fixture(scope="session")
def trained(synth_root: Path, session_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint: one epoch of `train supervised` (width 16) on the session's synthetic set."""
    return train_tiny(synth_root, session_cache, tmp_path_factory.mktemp("runs"), batch_size=64).run_dir


def _ecg_like(n: int, fs: float, n_sig: int, seed: int = 0) -> np.ndarray:
    """(n, n_sig) mV: a beat train, mains hum, noise and an offset per channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    beat = np.exp(-(((t % 0.83) - 0.3) ** 2) / 2e-4)
    sig = beat[:, None] * rng.uniform(0.3, 1.5, n_sig) + 0.05 * np.sin(2 * np.pi * 50 * t)[:, None]
    return sig + rng.uniform(-0.5, 0.5, n_sig) + 0.02 * rng.standard_normal((n, n_sig))


def _write(
    folder: Path,
    name: str = "rec",
    fs: int = 100,
    seconds: float = 10.0,
    names: list[str] | None = None,
    seed: int = 0,
) -> Path:
    """A format-16 WFDB record (1000 units/mV); returns its stem."""
    names = names or list(LEADS)
    folder.mkdir(parents=True, exist_ok=True)
    digital = np.round(_ecg_like(round(seconds * fs), fs, len(names), seed) * 1000).astype(np.int16)
    write_record(folder / name, digital, names, fs)
    return folder / name


def _reference(ckpt: Path, stem: Path, aggregate: str = "mean") -> np.ndarray:
    """Probabilities computed the slow, obvious way: unfused model, one window at a time."""
    model, meta = load_classifier(ckpt)
    rec = prepare_record(stem, meta["sampling_rate"], meta["signal_length"])
    mean = np.asarray(meta["normalisation"]["mean"], dtype=np.float32)[:, None]
    std = np.asarray(meta["normalisation"]["std"], dtype=np.float32)[:, None]
    with torch.no_grad():
        probs = [torch.sigmoid(model(torch.from_numpy((w - mean) / std)[None]))[0] for w in rec.windows]
    stacked = torch.stack(probs).numpy()
    return stacked.mean(0) if aggregate == "mean" else stacked.max(0)


def _cli(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, ["predict", *args], env=env)


# --- the core ------------------------------------------------------------------------------------


def test_500hz_lowercase_leads_three_extra_channels_30s(tmp_path: Path, ckpt: Path, predictor) -> None:
    names = ["resp", *LOWER[6:], "pleth", *LOWER[:6], "abp"]  # three extras, shuffled order
    stem = _write(tmp_path, fs=500, seconds=30, names=names)
    pred = predictor.predict_one(stem)
    assert isinstance(pred, Prediction)
    assert (pred.n_windows, pred.fs_in, pred.duration_s, pred.padded) == (3, 500.0, 30.0, False)
    assert list(pred.probabilities) == list(SUPERCLASSES)
    np.testing.assert_allclose(list(pred.probabilities.values()), _reference(ckpt, stem), atol=1e-5)
    # the same 12 leads written in standard order, upper case, without extras: same result
    rec = wfdb.rdrecord(str(stem), physical=False)
    cols = [names.index(lead) for lead in LOWER]
    write_record(tmp_path / "std", rec.d_signal[:, cols], list(LEADS), 500)
    same = predictor.predict_one(tmp_path / "std").probabilities
    np.testing.assert_allclose(list(same.values()), list(pred.probabilities.values()), atol=1e-6)


def test_1000hz_record(tmp_path: Path, ckpt: Path, predictor) -> None:
    stem = _write(tmp_path, fs=1000, seconds=12.5)
    pred = predictor.predict_one(stem)
    assert (pred.fs_in, pred.n_windows, pred.padded) == (1000.0, 2, False)  # end-aligned 2nd window
    np.testing.assert_allclose(list(pred.probabilities.values()), _reference(ckpt, stem), atol=1e-5)


def test_thresholds_decide_positive_classes(tmp_path: Path, predictor) -> None:
    pred = predictor.predict_one(_write(tmp_path))
    expected = tuple(c for c, t in zip(SUPERCLASSES, THRESHOLDS, strict=True) if pred.probabilities[c] >= t)
    assert pred.positive == expected
    assert pred.thresholds == dict(zip(SUPERCLASSES, THRESHOLDS, strict=True))
    verdict = pred.verdict()
    assert verdict.startswith("rec: ")
    if expected:
        assert verdict == f"rec: {', '.join(expected)} (above threshold)"
    else:
        assert verdict.startswith("rec: no class above threshold")


def test_aggregate_max_and_mean(tmp_path: Path, ckpt: Path, predictor) -> None:
    stem = _write(tmp_path, seconds=40, seed=3)
    mean = np.array(list(predictor.predict_one(stem, "mean").probabilities.values()))
    high = np.array(list(predictor.predict_one(stem, "max").probabilities.values()))
    np.testing.assert_allclose(mean, _reference(ckpt, stem, "mean"), atol=1e-5)
    np.testing.assert_allclose(high, _reference(ckpt, stem, "max"), atol=1e-5)
    assert (high >= mean - 1e-7).all() and (high > mean).any()
    with pytest.raises(ConfigError, match="unknown aggregate"):
        predictor.predict([stem], "median")  # checked at the call, not at the first result


def test_batches_across_records_match_one_by_one(tmp_path: Path, predictor) -> None:
    stems = [_write(tmp_path, f"r{i}", seconds=s, seed=i) for i, s in enumerate([10, 25, 4, 31, 10, 12])]
    alone = [predictor.predict_one(s).probabilities for s in stems]
    events: list = []
    # tiny chunks and batches: records and forward passes straddle each other
    together = list(predictor.predict(stems, callback=events.append, batch_size=3, chunk_windows=4))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_allclose(list(a.values()), list(b.probabilities.values()), atol=1e-6)
    assert isinstance(events[0], TaskStarted) and events[0].total == len(stems)
    assert sum(e.advance for e in events if isinstance(e, TaskProgress)) == len(stems)
    assert isinstance(events[-1], TaskDone)


def test_short_record_is_padded_with_a_warning(tmp_path: Path, predictor) -> None:
    stem = _write(tmp_path, seconds=4)
    events: list = []
    pred = predictor.predict_one(stem, callback=events.append)
    assert pred.padded and pred.n_windows == 1 and pred.duration_s == 4.0
    warnings = [e for e in events if isinstance(e, Message) and e.level == "warning"]
    assert len(warnings) == 1 and "zero-padded" in warnings[0].text and str(stem) in warnings[0].text
    assert pred.warnings == (warnings[0].text,)


def test_failures_keep_their_place(tmp_path: Path, predictor) -> None:
    good = _write(tmp_path, "good")
    bad = _write(tmp_path, "bad")
    bad.with_suffix(".dat").unlink()
    results = list(predictor.predict([good, bad, good]))
    assert [type(r) for r in results] == [Prediction, Failure, Prediction]
    assert results[1].record == str(bad) and "not found" in results[1].problem
    assert exit_code(results) == 1 and exit_code(results[1:2]) == 2 and exit_code(results[:1]) == 0


def test_matches_training_predictions(trained: Path, synth_root: Path) -> None:
    """End to end: a trained checkpoint scores PTB-XL records exactly as training evaluated them."""
    import pandas as pd

    saved = np.load(trained / "predictions.npz")
    ids, probs = saved["test_ecg_id"][:20], saved["test_prob"][:20]
    table = pd.read_csv(synth_root / "ptbxl_database.csv", index_col="ecg_id")
    stems = [synth_root / table.loc[i, "filename_lr"] for i in ids]
    results = list(Predictor.from_checkpoint(trained).predict(stems))
    got = np.array([list(r.probabilities.values()) for r in results])
    np.testing.assert_allclose(got, probs, atol=1e-4)


def test_checkpoint_sidecar_is_validated(tmp_path: Path) -> None:
    bad = _make_checkpoint(tmp_path / "a" / "model.safetensors", thresholds=[0.5, 0.5])
    with pytest.raises(CheckpointError, match="5 finite thresholds"):
        Predictor.from_checkpoint(bad)
    bad = _make_checkpoint(tmp_path / "b" / "model.safetensors", normalisation={"mean": [0.0]})
    with pytest.raises(CheckpointError, match="normalisation is missing or malformed"):
        Predictor.from_checkpoint(bad)
    bad = _make_checkpoint(tmp_path / "c" / "model.safetensors", sampling_rate="100")
    with pytest.raises(CheckpointError, match="sampling_rate must be a positive integer"):
        Predictor.from_checkpoint(bad)


# --- the command ----------------------------------------------------------------------------------


def test_cli_single_record_table_and_verdict(tmp_path: Path, ckpt: Path, predictor) -> None:
    stem = _write(tmp_path, "00001_lr", fs=500, seconds=30, names=LOWER + ["x", "y", "z"])
    result = _cli(str(stem.with_suffix(".hea")), "--checkpoint", str(ckpt))
    assert result.exit_code == 0, result.output
    for word in ("class", "probability", "threshold", "above threshold", *SUPERCLASSES):
        assert word in result.stdout
    verdict = predictor.predict_one(stem).verdict()
    assert result.stdout.strip().splitlines()[-1] == verdict


def test_cli_checkpoint_from_environment(tmp_path: Path, ckpt: Path) -> None:
    stem = _write(tmp_path)
    result = _cli(str(stem.with_suffix(".dat")), "--json", env={"ECG_CHECKPOINT": str(ckpt)})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["checkpoint"] == str(ckpt)


def test_cli_no_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An install without a default model (or an ecgcli built without the shipped ones)."""
    from ecgcli import pretrained

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ECG_CHECKPOINT", raising=False)
    monkeypatch.setattr(pretrained, "default_classifier", lambda: None)
    result = _cli(str(_write(tmp_path)))
    assert result.exit_code == 2
    assert "no checkpoint: pass --checkpoint PATH" in result.stderr and "ECG_CHECKPOINT" in result.stderr


def test_cli_without_checkpoint_uses_the_default_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's first example: the example records, no -c, no training."""
    from ecgcli import pretrained

    default = pretrained.default_classifier()
    if default is None:
        pytest.skip("this install ships no default model")
    monkeypatch.delenv("ECG_CHECKPOINT", raising=False)
    records = sorted(str(p) for p in (Path(__file__).parents[1] / "examples" / "records").glob("*.hea"))
    result = _cli(*records, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert len(doc["predictions"]) == len(records) == 10 and not doc["errors"]
    classes = pretrained.get(default).classes
    for p in doc["predictions"]:
        assert set(p["probabilities"]) == set(classes) and isinstance(p["labels"], list)
    assert sum(bool(p["labels"]) for p in doc["predictions"]) >= 9  # one example has no superclass


def test_cli_folder_json_csv_and_exit_codes(tmp_path: Path, ckpt: Path) -> None:
    folder = tmp_path / "batch"
    for i in range(3):
        _write(folder / "sub", f"ok{i}", seconds=10 + 5 * i, seed=i)
    short = _write(folder, "short", seconds=3)
    broken = _write(folder, "broken")
    broken.with_suffix(".dat").write_bytes(broken.with_suffix(".dat").read_bytes()[:500])

    result = _cli(str(folder), "-c", str(ckpt), "--json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert [p["record"] for p in doc["predictions"]] == [str(short)] + [
        str(folder / "sub" / f"ok{i}") for i in range(3)
    ]
    assert doc["errors"] == [{"record": str(broken), "problem": doc["errors"][0]["problem"]}]
    assert "truncated broken.dat" in doc["errors"][0]["problem"]
    assert doc["predictions"][0]["padded"] and doc["predictions"][0]["warnings"]
    assert doc["class_names"] == list(SUPERCLASSES) and doc["aggregate"] == "mean"
    assert set(doc["predictions"][1]["probabilities"]) == set(SUPERCLASSES)
    assert f"error: {broken}: truncated broken.dat" in result.stderr
    assert "warning:" in result.stderr and "zero-padded" in result.stderr

    result = _cli(str(folder), "-c", str(ckpt), "--csv", "--aggregate", "max")
    assert result.exit_code == 1
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == [
        "record",
        *SUPERCLASSES,
        *(f"{c}_positive" for c in SUPERCLASSES),
        "n_windows",
        "padded",
        "warnings",
        "labels",
        "error",
    ]
    assert [r["record"] for r in rows][0] == str(broken) and "truncated" in rows[0]["error"]
    assert rows[1]["padded"] == "1" and rows[2]["n_windows"] == "1" and rows[4]["n_windows"] == "2"
    assert all(0.0 <= float(r["NORM"]) <= 1.0 for r in rows[1:])

    result = _cli(str(folder), "-c", str(ckpt))  # the table: one row per record, failures listed
    assert result.exit_code == 1
    for name in ("short", "ok0", "ok1", "ok2", "broken"):
        assert name in result.stdout
    assert "scored 4 of 5 records; 1 failed" in result.stderr

    good = [str(folder / "sub" / f"ok{i}") for i in range(3)]
    assert _cli(*good, "-c", str(ckpt)).exit_code == 0


def test_cli_json_and_csv_together(tmp_path: Path, ckpt: Path) -> None:
    result = _cli(str(_write(tmp_path)), "-c", str(ckpt), "--json", "--csv")
    assert result.exit_code == 2 and "cannot be used together" in result.stderr


def _break(stem: Path, how: str) -> None:
    hea, dat = stem.with_suffix(".hea"), stem.with_suffix(".dat")
    if how == "missing .dat":
        dat.unlink()
    elif how == "truncated .dat":
        dat.write_bytes(dat.read_bytes()[:1000])
    elif how == "corrupt header":
        hea.write_text("rec twelve 100 1000\n")
    elif how == "NaN samples":
        raw = np.fromfile(dat, dtype="<i2").reshape(-1, 12)
        raw[100:105, 4] = -32768
        raw.tofile(dat)
    elif how == "zero-length":
        lines = ["rec 12 100 0"] + [f"rec.dat 16 1000/mV 16 0 0 0 0 {lead}" for lead in LEADS]
        hea.write_text("\n".join(lines) + "\n")
        dat.write_bytes(b"")
    elif how == "missing leads":
        text = hea.read_text().replace(" V4\n", " RESP\n")
        hea.write_text(text)


BAD_RECORDS = {
    "missing .dat": "signal file rec.dat not found",
    "truncated .dat": "truncated rec.dat",
    "corrupt header": "corrupt header",
    "NaN samples": r"5 missing \(NaN\) samples \(lead AVL: 5\)",
    "zero-length": "record has no samples",
    "missing leads": r"missing lead\(s\) V4",
}


@pytest.mark.parametrize("how", list(BAD_RECORDS))
def test_cli_bad_record_alone_and_in_a_folder(tmp_path: Path, ckpt: Path, how: str) -> None:
    import re

    folder = tmp_path / "recs"
    stem = _write(folder, "rec")
    _write(folder, "zgood", seed=1)
    _break(stem, how)
    result = _cli(str(stem), "-c", str(ckpt))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {stem}: "), result.stderr
    assert re.search(BAD_RECORDS[how], lines[0]) and "Traceback" not in result.output
    assert result.stdout == ""

    result = _cli(str(folder), "-c", str(ckpt))
    assert result.exit_code == 1, result.output
    assert "zgood" in result.stdout and re.search(BAD_RECORDS[how], result.stderr)


def test_cli_all_records_failing_exits_2(tmp_path: Path, ckpt: Path) -> None:
    for name in ("a", "b"):
        _write(tmp_path, name).with_suffix(".dat").unlink()
    result = _cli(str(tmp_path), "-c", str(ckpt))
    assert result.exit_code == 2
    assert result.stderr.count("not found") == 2


def test_cli_no_such_record(tmp_path: Path, ckpt: Path) -> None:
    result = _cli(str(tmp_path / "nope"), "-c", str(ckpt))
    assert result.exit_code == 2 and "no such record" in result.stderr


@pytest.mark.parametrize("what", ["pickled", "not ours", "encoder", "corrupt weights"])
def test_cli_bad_checkpoint(tmp_path: Path, ckpt: Path, what: str) -> None:
    stem = _write(tmp_path)
    path = tmp_path / "ck" / "model.safetensors"
    path.parent.mkdir()
    if what == "pickled":
        path = path.with_suffix(".pt")
        torch.save(ECGClassifier.build("cnn1d", 5, width=4), path)
        expected = "sidecar model.json is missing"
    elif what == "not ours":
        path.write_bytes(b"\x00" * 64)
        path.with_suffix(".json").write_text('{"hello": 1}')
        expected = "not an ecgcli checkpoint"
    elif what == "encoder":
        from ecgcli.models import build_encoder

        enc = build_encoder("cnn1d", width=4)
        save_checkpoint(path, enc, checkpoint_meta("encoder", architecture={"encoder": "cnn1d"}))
        expected = "not a classifier"
    else:
        path.write_bytes(b"garbage, maybe a pickle")
        path.with_suffix(".json").write_text(ckpt.with_suffix(".json").read_text())
        expected = "weights are corrupt or not safetensors"
    result = _cli(str(stem), "-c", str(path))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and expected in lines[0]


def test_predict_help_and_startup_stay_light(tmp_path: Path, ckpt: Path) -> None:
    """`ecg predict --help` never imports torch; a prediction never imports pandas or sklearn."""
    stem = _write(tmp_path)
    code = (
        "import sys\n"
        "from ecgcli.cli.app import app\n"
        "def run(args):\n"
        "    try:\n        app(args, prog_name='ecg')\n    except SystemExit as e:\n        return e.code\n"
        "run(['predict', '--help'])\n"
        "heavy = lambda names: sorted(m for m in names if m in sys.modules)\n"
        "print('HELP', heavy(('torch', 'pandas', 'sklearn', 'scipy.signal')))\n"
        f"code = run(['predict', {str(stem)!r}, '-c', {str(ckpt)!r}, '--json'])\n"
        "print('RUN', code, heavy(('pandas', 'sklearn', 'scipy.signal')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HELP []" in out.stdout
    assert "RUN 0 []" in out.stdout, out.stdout + out.stderr


def _nan_copy(ckpt: Path, dest: Path) -> Path:
    """``ckpt`` re-saved with one NaN weight (a run that diverged before it was saved)."""
    from ecgcli.storage.checkpoint import load_tensors, save_tensors

    tensors, meta = load_tensors(ckpt)
    name = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")
    save_tensors(dest, tensors, {k: v for k, v in meta.items() if k != "save_id"})
    return dest


def test_nan_checkpoint_is_refused_in_every_output_format(tmp_path: Path, ckpt: Path) -> None:
    bad = _nan_copy(ckpt, tmp_path / "nan" / "model.safetensors")
    record = str(_write(tmp_path))
    for fmt in ([], ["--json"], ["--csv"]):
        result = _cli(record, "-c", str(bad), *fmt)
        assert result.exit_code == 2, result.output
        (line,) = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert line.startswith(f"error: {bad}: tensor ") and "NaN or infinite" in line
        if fmt == ["--json"]:
            doc = json.loads(result.stdout)  # valid JSON, no NaN
            assert doc["predictions"] == [] and doc["error"] == line[7:] and doc["exit_code"] == 2
            assert doc["errors"] == [{"record": record, "problem": line[7:]}]
        elif fmt == ["--csv"]:
            rows = list(csv.reader(io.StringIO(result.stdout)))  # the columns the sidecar names
            assert rows[0][:2] == ["record", "NORM"] and rows[0][-1] == "error" and "warnings" in rows[0]
            assert rows[1][0] == record and rows[1][-1] == line[7:] and len(rows) == 2
        else:
            assert result.stdout == ""


def test_json_and_csv_keep_their_shape_when_a_record_is_missing_or_nothing_runs(
    tmp_path: Path, ckpt: Path
) -> None:
    """A missing record is that record's failure (its path filled), in the same header as a
    scored one; a command that fails as a whole still prints its document's shape."""
    good = _write(tmp_path)
    missing = tmp_path / "missing.hea"
    result = _cli(str(missing), str(good), "-c", str(ckpt), "--json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["checkpoint"] == str(ckpt) and doc["error"] is None and doc["exit_code"] == 1
    assert [p["record"] for p in doc["predictions"]] == [str(good)]
    ((error,),) = [doc["errors"]]
    assert error["record"] == str(missing) and "no such record" in error["problem"]
    assert f"error: {missing}: no such record" in result.stderr

    scored = _cli(str(good), "-c", str(ckpt), "--csv")
    result = _cli(str(missing), str(good), "-c", str(ckpt), "--csv")
    assert result.exit_code == 1
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == next(csv.reader(io.StringIO(scored.stdout)))  # the same header
    assert rows[1][0] == str(missing) and "no such record" in rows[1][-1] and rows[2][0] == str(good)

    result = _cli(str(missing), "-c", str(ckpt), "--csv")  # the only record: exit 2, same header
    assert result.exit_code == 2
    assert list(csv.reader(io.StringIO(result.stdout)))[0] == rows[0]

    result = _cli(str(good), "-c", str(tmp_path / "none.safetensors"), "--json")
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert "checkpoint not found" in doc["error"] and doc["exit_code"] == 2 and doc["predictions"] == []
    assert doc["errors"] == [{"record": str(good), "problem": doc["error"]}]
    result = _cli(str(good), "-c", str(tmp_path / "none.safetensors"), "--csv")
    assert result.exit_code == 2
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0][0] == "record" and rows[0][-1] == "error" and len(rows) == 2
    assert rows[1][0] == str(good) and "checkpoint not found" in rows[1][-1]
    result = _cli(str(good), "-c", str(ckpt), "--json", "--csv")
    assert result.exit_code == 2 and "cannot be used together" in json.loads(result.stdout)["error"]


# --- edited sidecars: thresholds and temperatures must be what tuning could have produced -------


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        (
            "thresholds",
            [7.5, -3.0, 0.3, 0.6, 0.45],
            r"threshold of NORM is 7\.5; thresholds are probabilities",
        ),
        ("thresholds", [0.5, 0.4, float("nan"), 0.6, 0.45], "threshold of STTC is nan"),
        ("thresholds", ["0.5", 0.4, 0.3, 0.6, 0.45], "thresholds are not numbers"),
        ("thresholds", [True, 0.4, 0.3, 0.6, 0.45], "thresholds are not numbers"),
        ("temperature", [1.0, 0.0, 1.0, 1.0, 1.0], "temperature of MI is 0"),
        ("temperature", [1.0, 1.0, float("inf"), 1.0, 1.0], "temperature of STTC is inf"),
        ("temperature", ["2", 1.0, 1.0, 1.0, 1.0], "temperature is not numbers"),
    ],
)
def test_edited_thresholds_and_temperatures_are_refused(
    tmp_path: Path, field: str, value: list, expected: str
) -> None:
    bad = _make_checkpoint(tmp_path / "ck" / "model.safetensors", **{field: value})
    with pytest.raises(CheckpointError, match=expected):
        Predictor.from_checkpoint(bad)
    result = _cli(str(_write(tmp_path)), "-c", str(bad))
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {bad}: ") and "Traceback" not in result.output


def test_onnx_file_without_runtime_onnx_suggests_it(tmp_path: Path) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"\x08\x07" + b"\x00" * 30)
    result = _cli(str(_write(tmp_path)), "-c", str(fake), "--runtime", "torch")
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert "--runtime onnx" in line and "sidecar" not in line


# --- flat and very short records: a warning, or a per-record error, never a confident score ------


def _write_digital(folder: Path, name: str, digital: np.ndarray, fs: int = 100) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_record(folder / name, digital.astype(np.int16), list(LEADS), fs)
    return folder / name


def test_flat_and_too_short_records_in_text_json_and_csv(tmp_path: Path, ckpt: Path) -> None:
    folder = tmp_path / "recs"
    good = _write(folder, "a_good")
    partly = _write(folder, "b_partly_flat", seed=2)
    raw = np.fromfile(partly.with_suffix(".dat"), dtype="<i2").reshape(-1, 12)
    raw[:, [9, 10]] = 7  # V4 and V5 constant (a lead off)
    raw.tofile(partly.with_suffix(".dat"))
    flat = _write_digital(folder, "c_all_zero", np.zeros((1000, 12)))
    one = _write_digital(folder, "d_one_sample", np.full((1, 12), 100))
    short = _write(folder, "e_two_seconds", seconds=2)
    ok_short = _write(folder, "f_three_seconds", seconds=3)

    result = _cli(str(flat), "-c", str(ckpt))  # alone: one line, exit 2, no score
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {flat}: ") and "every lead is flat" in line
    result = _cli(str(one), "-c", str(ckpt))
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {one}: ") and "too short" in line and "2.5 s" in line

    result = _cli(str(folder), "-c", str(ckpt), "--json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    scored = {p["record"]: p for p in doc["predictions"]}
    assert list(scored) == [str(good), str(partly), str(ok_short)]
    assert scored[str(good)]["warnings"] == []
    (warning,) = scored[str(partly)]["warnings"]
    assert "flat" in warning and "V4, V5" in warning
    assert f"warning: {warning}" in " ".join(result.stderr.split())
    errors = {e["record"]: e["problem"] for e in doc["errors"]}
    assert list(errors) == [str(flat), str(one), str(short)]
    assert "every lead is flat" in errors[str(flat)] and "too short" in errors[str(one)]
    assert "2 s long" in errors[str(short)]

    result = _cli(str(folder), "-c", str(ckpt), "--csv")
    assert result.exit_code == 1
    rows = {r["record"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert "V4, V5" in rows[str(partly)]["warnings"] and rows[str(partly)]["error"] == ""
    assert rows[str(flat)]["NORM"] == "" and "every lead is flat" in rows[str(flat)]["error"]
    assert "too short" in rows[str(one)]["error"] and "too short" in rows[str(short)]["error"]

    result = _cli(str(folder), "-c", str(ckpt))  # the table
    assert result.exit_code == 1
    assert "scored 3 of 6 records; 3 failed" in result.stderr
    assert "every lead is flat" in result.stderr and "too short" in result.stderr


def test_minimum_length_is_the_model_window_when_shorter_than_2_5_s(tmp_path: Path) -> None:
    small = Predictor.from_checkpoint(
        _make_checkpoint(tmp_path / "w2" / "model.safetensors", signal_length=200)
    )
    assert small.predict_one(_write(tmp_path, "r22", seconds=2.2)).n_windows == 2  # 2 s window: fine
    (failure,) = small.predict([_write(tmp_path, "r15", seconds=1.5)])
    assert isinstance(failure, Failure) and "at least 2 s" in failure.problem


def test_a_many_class_model_shows_statements_not_a_column_per_class(tmp_path: Path) -> None:
    """PTB-XL's 71 statements cannot be 71 columns: above 8 classes the tables list the classes
    at or above threshold (and, for one record, the 5 most probable of the rest); --json keeps all."""
    names = [f"S{k:02d}" for k in range(12)]
    torch.manual_seed(0)
    model = ECGClassifier.build("cnn1d", n_classes=12, width=8)
    fields = {
        "architecture": model.architecture(), "class_names": names, "leads": list(LEADS),
        "sampling_rate": 100, "signal_length": 1000, "normalisation": NORM,
        "thresholds": [0.001, 0.001] + [0.999] * 10,  # S00 and S01 always above, the rest never
    }  # fmt: skip
    ckpt = save_checkpoint(
        tmp_path / "m" / "model.safetensors", model.eval(), checkpoint_meta("classifier", **fields)
    )
    a, b = _write(tmp_path / "recs", "a"), _write(tmp_path / "recs", "b", seed=1)
    env = {"COLUMNS": "200"}
    one = _cli(str(a.with_suffix(".hea")), "-c", str(ckpt), env=env)
    assert one.exit_code == 0, one.output
    rows = re.findall(r"^\W+(S\d\d) ", one.stdout, flags=re.MULTILINE)
    assert rows[:2] in (["S00", "S01"], ["S01", "S00"]) and len(rows) == 2 + 5, one.stdout
    assert "12 classes" in one.stdout and "5 more not shown" in one.stdout
    doc = json.loads(_cli(str(a.with_suffix(".hea")), "-c", str(ckpt), "--json").stdout)
    assert len(doc["predictions"][0]["probabilities"]) == 12
    many = _cli(str(a.with_suffix(".hea")), str(b.with_suffix(".hea")), "-c", str(ckpt), env=env)
    assert many.exit_code == 0, many.output
    assert "statements (probability)" in many.stdout and "S11" not in many.stdout
    assert len(re.findall(r"S0[01] 0\.\d\d, S0[01] 0\.\d\d", many.stdout)) == 2


def test_a_called_class_with_a_tiny_probability_reads_below_one_percent_not_zero() -> None:
    from ecgcli.cli.predict_view import _probability

    assert [_probability(p) for p in (0.003, 0.0049, 0.005, 0.4)] == ["<0.01", "<0.01", "0.01", "0.40"]
