"""``ecg data synth``: write a synthetic dataset in PTB-XL's exact folder and file format.

The tables use PTB-XL's 28 columns and value formats; ``scp_statements.csv`` is the real table
(71 statements, shipped in ``ecgcli/data/resources``). Superclass combinations are drawn with
the frequencies measured on PTB-XL v1.0.1 (so class imbalance and co-occurrence match, and
about 2% of records have no superclass); the diagnostic, form and rhythm statements within
them are those the simulator draws honestly (:mod:`ecgcli.data.synth_labels`), so every
benchmark task is learnable. Folds are stratified by statement and grouped by patient, and
every record is written with
``wfdb.wrsamp`` as format 16 at 1000 ADC units per mV. Signals come from
:mod:`ecgcli.data.ecgsim`. Each record is generated from its own seeded generator, so the
output is identical whatever the number of worker processes.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from ecgcli import LEADS, SUPERCLASSES
from ecgcli.data import ecgsim
from ecgcli.data.parallel import map_chunks
from ecgcli.data.ptbxl import DATABASE_CSV, RECORD_LENGTH, STATEMENTS_CSV
from ecgcli.data.synth_labels import assign_folds, code_matrix, draw_statements
from ecgcli.errors import ConfigError
from ecgcli.events import Callback, ignore
from ecgcli.files import temp_path

#: Superclass combinations (bits in NORM, MI, STTC, HYP, CD order) and their record counts
#: in PTB-XL v1.0.1, standard aggregation.
COMBINATIONS = {
    "10000": 9083,
    "01000": 2538,
    "00100": 2406,
    "00001": 1709,
    "01001": 1302,
    "00110": 783,
    "01100": 602,
    "00010": 536,
    "00101": 472,
    "00000": 407,
    "10001": 407,
    "01110": 362,
    "00011": 300,
    "01101": 223,
    "00111": 211,
    "01010": 183,
    "01111": 158,
    "01011": 117,
    "10100": 28,
    "10101": 5,
    "10011": 2,
    "10010": 2,
    "11011": 1,
}
_DEVICES = ("CS100    3", "CS-12", "AT-6 C 5.5", "CS-12   E", "AT-6     6", "AT-60    3")
_DEVICE_P = (0.30, 0.20, 0.19, 0.14, 0.11, 0.06)
_REPORTS = {
    "NORM": "sinusrhythmus normales ekg",
    "MI": "qrs(t) abnormal    infarkt",
    "STTC": "st-t abnormal",
    "HYP": "linksherzhypertrophie",
    "CD": "leitungsstoerung",
}
_STADIUM = ("unknown", "Stadium III", "Stadium II-III", "Stadium I", "Stadium II")
_STADIUM_P = (0.61, 0.17, 0.17, 0.03, 0.02)
_ACUTE = ("Stadium I", "Stadium II")  # ST elevation, T waves not yet inverted
#: How PTB-XL's annotators wrote "everywhere" in the artefact columns.
_ARTEFACT_MARKS = {"baseline_drift": "alles", "static_noise": " , alles,  ", "burst_noise": "alles"}


def statements_table() -> pd.DataFrame:
    """The real PTB-XL ``scp_statements.csv`` shipped with the package."""
    with resources.files("ecgcli.data").joinpath("resources", STATEMENTS_CSV).open("rb") as f:
        return pd.read_csv(f, index_col=0)


def make_database(n_records: int, seed: int) -> tuple[pd.DataFrame, list[dict[str, float]], np.ndarray]:
    """The ``ptbxl_database.csv`` table of a synthetic dataset, each record's SCP codes, and
    the heart rate each record is simulated at (not a PTB-XL column)."""
    if n_records < 1:
        raise ConfigError(f"--records must be at least 1, got {n_records}")
    rng = np.random.default_rng([seed, 0])
    combos = list(COMBINATIONS)
    p = np.array(list(COMBINATIONS.values()), dtype=np.float64)
    chosen = [combos[i] for i in rng.choice(len(combos), size=n_records, p=p / p.sum())]
    # every superclass appears, however few records are asked for
    for j in range(len(SUPERCLASSES)):
        if n_records >= 10 * len(SUPERCLASSES) and not any(c[j] == "1" for c in chosen):
            chosen[int(rng.integers(n_records))] = "".join("1" if k == j else "0" for k in range(5))
    labels = np.array([[int(b) for b in c] for c in chosen], dtype=np.uint8)
    patients = np.arange(n_records) + 1000
    repeat = rng.random(n_records) < 0.13
    patients[repeat] = rng.choice(patients, size=int(repeat.sum()))
    # statements and the heart rates they need come from their own stream
    statements_rng = np.random.default_rng([seed, 2])
    mi = labels[:, 1] == 1
    stadium = np.where(mi, statements_rng.choice(_STADIUM, size=n_records, p=_STADIUM_P), "")
    acute = np.isin(stadium, _ACUTE)
    codes, heart_rates = draw_statements(statements_rng, chosen, acute)
    folds = assign_folds(rng, patients, code_matrix(codes))
    ecg_ids = np.arange(1, n_records + 1)
    start = datetime(1984, 11, 9)
    dates = [
        (start + timedelta(seconds=int(s))).strftime("%Y-%m-%d %H:%M:%S")
        for s in np.sort(rng.uniform(0, 16.5 * 365 * 86400, n_records))
    ]
    reports = [
        " ".join(_REPORTS[c] for c, b in zip(SUPERCLASSES, combo, strict=True) if b == "1") or "sinusrhythmus"
        for combo in chosen
    ]
    height = np.round(rng.normal(168, 9, n_records))
    weight = np.round(rng.normal(75, 14, n_records))
    df = pd.DataFrame(
        {
            "ecg_id": ecg_ids,
            "patient_id": patients,
            "age": np.clip(np.round(rng.normal(62, 17, n_records)), 18, 95),
            "sex": rng.integers(0, 2, n_records),
            "height": np.where(rng.random(n_records) < 0.68, np.nan, height),
            "weight": np.where(rng.random(n_records) < 0.57, np.nan, weight),
            "nurse": np.where(rng.random(n_records) < 0.07, np.nan, rng.integers(0, 12, n_records)),
            "site": rng.choice([0.0, 1.0, 2.0, 3.0], size=n_records, p=[0.42, 0.3, 0.24, 0.04]),
            "device": rng.choice(_DEVICES, size=n_records, p=_DEVICE_P),
            "recording_date": dates,
            "report": reports,
            "scp_codes": [str(c) for c in codes],
            "heart_axis": rng.choice(
                ["", "MID", "LAD", "ALAD", "RAD"], size=n_records, p=[0.39, 0.35, 0.17, 0.07, 0.02]
            ),
            "infarction_stadium1": stadium,
            "infarction_stadium2": "",
            "validated_by": np.where(rng.random(n_records) < 0.43, np.nan, rng.integers(0, 5, n_records)),
            "second_opinion": rng.random(n_records) < 0.025,
            "initial_autogenerated_report": rng.random(n_records) < 0.31,
            "validated_by_human": rng.random(n_records) < 0.74,
            "baseline_drift": "",
            "static_noise": "",
            "burst_noise": "",
            "electrodes_problems": "",
            "extra_beats": "",
            "pacemaker": ["ja, pacemaker" if "PACE" in c else "" for c in codes],
            "strat_fold": folds,
            "filename_lr": [f"records100/{(i // 1000) * 1000:05d}/{i:05d}_lr" for i in ecg_ids],
            "filename_hr": [f"records500/{(i // 1000) * 1000:05d}/{i:05d}_hr" for i in ecg_ids],
        }
    )
    return df.replace("", np.nan), codes, heart_rates


def _record_beat(
    rng: np.random.Generator, codes: dict[str, float], stadium: str, heart_rate: float
) -> ecgsim.Beat:
    beat = ecgsim.normal_beat(rng)
    beat.heart_rate = heart_rate
    beat.strain = "INVT" in codes  # an LVH record shows strain exactly when it is labelled so
    acute = stadium in _ACUTE
    for code, likelihood in codes.items():
        # an uncertain statement (low likelihood) tends to be a milder finding
        severity = rng.uniform(0.55, 1.2) * (0.6 + 0.4 * likelihood / 100.0 if likelihood else 0.8)
        ecgsim.apply_code(beat, code, severity, rng, acute)
    if "AFIB" in codes:
        beat.irregular = True
    if "SARRH" in codes:
        beat.rr_modulation = rng.uniform(0.09, 0.14)
    if "PVC" in codes:
        beat.pvcs = int(rng.integers(1, 3))
    if "INVT" in codes:
        ecgsim.invert_t(beat, rng, global_inversion="CLBBB" not in codes)
    if "LVOLT" in codes:  # every limb lead's QRS below 0.5 mV
        scale = rng.uniform(0.2, 0.4) / ecgsim.qrs_amplitude(beat, ecgsim.LEAD_VECTORS[:6])
        for w in beat.waves:
            w.vector = w.vector * scale
    return beat


def write_record(
    path: Path | str,
    digital: np.ndarray,
    names: list[str],
    fs: float,
    *,
    units: str = "mV",
    gain: float = 1000.0,
    baseline: int = 0,
    fmt: str = "16",
) -> None:
    """Write ``digital`` (samples x channels, ADC units) as WFDB record ``path`` (no suffix).

    The defaults are PTB-XL's: format 16 at 1000 ADC units per mV, baseline 0. One place for
    the generator and for tests that need a record with other leads, units or gains.
    """
    import wfdb

    path = Path(path)
    n = len(names)
    wfdb.wrsamp(
        path.name,
        fs=fs,
        units=[units] * n,
        sig_name=list(names),
        d_signal=digital,
        fmt=[fmt] * n,
        adc_gain=[float(gain)] * n,
        baseline=[baseline] * n,
        write_dir=str(path.parent),
    )


def _write_chunk(
    start: int, rows: list[tuple], out: str, seed: int, sampling_rate: int
) -> list[tuple[int, dict[str, bool], float]]:
    """Worker: simulate and write a chunk of records; returns artefact flags and heart rates."""
    from scipy.signal import resample_poly

    done = []
    for ecg_id, codes, stadium, heart_rate, lr, hr in rows:
        rng = np.random.default_rng([seed, 1, ecg_id])
        beat = _record_beat(rng, codes, stadium, heart_rate)
        x, flags = ecgsim.simulate(beat, sampling_rate, RECORD_LENGTH[sampling_rate], rng)
        targets = [(sampling_rate, hr if sampling_rate == 500 else lr, x)]
        if sampling_rate == 500:  # PTB-XL's 100 Hz files are the 500 Hz ones downsampled
            targets.append((100, lr, resample_poly(x, 1, 5, axis=1).astype(np.float32)))
        for fs, rel, sig in targets:
            path = Path(out) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            digital = np.clip(np.round(sig.T * 1000.0), -32767, 32767).astype(np.int16)
            write_record(path, digital, list(LEADS), fs)
        done.append((ecg_id, flags, beat.heart_rate))
    return done


def write_synthetic_ptbxl(
    out: Path,
    n_records: int = 2000,
    seed: int = 0,
    sampling_rate: int = 100,
    workers: int = 1,
    callback: Callback = ignore,
) -> pd.DataFrame:
    """Write a complete synthetic PTB-XL folder at ``out``; returns its database table.

    With ``sampling_rate=500`` both ``records500/`` and (downsampled) ``records100/`` are
    written, as in PTB-XL; with 100 only ``records100/``.
    """
    if n_records < 1:
        raise ConfigError(f"--records must be at least 1, got {n_records}")
    if sampling_rate not in RECORD_LENGTH:
        raise ConfigError(f"--sampling-rate must be 100 or 500, got {sampling_rate}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} is not an empty folder; choose a new one")
    tmp = temp_path(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        db, codes, heart_rates = make_database(n_records, seed)
        stadium = db["infarction_stadium1"].fillna("")
        rows = list(
            zip(
                db["ecg_id"].tolist(),
                codes,
                stadium,
                heart_rates.tolist(),
                db["filename_lr"],
                db["filename_hr"],
                strict=True,
            )
        )
        flags: dict[int, dict[str, bool]] = {}
        for chunk in map_chunks(
            _write_chunk,
            rows,
            str(tmp),
            seed,
            sampling_rate,
            workers=workers,
            task="synth",
            description=f"writing {n_records} records",
            callback=callback,
        ):
            for ecg_id, f, _ in chunk:
                flags[ecg_id] = f
        for column, mark in _ARTEFACT_MARKS.items():
            db[column] = [mark if flags[int(e)][column] else np.nan for e in db["ecg_id"]]
        db.to_csv(tmp / DATABASE_CSV, index=False)
        statements = resources.files("ecgcli.data").joinpath("resources", STATEMENTS_CSV)
        (tmp / STATEMENTS_CSV).write_bytes(statements.read_bytes())
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return db
