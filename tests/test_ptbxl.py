"""The PTB-XL table layer: parsing, label aggregation, folds, labelled-fraction sampling."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecgcli import SUPERCLASSES
from ecgcli.data.ptbxl import (
    load_ptbxl,
    parse_scp_codes,
    read_statements,
    safe_record_path,
)
from ecgcli.data.sampling import sample_by_combination as sample_labelled_fraction
from ecgcli.data.tasks import CodeTable, statement_classes, task_labels
from ecgcli.errors import ConfigError, DataError


def test_parse_scp_codes_reads_dict_literal() -> None:
    assert parse_scp_codes("{'NORM': 100.0, 'SR': 0.0}", 1) == {"NORM": 100.0, "SR": 0.0}


@pytest.mark.parametrize("text", ["__import__('os').system('echo hi')", "[1, 2]", "{'A': 'x'}", "{"])
def test_parse_scp_codes_rejects_non_dicts_without_eval(text: str) -> None:
    with pytest.raises(DataError, match="ecg_id 5"):
        parse_scp_codes(text, 5)


def test_superclass_labels_by_hand(synth_root: Path) -> None:
    codes = [
        {"NORM": 100.0, "SR": 0.0},  # SR is not diagnostic
        {"IMI": 15.0, "LVH": 0.0},  # likelihood 0 still counts by default
        {"SR": 0.0},  # no superclass
        {"IMI": 100.0, "CLBBB": 50.0},
    ]
    table = read_statements(synth_root)
    y, names = task_labels(CodeTable.from_dicts(codes), table, "superdiagnostic")
    assert names == SUPERCLASSES
    assert y.tolist() == [[1, 0, 0, 0, 0], [0, 1, 0, 1, 0], [0, 0, 0, 0, 0], [0, 1, 0, 0, 1]]
    y50, _ = task_labels(CodeTable.from_dicts(codes), table, "superdiagnostic", min_likelihood=50.0)
    assert y50.tolist() == [[1, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 1, 0, 0, 1]]


@pytest.mark.parametrize("bad", ["../outside/00001_lr", "/etc/passwd", "records100/../../x"])
def test_record_path_escaping_root_is_an_error(tmp_path: Path, bad: str) -> None:
    with pytest.raises(DataError, match="escapes the data root"):
        safe_record_path(tmp_path, bad, 3)


def test_record_path_inside_root(tmp_path: Path) -> None:
    assert safe_record_path(tmp_path, "records100/00000/00001_lr", 1) == (
        tmp_path / "records100/00000/00001_lr"
    )


def test_load_synthetic_folder(synth_root: Path) -> None:
    ds = load_ptbxl(synth_root)
    assert len(ds) == 300
    assert ds.labels.shape == (300, 5)
    assert set(np.unique(ds.folds)) == set(range(1, 11))
    assert 0 < (~ds.labelled).sum() < 30  # a few records without a superclass
    split = ds.split(0.1, seed=42)
    assert ds.labelled[split.train].all() and ds.labelled[split.val].all()
    assert set(ds.folds[split.val]) == {9} and set(ds.folds[split.test]) == {10}
    assert set(ds.folds[split.train]) <= set(range(1, 9))
    assert len(split.pretrain) == (ds.folds <= 8).sum()  # unlabelled included
    assert (~ds.labelled[split.pretrain]).any()


def test_real_tables_match_published_facts(shared_tables: Path, tmp_path: Path) -> None:
    """Aggregation on the real PTB-XL tables reproduces the counts in shared/ptbxl/README.md."""
    root = tmp_path / "real"
    root.mkdir()
    for name in ("ptbxl_database.csv", "scp_statements.csv"):
        shutil.copy(shared_tables / name, root / name)
    ds = load_ptbxl(root)
    assert len(ds) == 21837
    assert ds.labelled.sum() == 21430
    counts = dict(zip(SUPERCLASSES, ds.labels.sum(axis=0).tolist(), strict=True))
    assert counts == {"NORM": 9528, "MI": 5486, "STTC": 5250, "HYP": 2655, "CD": 4907}
    split = ds.split(0.1, seed=42)
    assert (len(split.val), len(split.test), len(split.pretrain)) == (2156, 2163, 17441)
    assert len(split.train) == 1711  # 10% of the 17,111 labelled records of folds 1-8


def test_missing_and_malformed_tables(tmp_path: Path, synth_copy: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_ptbxl(tmp_path / "nope")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(DataError, match="a-file: is a file, not a folder"):
        load_ptbxl(tmp_path / "a-file")
    (synth_copy / "scp_statements.csv").unlink()
    with pytest.raises(DataError, match="scp_statements.csv"):
        load_ptbxl(synth_copy)


def test_bad_fold_and_duplicate_ids(synth_copy: Path) -> None:
    db_path = synth_copy / "ptbxl_database.csv"
    db = pd.read_csv(db_path)
    db.loc[3, "strat_fold"] = 11
    db.to_csv(db_path, index=False)
    with pytest.raises(DataError, match=r"ecg_id 4: strat_fold must be 1-10, got 11$"):  # not np.int64(11)
        load_ptbxl(synth_copy)
    db.loc[3, "strat_fold"] = 1
    db.loc[5, "ecg_id"] = 1
    db.to_csv(db_path, index=False)
    with pytest.raises(DataError, match="duplicate ecg_id 1"):
        load_ptbxl(synth_copy)


def test_missing_column(synth_copy: Path) -> None:
    db_path = synth_copy / "ptbxl_database.csv"
    pd.read_csv(db_path).drop(columns=["scp_codes"]).to_csv(db_path, index=False)
    with pytest.raises(DataError, match="missing column.*scp_codes"):
        load_ptbxl(synth_copy)


def test_statements_map_diagnostic_rows_only(synth_root: Path) -> None:
    mapping = statement_classes(read_statements(synth_root), "superdiagnostic")
    assert mapping["IMI"] == "MI" and mapping["LVH"] == "HYP" and mapping["NORM"] == "NORM"
    assert "SR" not in mapping and "AFIB" not in mapping
    assert len(mapping) == 44


def _labels(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 5)) < [0.45, 0.25, 0.25, 0.12, 0.22]).astype(np.uint8)
    y[rng.integers(n), 3] = 1  # at least one of the rarest class
    return y


def test_sampling_is_deterministic_and_stratified() -> None:
    y = _labels(5000, 0)
    pool = np.arange(5000)
    a = sample_labelled_fraction(y, pool, 0.1, seed=42)
    b = sample_labelled_fraction(y, pool, 0.1, seed=42)
    c = sample_labelled_fraction(y, pool, 0.1, seed=43)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(a) == 500
    np.testing.assert_allclose(y[a].mean(axis=0), y.mean(axis=0), atol=0.01)


def test_sampling_keeps_every_class() -> None:
    y = np.zeros((1000, 5), dtype=np.uint8)
    y[:, 0] = 1
    y[7, 3] = 1  # a single HYP record in the pool
    chosen = sample_labelled_fraction(y, np.arange(1000), 0.01, seed=1)
    assert y[chosen, 3].sum() == 1


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_sampling_rejects_bad_fraction(fraction: float) -> None:
    with pytest.raises(ConfigError, match=r"label fraction must be in \(0, 1\]"):
        sample_labelled_fraction(_labels(10, 0), np.arange(10), fraction, 0)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(20, 400),
    fraction=st.floats(0.01, 1.0),
    seed=st.integers(0, 2**31),
)
def test_sampling_properties(n: int, fraction: float, seed: int) -> None:
    y = _labels(n, seed % 1000)
    pool = np.arange(0, 2 * n, 2)  # row positions need not be contiguous
    chosen = sample_labelled_fraction(y.repeat(2, axis=0), pool, fraction, seed)
    assert set(chosen.tolist()) <= set(pool.tolist())
    assert len(np.unique(chosen)) == len(chosen)
    present = y.any(axis=0)
    assert (y.repeat(2, axis=0)[chosen].any(axis=0) >= present).all()
    expected = max(1, round(fraction * n))
    assert expected <= len(chosen) <= expected + 5
