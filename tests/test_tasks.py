"""The six benchmark tasks: label aggregation, class order, sampling with many labels, absences."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from ecgcli import SUPERCLASSES, TASKS
from ecgcli.data.ptbxl import PTBXL, Split, load_ptbxl, read_statements
from ecgcli.data.sampling import sample_rarest_first
from ecgcli.data.tasks import CodeTable, check_task, task_labels
from ecgcli.errors import ConfigError, DataError

CODES = [
    {"NORM": 100.0, "SR": 0.0},
    {"IMI": 15.0, "ASMI": 50.0, "NDT": 0.0, "AFIB": 100.0},  # NDT is diagnostic and form
    {"SR": 0.0, "LVOLT": 0.0},  # no diagnostic statement
    {"ILMI": 100.0, "IMI": 80.0, "1AVB": 50.0, "SBRAD": 0.0},  # two codes, one subclass
    {"PACE": 100.0},
]


def _labels(task: str, synth_root: Path, min_likelihood: float = 0.0) -> dict[str, list[int]]:
    y, names = task_labels(CodeTable.from_dicts(CODES), read_statements(synth_root), task, min_likelihood)
    return {name: y[:, j].tolist() for j, name in enumerate(names)}


def test_each_task_by_hand(synth_root: Path) -> None:
    assert _labels("superdiagnostic", synth_root) == {
        "NORM": [1, 0, 0, 0, 0],
        "MI": [0, 1, 0, 1, 0],
        "STTC": [0, 1, 0, 0, 0],
        "HYP": [0, 0, 0, 0, 0],  # all five columns, in the fixed order, even when absent
        "CD": [0, 0, 0, 1, 0],
    }
    assert _labels("subdiagnostic", synth_root) == {  # sorted, only the classes that occur
        "AMI": [0, 1, 0, 0, 0],
        "IMI": [0, 1, 0, 1, 0],
        "NORM": [1, 0, 0, 0, 0],
        "STTC": [0, 1, 0, 0, 0],
        "_AVB": [0, 0, 0, 1, 0],
    }
    assert list(_labels("diagnostic", synth_root)) == ["1AVB", "ASMI", "ILMI", "IMI", "NDT", "NORM"]
    assert _labels("form", synth_root) == {"LVOLT": [0, 0, 1, 0, 0], "NDT": [0, 1, 0, 0, 0]}
    assert _labels("rhythm", synth_root) == {
        "AFIB": [0, 1, 0, 0, 0],
        "PACE": [0, 0, 0, 0, 1],
        "SBRAD": [0, 0, 0, 1, 0],
        "SR": [1, 0, 1, 0, 0],
    }
    every = _labels("all", synth_root)
    assert len(every) == 11 and every["AFIB"] == [0, 1, 0, 0, 0]
    assert list(every) == sorted(every)
    # a likelihood bar drops uncertain statements (the benchmark keeps them all)
    assert _labels("diagnostic", synth_root, 50.0)["IMI"] == [0, 0, 0, 1, 0]


def test_unknown_task_lists_the_valid_ones(synth_root: Path) -> None:
    with pytest.raises(ConfigError, match="unknown task 'diag'; choose one of superdiagnostic, subdiag"):
        check_task("diag")
    with pytest.raises(ConfigError, match="unknown task"):
        load_ptbxl(synth_root, task="diag")


def test_with_task_matches_loading_the_task(synth_root: Path) -> None:
    base = load_ptbxl(synth_root)
    assert base.task == "superdiagnostic" and base.class_names == SUPERCLASSES
    for task in TASKS:
        direct = load_ptbxl(synth_root, task=task)
        relabelled = base.with_task(task)
        assert direct.class_names == relabelled.class_names
        np.testing.assert_array_equal(direct.labels, relabelled.labels)
        assert direct.labels.shape == (len(base), len(direct.class_names))


def test_task_without_records_loads_but_cannot_split(synth_copy: Path) -> None:
    import pandas as pd

    db_path = synth_copy / "ptbxl_database.csv"
    db = pd.read_csv(db_path)
    db["scp_codes"] = "{'NORM': 100.0}"
    db.to_csv(db_path, index=False)
    ds = load_ptbxl(synth_copy, task="rhythm")  # pretraining can still use the records
    assert ds.class_names == () and not ds.labelled.any()
    with pytest.raises(DataError, match="the train split has no labelled records for task rhythm"):
        ds.split(0.1, seed=0)
    statements = pd.read_csv(synth_copy / "scp_statements.csv")
    statements["rhythm"] = 0
    statements.to_csv(synth_copy / "scp_statements.csv", index=False)
    with pytest.raises(DataError, match="scp_statements.csv: no rhythm statements"):
        load_ptbxl(synth_copy, task="rhythm")


def _many_labels(n: int, n_classes: int, seed: int) -> np.ndarray:
    """Zipf-like prevalences from 40% down to a handful of records, with co-occurrence."""
    rng = np.random.default_rng(seed)
    p = 0.4 / (1 + np.arange(n_classes)) ** 1.3
    y = (rng.random((n, n_classes)) < p).astype(np.uint8)
    y[y.sum(axis=1) == 0, 0] = 1  # every pool row belongs to the task
    for c in range(n_classes):
        if not y[:, c].any():
            y[rng.integers(n), c] = 1
    return y


@pytest.mark.parametrize("fraction", [0.01, 0.05, 0.1, 0.5])
def test_rarest_first_guarantees(fraction: float) -> None:
    y = _many_labels(4000, 71, seed=1)
    pool = np.arange(0, 8000, 2)  # row positions need not be contiguous
    labels = np.zeros((8000, 71), dtype=np.uint8)
    labels[pool] = y
    a = sample_rarest_first(labels, pool, fraction, seed=5)
    assert np.array_equal(a, sample_rarest_first(labels, pool, fraction, seed=5))
    assert not np.array_equal(a, sample_rarest_first(labels, pool, fraction, seed=6))
    assert set(a.tolist()) <= set(pool.tolist()) and len(np.unique(a)) == len(a)
    counts, got = y.sum(axis=0), labels[a].sum(axis=0)
    assert (got >= 1).all()  # every class of the pool is in the sample
    target = round(fraction * len(pool))
    if fraction >= 0.05:
        assert len(a) == target  # exact size
    else:  # 40 rows cannot hold 71 classes: more rows, each one some class's only record
        assert len(a) > target
        assert (labels[a] & (got == 1)).any(axis=1).all()
    # each class keeps about its share: within 3 records of round(fraction x count), or 1
    assert (np.abs(got - np.maximum(1, np.round(fraction * counts))) <= 3).all()


def test_rarest_first_covers_every_class_even_if_that_needs_more_rows() -> None:
    y = np.eye(20, dtype=np.uint8).repeat(5, axis=0)  # 20 disjoint classes of 5 records
    chosen = sample_rarest_first(y, np.arange(100), 0.05, seed=0)  # target 5 rows
    assert len(chosen) == 20 and (y[chosen].sum(axis=0) == 1).all()


def test_rarest_first_at_full_fraction_and_bad_fraction() -> None:
    y = _many_labels(50, 5, 0)
    assert np.array_equal(sample_rarest_first(y, np.arange(50), 1.0, 0), np.arange(50))
    with pytest.raises(ConfigError, match=r"label fraction must be in \(0, 1\]"):
        sample_rarest_first(y, np.arange(50), 1.5, 0)


def test_split_uses_the_task_sampler_and_keeps_rare_classes(synth_root: Path) -> None:
    ds = load_ptbxl(synth_root, task="diagnostic")
    split = ds.split(0.1, seed=3)
    assert np.array_equal(split.train, ds.split(0.1, seed=3).train)
    assert ds.labelled[split.train].all()
    pool = ds.fold_rows(tuple(range(1, 9)))
    assert len(split.train) >= round(0.1 * len(pool))
    present = ds.labels[pool].any(axis=0)
    assert (ds.labels[split.train].any(axis=0) >= present).all()


def _fake(labels: np.ndarray, folds: np.ndarray, names: tuple[str, ...]) -> PTBXL:
    n = len(labels)
    return PTBXL(Path("x"), 100, np.arange(n), folds, labels, [], [], "rhythm", names)


def test_absent_class_is_one_line_naming_it() -> None:
    labels = np.array([[1, 0, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]], dtype=np.uint8)
    ds = _fake(labels, np.array([1, 1, 9, 10]), ("SR", "STACH", "AFIB"))
    ok = Split(np.array([0, 1]), np.array([2]), np.array([3]), np.arange(2), 0.5, 7)
    with pytest.raises(DataError) as err:
        ds.check_classes(ok)
    assert str(err.value) == "task rhythm: classes STACH, AFIB have no record in fold 9 (validation)"
    labels[2] = 1
    ds.check_classes(ok)  # every class everywhere: no error
    thin = Split(np.array([0]), np.array([2]), np.array([3]), np.arange(2), 0.1, 7)
    with pytest.raises(
        DataError,
        match=r"^task rhythm: class STACH has no record in the labelled "
        r"training fraction \(10% of folds 1-8, seed 7\)$",
    ):
        ds.check_classes(thin)
    labels[3, 0] = 0
    with pytest.raises(DataError, match=r"class SR has no record in fold 10 \(test\)$"):
        ds.check_classes(ok)


# Real PTB-XL tables (skipped without ../shared/ptbxl): the benchmark's class counts, and
# superdiagnostic splits identical to ecgcli's before tasks existed (hashes taken on main).
REAL_CLASSES = {
    "all": 71,
    "diagnostic": 44,
    "subdiagnostic": 23,
    "superdiagnostic": 5,
    "form": 19,
    "rhythm": 12,
}
REAL_RECORDS = {
    "all": 21837,
    "diagnostic": 21430,
    "subdiagnostic": 21430,
    "superdiagnostic": 21430,
    "form": 8988,
    "rhythm": 21066,
}
SUPERDIAGNOSTIC_SPLITS = {
    (0.01, 0): (171, "ece930c5db9a78f4"),
    (0.01, 42): (171, "54ce5ecd81e50566"),
    (0.1, 0): (1711, "d4dfc1941acb1f55"),
    (0.1, 1): (1711, "4671331b2fceec1a"),
    (0.1, 42): (1711, "1c9e8d18b36e03a6"),
    (0.5, 42): (8556, "31d09c9f8fbe3b83"),
}


@pytest.fixture(scope="module")
def real(shared_tables: Path) -> PTBXL:
    return load_ptbxl(shared_tables)


def test_real_tasks_have_the_benchmark_classes(real: PTBXL) -> None:
    for task in TASKS:
        ds = real.with_task(task)
        assert (len(ds.class_names), int(ds.labelled.sum())) == (REAL_CLASSES[task], REAL_RECORDS[task])
        split = ds.split(0.1, seed=0)
        ds.check_classes(split)  # every class in the 10% fraction, fold 9 and fold 10
    assert real.with_task("rhythm").class_names[:4] == ("AFIB", "AFLT", "BIGU", "PACE")


def test_real_superdiagnostic_splits_unchanged(real: PTBXL) -> None:
    for (fraction, seed), (n, digest) in SUPERDIAGNOSTIC_SPLITS.items():
        train = real.split(fraction, seed).train.astype(np.int64)
        assert (len(train), hashlib.sha256(train.tobytes()).hexdigest()[:16]) == (n, digest)


def test_classes_no_record_has_are_named_and_recorded(
    synth_root: Path, session_cache: Path, tmp_path: Path
) -> None:
    """The synthetic set has 5 of the 12 rhythm classes: training says which 7 it leaves out."""
    import json

    from typer.testing import CliRunner

    from ecgcli.cli.app import app

    dropped = ["AFLT", "BIGU", "PACE", "PSVT", "SVARR", "SVTAC", "TRIGU"]
    assert load_ptbxl(synth_root, task="rhythm").dropped_classes == tuple(dropped)
    assert load_ptbxl(synth_root).dropped_classes == ()
    run = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        ["train", "supervised", "--task", "rhythm", "--data-root", str(synth_root), "--device", "cpu",
         "--workers", "1", "--epochs", "1", "--width", "8", "--label-fraction", "1", "--run-dir", str(run)],
        env={"ECG_CACHE_DIR": str(session_cache)},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if "left out" in line]
    assert notes == [
        f"warning: task rhythm: 7 of its 12 classes have no record in {synth_root} and are left out, "
        f"so the model has 5: {', '.join(dropped)}"
    ]
    assert json.loads((run / "metrics.json").read_text())["data"]["dropped_classes"] == dropped
