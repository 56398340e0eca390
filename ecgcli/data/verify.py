"""``ecg data verify``: check a PTB-XL folder's tables and every record, and summarise it.

Severity: a *problem* makes the folder unfit for training as is (a record missing, truncated,
with the wrong rate, length or leads, or with missing samples; an empty fold); a *warning* is
worth knowing but harmless (a flat lead, units other than mV that we convert, SCP codes the
statements table does not list). Exit status: 0 clean, 1 problems, 2 not a PTB-XL folder.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ecgcli import DEFAULT_TASK, LEADS
from ecgcli.data.parallel import map_chunks
from ecgcli.data.ptbxl import PTBXL, RootGuard, load_ptbxl, read_statements
from ecgcli.data.records import INVALID_INT16, read_standard_record
from ecgcli.data.tasks import check_task
from ecgcli.errors import RecordError
from ecgcli.events import Callback, ignore


@dataclass(frozen=True)
class Finding:
    """One problem or warning, tied to a record where there is one."""

    severity: str  # "problem" | "warning"
    message: str
    ecg_id: int | None = None
    record: str | None = None


@dataclass
class VerifyReport:
    """Everything ``verify`` learnt about a folder."""

    root: str
    sampling_rate: int
    n_records: int
    n_labelled: int  # records with at least one label of the task
    class_counts: dict[str, int]  # in the task's class order
    folds: dict[int, dict[str, int]]  # fold -> records, labelled, and one count per class
    task: str = DEFAULT_TASK
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "problem"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict:
        d = asdict(self)
        d["status"] = "clean" if self.ok else "problems"
        d["n_problems"], d["n_warnings"] = len(self.problems), len(self.warnings)
        return d


def _check_chunk(
    start: int, stems: list[str], sampling_rate: int, length: int, root: str
) -> list[tuple[int, str, str]]:
    """Worker: (row, severity, message) for every finding in a chunk of records."""
    found: list[tuple[int, str, str]] = []
    guard = RootGuard(root)
    for k, stem in enumerate(stems):
        row = start + k
        escape = guard.problem(stem)  # before reading: a file outside the root is not read
        if escape is not None:
            found.append((row, "problem", escape))
            continue
        try:
            adc, _, _, header = read_standard_record(Path(stem), sampling_rate, length)
        except RecordError as exc:
            found.append((row, "problem", exc.problem))
            continue
        names = [n.upper() for n in header.sig_names[: len(LEADS)]]
        if names != list(LEADS):
            found.append((row, "warning", f"leads stored as {' '.join(header.sig_names)}"))
        if header.n_sig > len(LEADS):
            found.append((row, "warning", f"{header.n_sig - len(LEADS)} extra channel(s)"))
        odd_units = sorted({u for u in header.units if u.lower() != "mv"})
        if odd_units:
            found.append((row, "warning", f"units {', '.join(odd_units)}, not mV (converted)"))
        missing = (adc == INVALID_INT16).sum(axis=1)
        for lead in np.flatnonzero(missing):
            found.append((row, "problem", f"{missing[lead]} missing (NaN) samples in lead {LEADS[lead]}"))
        flat = np.flatnonzero(adc.max(axis=1) == adc.min(axis=1))
        if len(flat) == len(LEADS):
            found.append((row, "problem", "every lead is flat (constant)"))
        elif len(flat):
            leads = ", ".join(LEADS[i] for i in flat)
            found.append((row, "warning", f"flat (constant) lead(s) {leads}"))
    return found


def _fold_summary(ds: PTBXL) -> dict[int, dict[str, int]]:
    folds = {}
    for fold in range(1, 11):
        rows = ds.folds == fold
        counts = {"records": int(rows.sum()), "labelled": int((rows & ds.labelled).sum())}
        counts.update({c: int(ds.labels[rows, j].sum()) for j, c in enumerate(ds.class_names)})
        folds[fold] = counts
    return folds


def verify_folder(
    root: Path,
    sampling_rate: int = 100,
    workers: int = 1,
    callback: Callback = ignore,
    task: str = DEFAULT_TASK,
) -> VerifyReport:
    """Check ``root`` and count ``task``'s classes per fold.

    Raises :class:`~ecgcli.errors.ConfigError` for an unknown task and
    :class:`~ecgcli.errors.DataError` if ``root`` is not a PTB-XL folder.
    """
    check_task(task)
    t0 = time.perf_counter()
    ds = load_ptbxl(root, sampling_rate, task=task)
    report = VerifyReport(
        root=str(root),
        sampling_rate=sampling_rate,
        n_records=len(ds),
        n_labelled=int(ds.labelled.sum()),
        class_counts={c: int(ds.labels[:, j].sum()) for j, c in enumerate(ds.class_names)},
        folds=_fold_summary(ds),
        task=task,
    )
    note = ds.dropped_note()
    if note is not None:
        report.findings.append(Finding("warning", note))
    known = set(read_statements(root).index)
    unknown = Counter(code for codes in ds.scp_codes for code in codes if code not in known)
    if unknown:
        listed = ", ".join(f"{c} ({n})" for c, n in unknown.most_common(5))
        report.findings.append(
            Finding(
                "warning",
                f"{sum(unknown.values())} SCP code uses not in scp_statements.csv: {listed}",
            )
        )
    for fold, counts in report.folds.items():
        if counts["records"] == 0:
            report.findings.append(Finding("problem", f"fold {fold} has no records"))
        elif counts["labelled"]:
            absent = [c for c in ds.class_names if counts[c] == 0]
            if absent and fold >= 9:
                report.findings.append(
                    Finding("warning", f"fold {fold} has no {', '.join(absent)} records ({task})")
                )
    stems = [str(p) for p in ds.record_paths]
    results = map_chunks(
        _check_chunk,
        stems,
        sampling_rate,
        ds.record_length,
        str(root),
        workers=workers,
        task="verify",
        description=f"checking {len(ds)} records",
        callback=callback,
    )
    per_record = sorted(f for chunk in results for f in chunk)
    for row, severity, message in per_record:
        report.findings.append(Finding(severity, message, int(ds.ecg_ids[row]), stems[row]))
    report.seconds = round(time.perf_counter() - t0, 3)
    return report
