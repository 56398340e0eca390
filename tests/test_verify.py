"""``ecg data verify``: verdicts and exit codes on good, broken and foreign folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from ecgcli import LEADS
from ecgcli.cli.app import app
from ecgcli.data.synth import write_record
from ecgcli.data.verify import verify_folder

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, ["data", "verify", *args])


def test_clean_synthetic_folder_passes(synth_root: Path) -> None:
    result = _run("--data-root", str(synth_root), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "clean" and report["n_records"] == 300
    assert sum(f["records"] for f in report["folds"].values()) == 300
    table = _run("--data-root", str(synth_root))
    assert table.exit_code == 0 and "clean: 300 records checked" in table.stdout


def _rewrite(stem: Path, names: list[str], fs: int, n: int) -> None:
    digital = np.zeros((n, len(names)), dtype=np.int16) + np.arange(len(names), dtype=np.int16)
    digital[::7] += 50
    write_record(stem, digital, names, fs)


def test_broken_records_are_reported(synth_copy: Path) -> None:
    db = pd.read_csv(synth_copy / "ptbxl_database.csv")
    stems = [synth_copy / p for p in db["filename_lr"]]
    stems[0].with_suffix(".dat").unlink()  # listed but absent
    dat = stems[1].with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:5000])  # truncated
    _rewrite(stems[2], list(LEADS[:11]), 100, 1000)  # 11 leads
    _rewrite(stems[3], list(LEADS), 500, 1000)  # another rate
    raw = np.fromfile(stems[4].with_suffix(".dat"), dtype="<i2")
    raw[12 * 5 : 12 * 5 + 12 : 12] = -32768  # a missing sample in lead I
    raw.tofile(stems[4].with_suffix(".dat"))
    raw = np.fromfile(stems[5].with_suffix(".dat"), dtype="<i2").reshape(-1, 12)
    raw[:, 10] = 17  # flat V5: a warning only
    raw.tofile(stems[5].with_suffix(".dat"))

    result = _run("--data-root", str(synth_copy), "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    problems = {f["ecg_id"]: f["message"] for f in report["findings"] if f["severity"] == "problem"}
    assert "signal file 00001_lr.dat not found" in problems[1]
    assert "truncated" in problems[2]
    assert "11 leads" in problems[3]
    assert "sampled at 500 Hz" in problems[4]
    assert "missing (NaN) samples in lead I" in problems[5]
    assert 6 not in problems
    warnings = [f for f in report["findings"] if f["severity"] == "warning"]
    assert any(f["ecg_id"] == 6 and "V5" in f["message"] for f in warnings)
    assert report["n_problems"] == 5

    table = _run("--data-root", str(synth_copy), "--show", "2")
    assert table.exit_code == 1
    assert "5 problems" in table.stdout and "… and 3 more" in table.stdout


def test_not_ptbxl_exits_2(tmp_path: Path) -> None:
    result = _run("--data-root", str(tmp_path))
    assert result.exit_code == 2
    assert "not a usable PTB-XL folder" in result.output
    assert "Traceback" not in result.output
    (tmp_path / "ptbxl_database.csv").write_text('ecg_id,foo\n1,"unterminated\n')
    (tmp_path / "scp_statements.csv").write_text("a,b\n")
    result = _run("--data-root", str(tmp_path), "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["status"] == "not_ptbxl"


def test_folds_and_class_counts(synth_root: Path) -> None:
    report = verify_folder(synth_root)
    assert report.ok and report.n_records == 300
    assert report.n_labelled == sum(f["labelled"] for f in report.folds.values())
    for cls, n in report.class_counts.items():
        assert n == sum(f[cls] for f in report.folds.values())


def test_task_counts_classes_per_fold(synth_root: Path) -> None:
    from ecgcli.data.ptbxl import load_ptbxl

    result = _run("--data-root", str(synth_root), "--task", "rhythm", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    ds = load_ptbxl(synth_root, task="rhythm")
    assert report["task"] == "rhythm" and list(report["class_counts"]) == list(ds.class_names)
    assert report["class_counts"] == dict(zip(ds.class_names, ds.labels.sum(axis=0).tolist(), strict=True))
    assert (
        report["n_labelled"] == int(ds.labelled.sum()) == sum(f["labelled"] for f in report["folds"].values())
    )
    for cls, n in report["class_counts"].items():
        assert n == sum(f[cls] for f in report["folds"].values())
    table = _run("--data-root", str(synth_root), "--task", "all")
    assert table.exit_code == 0, table.output
    n_all = len(load_ptbxl(synth_root, task="all").class_names)
    assert f"task all: {n_all} classes" in table.stdout and "SR " in table.stdout


def test_unknown_task_is_one_line_exit_2(synth_root: Path) -> None:
    result = _run("--data-root", str(synth_root), "--task", "rhytm")
    assert result.exit_code == 2
    assert (
        "unknown task 'rhytm'; choose one of superdiagnostic, subdiagnostic, diagnostic, form, rhythm, all"
        in (result.output)
    )
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_record_files_linked_outside_the_root_are_problems(synth_copy: Path, tmp_path: Path) -> None:
    """``../`` in the table is refused; a symlink must not be a way around that."""
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = synth_copy / "records100" / "00000"
    dat = folder / "00001_lr.dat"
    moved = outside / dat.name
    dat.rename(moved)
    dat.symlink_to(moved)  # one record's signal file lies outside
    inside = folder / "00002_lr.hea"
    kept = synth_copy / "00002_lr.hea"
    inside.rename(kept)
    inside.symlink_to(kept)  # a link that stays inside the root is fine
    result = _run("--data-root", str(synth_copy), "--json")
    assert result.exit_code == 1, result.output
    problems = [f for f in json.loads(result.stdout)["findings"] if f["severity"] == "problem"]
    assert [(f["ecg_id"], f["message"]) for f in problems] == [
        (1, f"00001_lr.dat links outside the data root (to {moved})")
    ]

    # the folder of the records, linked out whole
    away = outside / "00000"
    folder.rename(away)
    folder.symlink_to(away, target_is_directory=True)
    report = verify_folder(synth_copy)
    assert len(report.problems) == 300 and all("outside the data root" in f.message for f in report.problems)


def test_the_cache_refuses_a_record_linked_outside_the_root(synth_copy: Path, tmp_path: Path) -> None:
    import pytest

    from ecgcli.data.cache import ensure_cache
    from ecgcli.data.ptbxl import load_ptbxl
    from ecgcli.errors import DataError

    dat = synth_copy / "records100" / "00000" / "00003_lr.dat"
    moved = tmp_path / dat.name
    dat.rename(moved)
    dat.symlink_to(moved)
    with pytest.raises(DataError, match="00003_lr.dat links outside the data root"):
        ensure_cache(load_ptbxl(synth_copy), tmp_path / "cache")
