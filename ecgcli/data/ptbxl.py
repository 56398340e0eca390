"""PTB-XL tables: records, task labels, folds and labelled-fraction sampling.

Labels follow the official PTB-XL benchmark (Strodthoff et al., 2021) for each of its six
tasks (:mod:`ecgcli.data.tasks`); the default, ``superdiagnostic``, is every code listed in
``scp_codes`` whose row in ``scp_statements.csv`` has ``diagnostic == 1`` contributing its
``diagnostic_class``, whatever its likelihood (``min_likelihood`` can raise that bar).
Records without a label of the task are kept (self-supervised pretraining uses them) but
never enter a labelled split.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ecgcli import DEFAULT_TASK, SUPERCLASSES
from ecgcli.data.sampling import sample_by_combination, sample_rarest_first
from ecgcli.data.tasks import CodeTable, absent_classes, check_task, statement_classes, task_labels
from ecgcli.errors import ConfigError, DataError

DATABASE_CSV = "ptbxl_database.csv"
STATEMENTS_CSV = "scp_statements.csv"
REQUIRED_DB_COLUMNS = ("ecg_id", "scp_codes", "strat_fold", "filename_lr", "filename_hr")
REQUIRED_STATEMENT_COLUMNS = ("diagnostic", "diagnostic_class")
TRAIN_FOLDS = (1, 2, 3, 4, 5, 6, 7, 8)
VAL_FOLD = 9
TEST_FOLD = 10
#: Signal length in samples of a 10 s PTB-XL record at each supported rate.
RECORD_LENGTH = {100: 1000, 500: 5000}


def is_ptbxl_folder(root: Path) -> bool:
    """True if ``root`` holds both PTB-XL tables (the records are checked elsewhere)."""
    return (root / DATABASE_CSV).is_file() and (root / STATEMENTS_CSV).is_file()


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable CSV ({reason})") from None


def read_statements(root: Path) -> pd.DataFrame:
    """``scp_statements.csv`` indexed by SCP code, checked for the columns we use."""
    path = root / STATEMENTS_CSV
    df = _read_csv(path, "SCP statements table")
    missing = [c for c in REQUIRED_STATEMENT_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    df = df.set_index(df.columns[0])
    df.index = df.index.astype(str)
    return df


def parse_scp_codes(text: object, ecg_id: int) -> dict[str, float]:
    """Parse one ``scp_codes`` cell (a Python dict literal) safely, without ``eval``."""
    try:
        value = ast.literal_eval(str(text))
    except (ValueError, SyntaxError):
        raise DataError(
            f"{DATABASE_CSV}: ecg_id {ecg_id}: scp_codes is not a dict literal: {str(text)[:60]!r}"
        ) from None
    if not isinstance(value, dict):
        raise DataError(f"{DATABASE_CSV}: ecg_id {ecg_id}: scp_codes is not a dict")
    try:
        return {str(k): float(v) for k, v in value.items()}
    except (TypeError, ValueError):
        raise DataError(f"{DATABASE_CSV}: ecg_id {ecg_id}: scp_codes likelihoods must be numbers") from None


def safe_record_path(root: Path, relative: str, ecg_id: int) -> Path:
    """Join a table's record path to ``root``, refusing one that would leave the data root."""
    rel = str(relative)
    joined = os.path.normpath(os.path.join(root, rel))
    base = os.path.normpath(root)
    if os.path.isabs(rel) or os.path.commonpath([base, joined]) != base:
        raise DataError(f"{DATABASE_CSV}: ecg_id {ecg_id}: record path {rel!r} escapes the data root")
    return Path(joined)


class RootGuard:
    """Whether a record's files really lie under the data root, symbolic links resolved.

    :func:`safe_record_path` refuses ``../`` and absolute paths in the table, but a record
    file, or a whole folder of them, may be a symlink to anywhere; whatever reads records
    listed in the table (``data verify``, the cache build) asks this first. Fast enough for
    every record: each folder is resolved once, and a file only when it is itself a link.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = os.path.realpath(root)
        self._folders: dict[str, str] = {}

    def _inside(self, real: str) -> bool:
        return real == self.root or real.startswith(self.root.rstrip(os.sep) + os.sep)

    def outside(self, path: Path | str) -> str | None:
        """Where ``path`` really is when that is outside the root, else None (an absent file
        is None too: reading it reports it missing)."""
        folder, name = os.path.split(os.path.abspath(path))
        real_folder = self._folders.get(folder)
        if real_folder is None:
            real_folder = self._folders[folder] = os.path.realpath(folder)
        real = os.path.join(real_folder, name)
        if os.path.islink(real):
            real = os.path.realpath(real)
        return None if self._inside(real) else real

    def problem(self, stem: Path | str) -> str | None:
        """A record's ``.hea`` or ``.dat`` that lies outside the root, as a message, or None."""
        for suffix in (".hea", ".dat"):
            where = self.outside(f"{stem}{suffix}")
            if where is not None:
                return f"{Path(str(stem)).name}{suffix} links outside the data root (to {where})"
        return None


@dataclass(frozen=True)
class Split:
    """Row positions (into :class:`PTBXL` arrays) of each part of the standard protocol.

    ``train`` is the labelled-fraction sample of folds 1-8, ``val`` fold 9 and ``test`` fold 10
    (labelled records only); ``pretrain`` is every record of folds 1-8, labelled or not.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    pretrain: np.ndarray
    label_fraction: float
    seed: int


@dataclass
class PTBXL:
    """A PTB-XL folder's records in table order, with one task's labels and record paths.

    ``labels`` is ``(N, len(class_names))`` uint8 multi-hot for ``task``; :meth:`with_task`
    gives the same records labelled for another task without reading the tables again.
    """

    root: Path
    sampling_rate: int
    ecg_ids: np.ndarray
    folds: np.ndarray
    labels: np.ndarray
    record_paths: list[Path]
    scp_codes: list[dict[str, float]]
    task: str = DEFAULT_TASK
    class_names: tuple[str, ...] = SUPERCLASSES
    statements: pd.DataFrame | None = field(default=None, repr=False)
    min_likelihood: float = 0.0
    code_table: CodeTable | None = field(default=None, repr=False)  # scp_codes flattened once

    @property
    def dropped_classes(self) -> tuple[str, ...]:
        """Classes the statements table defines for the task that no record has (at the
        likelihood threshold): they get no output, so a model of this folder has fewer classes
        than the task names; trainers say so and record them in metrics.json."""
        if self.statements is None or self.task == "superdiagnostic":  # a fixed five, checked apart
            return ()
        defined = set(statement_classes(self.statements, self.task).astype(str))
        return tuple(sorted(defined - set(self.class_names)))

    def dropped_note(self) -> str | None:
        """One line naming :attr:`dropped_classes`, or None when there are none."""
        dropped = self.dropped_classes
        if not dropped:
            return None
        total = len(dropped) + len(self.class_names)
        return (
            f"task {self.task}: {len(dropped)} of its {total} classes have no record in {self.root} "
            f"and are left out, so the model has {len(self.class_names)}: {', '.join(dropped)}"
        )

    @property
    def labelled(self) -> np.ndarray:
        """Boolean mask of the records that belong to the task (at least one of its labels)."""
        return self.labels.any(axis=1)

    def with_task(self, task: str) -> PTBXL:
        """These records labelled for ``task`` (one of :data:`ecgcli.data.tasks.TASKS`)."""
        check_task(task)
        if task == self.task:
            return self
        if self.statements is None or self.code_table is None:
            raise DataError(f"{self.root}: no statements table to relabel the records with")
        labels, names = _task_labels(self.root, self.code_table, self.statements, task, self.min_likelihood)
        return replace(self, labels=labels, class_names=names, task=task)

    def check_classes(self, split: Split) -> None:
        """A one-line :class:`DataError` naming the classes absent from a part of ``split``.

        A class with no positive record in the labelled training fraction cannot be learnt,
        and one absent from fold 9 or 10 has no threshold or AUROC; trainers call this before
        training so the run fails at once rather than with NaN metrics at the end.
        """
        for rows, where in (
            (
                split.train,
                f"the labelled training fraction ({100 * split.label_fraction:g}% of folds 1-8, "
                f"seed {split.seed})",
            ),
            (split.val, f"fold {VAL_FOLD} (validation)"),
            (split.test, f"fold {TEST_FOLD} (test)"),
        ):
            missing = absent_classes(self.labels, rows, self.class_names)
            if missing:
                what = "class" if len(missing) == 1 else "classes"
                raise DataError(
                    f"task {self.task}: {what} {', '.join(missing)} "
                    f"{'has' if len(missing) == 1 else 'have'} no record in {where}"
                )

    @property
    def record_length(self) -> int:
        return RECORD_LENGTH[self.sampling_rate]

    def __len__(self) -> int:
        return len(self.ecg_ids)

    def fold_rows(self, folds: tuple[int, ...] | int, labelled_only: bool = True) -> np.ndarray:
        """Row positions of the given fold(s), optionally only the labelled ones."""
        folds = (folds,) if isinstance(folds, int) else folds
        mask = np.isin(self.folds, folds)
        if labelled_only:
            mask &= self.labelled
        return np.flatnonzero(mask)

    def split(self, label_fraction: float = 0.1, seed: int = 42) -> Split:
        """The standard protocol: a labelled fraction of folds 1-8, fold 9, fold 10.

        ``superdiagnostic`` samples the fraction by label combination (ecgcli's original
        sampler, so its splits are unchanged); the other tasks, with up to 71 rare labels,
        rarest class first. See :mod:`ecgcli.data.sampling` for what each guarantees.
        """
        train_pool = self.fold_rows(TRAIN_FOLDS)
        sample = sample_by_combination if self.task == "superdiagnostic" else sample_rarest_first
        split = Split(
            train=sample(self.labels, train_pool, label_fraction, seed),
            val=self.fold_rows(VAL_FOLD),
            test=self.fold_rows(TEST_FOLD),
            pretrain=self.fold_rows(TRAIN_FOLDS, labelled_only=False),
            label_fraction=label_fraction,
            seed=seed,
        )
        for name in ("train", "val", "test"):
            if len(getattr(split, name)) == 0:
                raise DataError(f"{self.root}: the {name} split has no labelled records for task {self.task}")
        return split


def _task_labels(
    root: Path, table: CodeTable, statements: pd.DataFrame, task: str, min_likelihood: float
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Labels of ``task``; a statements table that defines none of its classes is an error (a
    folder whose records simply have none is not: pretraining can still use it, and a split
    says there is nothing to train on)."""
    if statement_classes(statements, task).empty:
        what = (
            "diagnostic statements with a superclass" if task == "superdiagnostic" else f"{task} statements"
        )
        raise DataError(f"{root / STATEMENTS_CSV}: no {what}")
    return task_labels(table, statements, task, min_likelihood)


def load_ptbxl(
    root: Path, sampling_rate: int = 100, min_likelihood: float = 0.0, task: str = DEFAULT_TASK
) -> PTBXL:
    """Read and check both tables of a PTB-XL folder (v1.0.1 or v1.0.3), labelled for ``task``.

    ``ds.labels``, ``ds.class_names`` and ``ds.split(fraction, seed)`` then give the task's
    multi-hot labels, its class names in column order, and the standard split.
    """
    check_task(task)
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DataError(f"{root}: is a file, not a folder (--data-root or ECG_DATA_ROOT names the folder)")
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found (set --data-root or ECG_DATA_ROOT)")
    if sampling_rate not in RECORD_LENGTH:
        raise ConfigError(f"sampling rate must be 100 or 500, got {sampling_rate}")
    db_path = root / DATABASE_CSV
    db = _read_csv(db_path, "PTB-XL database table")
    missing = [c for c in REQUIRED_DB_COLUMNS if c not in db.columns]
    if missing:
        raise DataError(f"{db_path}: missing column(s) {', '.join(missing)}")
    if db.empty:
        raise DataError(f"{db_path}: the table has no records")
    ecg_ids = pd.to_numeric(db["ecg_id"], errors="coerce")
    if ecg_ids.isna().any():
        raise DataError(f"{db_path}: row {int(ecg_ids.isna().to_numpy().argmax()) + 2}: bad ecg_id")
    ecg_ids = ecg_ids.astype(np.int64).to_numpy()
    dup = pd.Series(ecg_ids).duplicated()
    if dup.any():
        raise DataError(f"{db_path}: duplicate ecg_id {ecg_ids[dup.to_numpy()][0]}")
    folds = pd.to_numeric(db["strat_fold"], errors="coerce")
    bad = folds.isna() | ~folds.isin(range(1, 11))
    if bad.any():
        i = int(bad.to_numpy().argmax())
        got = db["strat_fold"].iloc[i]
        shown = got.item() if isinstance(got, np.generic) else got  # 11, not np.int64(11)
        raise DataError(f"{db_path}: ecg_id {ecg_ids[i]}: strat_fold must be 1-10, got {shown!r}")
    column = "filename_lr" if sampling_rate == 100 else "filename_hr"
    paths = [
        safe_record_path(root, rel, int(eid))
        for rel, eid in zip(db[column].astype(str), ecg_ids, strict=True)
    ]
    codes = [parse_scp_codes(t, int(e)) for t, e in zip(db["scp_codes"], ecg_ids, strict=True)]
    statements = read_statements(root)
    table = CodeTable.from_dicts(codes)
    labels, names = _task_labels(root, table, statements, task, min_likelihood)
    return PTBXL(
        root=root,
        sampling_rate=sampling_rate,
        ecg_ids=ecg_ids,
        folds=folds.astype(np.int64).to_numpy(),
        labels=labels,
        record_paths=paths,
        scp_codes=codes,
        task=task,
        class_names=names,
        statements=statements,
        min_likelihood=min_likelihood,
        code_table=table,
    )
