"""Reading WFDB records: our fast path agrees with wfdb, the fallback handles the rest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgcli import LEADS
from ecgcli.data.records import (
    canonical_lead,
    lead_order,
    read_header,
    read_record,
    read_standard_record,
)
from ecgcli.data.synth import write_record
from ecgcli.errors import RecordError


def _write(
    tmp_path: Path,
    name: str = "rec",
    names: list[str] | None = None,
    fs: int = 100,
    n: int = 1000,
    fmt: str = "16",
    units: str = "mV",
    gain: float = 1000.0,
    seed: int = 0,
) -> tuple[Path, np.ndarray]:
    names = names or list(LEADS)
    rng = np.random.default_rng(seed)
    digital = rng.integers(-2000, 2000, size=(n, len(names))).astype(np.int16)
    write_record(tmp_path / name, digital, names, fs, units=units, gain=gain, baseline=5, fmt=fmt)
    return tmp_path / name, digital


def test_fast_path_matches_wfdb(tmp_path: Path) -> None:
    stem, _ = _write(tmp_path)
    ours, header = read_record(stem)
    theirs, _ = wfdb.rdsamp(str(stem))
    assert header.fast_path
    np.testing.assert_allclose(ours, theirs.T, atol=1e-6)


def test_other_format_goes_through_wfdb(tmp_path: Path) -> None:
    stem, _ = _write(tmp_path, fmt="212")
    ours, header = read_record(stem)
    theirs, _ = wfdb.rdsamp(str(stem))
    assert not read_header(stem.with_suffix(".hea")).fast_path
    np.testing.assert_allclose(ours, theirs.T, atol=1e-6)


def test_microvolts_are_converted(tmp_path: Path) -> None:
    stem, digital = _write(tmp_path, units="uV", gain=1.0)
    adc, gain_mv, baseline, _ = read_standard_record(stem, 100, 1000)
    mv = (adc - baseline[:, None]) / gain_mv[:, None]
    np.testing.assert_allclose(mv, (digital.T.astype(float) - 5) / 1000.0, atol=1e-9)


def test_leads_are_reordered_and_extra_channels_ignored(tmp_path: Path) -> None:
    names = ["v6", "aVR", "I", "ii", "III", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "RESP"]
    stem, digital = _write(tmp_path, names=names)
    adc, _, _, _ = read_standard_record(stem, 100, 1000)
    assert np.array_equal(adc[0], digital[:, 2])  # I
    assert np.array_equal(adc[3], digital[:, 1])  # AVR
    assert np.array_equal(adc[11], digital[:, 0])  # V6


@pytest.mark.parametrize(
    ("name", "lead"),
    [("aVR", "AVR"), ("avl", "AVL"), ("Lead II", "II"), ("V6", "V6"), ("RESP", None)],
)
def test_canonical_lead_names(name: str, lead: str | None) -> None:
    assert canonical_lead(name) == lead


def test_missing_leads_are_named(tmp_path: Path) -> None:
    stem, _ = _write(tmp_path, names=list(LEADS[:11]))
    with pytest.raises(RecordError, match="has 11 leads, expected 12"):
        read_standard_record(stem, 100, 1000)
    with pytest.raises(RecordError, match="missing lead.*V6"):
        lead_order(list(LEADS[:11]), "rec")


def test_wrong_rate_and_length(tmp_path: Path) -> None:
    stem, _ = _write(tmp_path, fs=500, n=5000)
    with pytest.raises(RecordError, match="sampled at 500 Hz, expected 100 Hz"):
        read_standard_record(stem, 100, 1000)
    stem, _ = _write(tmp_path, name="short", n=900)
    with pytest.raises(RecordError, match="has 900 samples, expected 1000"):
        read_standard_record(stem, 100, 1000)


def test_truncated_and_missing_dat(tmp_path: Path) -> None:
    stem, _ = _write(tmp_path)
    dat = stem.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:10000])
    with pytest.raises(RecordError, match=r"truncated rec\.dat: 10000 bytes, header needs 24000"):
        read_record(stem)
    dat.unlink()
    with pytest.raises(RecordError, match="rec.dat not found"):
        read_record(stem)


def test_corrupt_and_missing_header(tmp_path: Path) -> None:
    stem, _ = _write(tmp_path)
    stem.with_suffix(".hea").write_text("rec twelve 100 1000\n")
    with pytest.raises(RecordError, match="corrupt header"):
        read_record(stem)
    with pytest.raises(RecordError, match="header .* not found"):
        read_record(tmp_path / "absent")


def test_missing_samples_become_nan(tmp_path: Path) -> None:
    stem, _ = _write(tmp_path)
    dat = stem.with_suffix(".dat")
    raw = np.fromfile(dat, dtype="<i2")
    raw[12 * 10 + 3] = -32768  # sample 10 of lead AVR
    raw.tofile(dat)
    mv, _ = read_record(stem)
    assert np.isnan(mv[3, 10]) and np.isfinite(np.delete(mv.ravel(), 3 * 1000 + 10)).all()
