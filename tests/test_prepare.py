"""Preparing foreign WFDB records for ``ecg predict``: finding, reading, resampling, windowing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from ecgcli import LEADS
from ecgcli.data.records import prepare_record, resolve_records, window_starts
from ecgcli.data.synth import write_record
from ecgcli.errors import ConfigError, RecordError

LOWER = ["i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6"]


def _ecg_like(n: int, fs: float, n_sig: int, seed: int = 0) -> np.ndarray:
    """(n, n_sig) mV: a 1.2 Hz 'beat' train plus 50 Hz mains, noise and a baseline offset."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    beat = np.exp(-(((t % 0.83) - 0.3) ** 2) / 2e-4)  # narrow R-like peaks
    lead_gain = rng.uniform(0.3, 1.5, n_sig)
    offset = rng.uniform(-0.5, 0.5, n_sig)
    sig = beat[:, None] * lead_gain + 0.05 * np.sin(2 * np.pi * 50 * t)[:, None] + offset
    return sig + 0.02 * rng.standard_normal((n, n_sig))


def _write(
    tmp_path: Path,
    name: str = "rec",
    fs: int = 500,
    seconds: float = 10.0,
    names: list[str] | None = None,
    units: str = "mV",
    gain: float = 1000.0,
) -> tuple[Path, np.ndarray]:
    """Write a format-16 record; return its stem and the exact physical signal (n_sig, n)."""
    names = names or list(LEADS)
    n = round(seconds * fs)
    mv = _ecg_like(n, fs, len(names))
    per_unit = {"mV": 1.0, "uV": 1e3, "V": 1e-3}[units]
    digital = np.round(mv * per_unit * gain).astype(np.int16)
    write_record(tmp_path / name, digital, names, fs, units=units, gain=gain)
    return tmp_path / name, (digital / (per_unit * gain)).T


def test_500hz_lowercase_leads_with_extra_channels(tmp_path: Path) -> None:
    names = ["resp", *LOWER[6:], "pleth", *LOWER[:6], "abp"]  # extras and a shuffled order
    stem, phys = _write(tmp_path, fs=500, seconds=30, names=names)
    rec = prepare_record(stem, fs=100, window=1000)
    assert rec.windows.shape == (3, 12, 1000) and rec.windows.dtype == np.float32
    assert (rec.n_windows, rec.fs_in, rec.fs_out, rec.n_samples_in) == (3, 500.0, 100, 15000)
    assert not rec.padded and rec.n_samples_out == 3000
    assert rec.starts.tolist() == [0, 1000, 2000]
    standard = phys[[names.index(lead) for lead in LOWER]]
    expected = resample_poly(standard, 1, 5, axis=1, padtype="line")
    got = rec.windows.transpose(1, 0, 2).reshape(12, -1)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # Away from the ends the padding choice does not matter: same as the default resample_poly.
    plain = resample_poly(standard, 1, 5, axis=1)
    np.testing.assert_allclose(got[:, 100:-100], plain[:, 100:-100], atol=1e-5)
    # and the 100 Hz signal still follows the original (the beats are well below 50 Hz)
    beats = standard[:, ::5]
    assert np.corrcoef(got[0], beats[0])[0, 1] > 0.95


def test_1000hz_record(tmp_path: Path) -> None:
    stem, phys = _write(tmp_path, fs=1000, seconds=10)
    rec = prepare_record(stem, fs=100, window=1000)
    assert rec.windows.shape == (1, 12, 1000)
    expected = resample_poly(phys, 1, 10, axis=1, padtype="line")
    np.testing.assert_allclose(rec.windows[0], expected, atol=1e-5)


def test_257hz_record_odd_ratio_and_end_aligned_last_window(tmp_path: Path) -> None:
    stem, phys = _write(tmp_path, fs=257, seconds=5000 / 257)  # 5000 samples
    rec = prepare_record(stem, fs=100, window=1000)
    # 100/257 is exact (no approximation): ceil(5000 * 100 / 257) = 1946 samples out
    assert rec.n_samples_in == 5000 and rec.n_samples_out == 1946
    assert rec.n_windows == 2 and rec.starts.tolist() == [0, 946]
    expected = resample_poly(phys, 100, 257, axis=1, padtype="line")
    np.testing.assert_allclose(rec.windows[0], expected[:, :1000], atol=1e-5)
    np.testing.assert_allclose(rec.windows[1], expected[:, 946:], atol=1e-5)


def test_same_rate_is_not_resampled(tmp_path: Path) -> None:
    stem, phys = _write(tmp_path, fs=100, seconds=20)
    rec = prepare_record(stem, fs=100, window=1000)
    assert rec.n_windows == 2
    np.testing.assert_allclose(rec.windows.transpose(1, 0, 2).reshape(12, -1), phys, atol=1e-6)


def test_short_record_is_zero_padded(tmp_path: Path) -> None:
    stem, _ = _write(tmp_path, fs=500, seconds=4)
    rec = prepare_record(stem, fs=100, window=1000)
    assert rec.padded and rec.n_windows == 1 and rec.windows.shape == (1, 12, 1000)
    assert rec.n_samples_out == 400 and rec.starts.tolist() == [0]
    assert np.all(rec.windows[0, :, 400:] == 0)
    assert np.abs(rec.windows[0, :, :400]).max() > 0.1


@pytest.mark.parametrize(("units", "gain"), [("uV", 1.0), ("V", 100000.0)])
def test_units_are_converted_to_millivolts(tmp_path: Path, units: str, gain: float) -> None:
    stem, phys = _write(tmp_path, fs=100, seconds=10, units=units, gain=gain)
    rec = prepare_record(stem, fs=100, window=1000)
    np.testing.assert_allclose(rec.windows[0], phys, atol=1e-5)
    assert 0.2 < np.abs(rec.windows).max() < 5  # mV-sized, not µV- or V-sized


def test_window_starts_rule() -> None:
    assert window_starts(3000, 1000).tolist() == [0, 1000, 2000]
    assert window_starts(3001, 1000).tolist() == [0, 1000, 2000, 2001]
    assert window_starts(1000, 1000).tolist() == [0]
    assert window_starts(10, 1000).tolist() == [0]


def test_bad_options(tmp_path: Path) -> None:
    stem, _ = _write(tmp_path)
    with pytest.raises(ConfigError, match="sampling rate"):
        prepare_record(stem, fs=0, window=1000)
    with pytest.raises(ConfigError, match="window"):
        prepare_record(stem, fs=100, window=-5)


# ---------------------------------------------------------------- resolve_records


def test_resolve_records_every_form(tmp_path: Path) -> None:
    (tmp_path / "a" / "deep").mkdir(parents=True)
    (tmp_path / "set.v2").mkdir()
    s1, _ = _write(tmp_path / "a", "r1")
    s2, _ = _write(tmp_path / "a" / "deep", "r0")
    s3, _ = _write(tmp_path / "set.v2", "rec")  # a dot in the folder, none in the name
    (tmp_path / "a" / "notes.txt").write_text("not a record")
    assert resolve_records([tmp_path / "a"]) == sorted([s1, s2])
    assert resolve_records([s1.with_suffix(".hea")]) == [s1]
    assert resolve_records([str(s1) + ".dat"]) == [s1]
    assert resolve_records([s3]) == [s3]
    assert resolve_records([str(s3)]) == [s3]
    # order kept, repeats dropped
    assert resolve_records([s3, tmp_path / "a", s1]) == [s3, *sorted([s1, s2])]


def test_resolve_records_errors(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="no such record") as exc:
        resolve_records([tmp_path / "nope"])
    assert str(tmp_path / "nope") in str(exc.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordError, match="no WFDB records"):
        resolve_records([tmp_path / "empty"])
    (tmp_path / "orphan.dat").write_bytes(b"\0\0")
    with pytest.raises(RecordError, match="no header orphan.hea"):
        resolve_records([tmp_path / "orphan.dat"])


# ---------------------------------------------------------------- broken records


def _raises(stem: Path, match: str) -> RecordError:
    with pytest.raises(RecordError, match=match) as exc:
        prepare_record(stem, fs=100, window=1000)
    message = str(exc.value)
    assert str(stem) in message and "\n" not in message  # names the file, one line
    return exc.value


def test_missing_dat(tmp_path: Path) -> None:
    stem, _ = _write(tmp_path)
    stem.with_suffix(".dat").unlink()
    _raises(stem, "signal file rec.dat not found")


def test_truncated_dat(tmp_path: Path) -> None:
    stem, _ = _write(tmp_path)
    dat = stem.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:1000])
    _raises(stem, "truncated rec.dat")


def test_corrupt_header(tmp_path: Path) -> None:
    stem, _ = _write(tmp_path)
    stem.with_suffix(".hea").write_text("rec twelve 500 5000\n")
    _raises(stem, "corrupt header")


def test_missing_leads_are_named(tmp_path: Path) -> None:
    stem, _ = _write(tmp_path, names=[n for n in LOWER if n not in ("avl", "v4")])
    _raises(stem, r"missing lead\(s\) AVL, V4")


def test_nan_samples_name_the_lead(tmp_path: Path) -> None:
    stem, _ = _write(tmp_path)
    dat = stem.with_suffix(".dat")
    raw = np.fromfile(dat, dtype="<i2").reshape(-1, 12)
    raw[10:17, 1] = -32768  # WFDB's "no sample" value, in lead II
    raw.tofile(dat)
    err = _raises(stem, r"7 missing \(NaN\) samples")
    assert "II: 7" in err.problem


def test_non_voltage_units(tmp_path: Path) -> None:
    stem, _ = _write(tmp_path)
    hea = stem.with_suffix(".hea")
    hea.write_text(hea.read_text().replace("(0)/mV", "(0)/mmHg", 1))
    _raises(stem, r"I \(mmHg\) are not a voltage")


def test_zero_length_record(tmp_path: Path) -> None:
    # wfdb.wrsamp cannot write a record without samples, so write it by hand.
    stem = tmp_path / "empty"
    lines = ["empty 12 500 0"] + [f"empty.dat 16 1000/mV 16 0 0 0 0 {lead}" for lead in LEADS]
    stem.with_suffix(".hea").write_text("\n".join(lines) + "\n")
    stem.with_suffix(".dat").write_bytes(b"")
    _raises(stem, "record has no samples")
