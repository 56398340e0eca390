"""The six PTB-XL tasks of the official benchmark and their multi-hot labels.

Aggregation follows Strodthoff et al. (2021), "Deep Learning for ECG Analysis: Benchmarks and
Insights from PTB-XL" (IEEE JBHI), whose reference code reads every key of a record's
``scp_codes`` whatever its likelihood and maps it through ``scp_statements.csv``:

- ``diagnostic``: the codes whose statement has ``diagnostic == 1`` (44 on PTB-XL);
- ``subdiagnostic``: those codes' ``diagnostic_subclass`` (23);
- ``superdiagnostic``: those codes' ``diagnostic_class`` (5);
- ``form``: the codes with ``form == 1`` (19; some are diagnostic too);
- ``rhythm``: the codes with ``rhythm == 1`` (12);
- ``all``: every code listed in ``scp_statements.csv`` (71).

A record belongs to a task when it has at least one of the task's labels. The classes are
those that occur in the table, in sorted order, which is the order of the benchmark's
``MultiLabelBinarizer``; the one exception is ``superdiagnostic``, which keeps ecgcli's
historical order :data:`ecgcli.SUPERCLASSES` (NORM, MI, STTC, HYP, CD) and always all five
columns, so checkpoints and numbers from before tasks existed stay valid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ecgcli import SUPERCLASSES, TASKS
from ecgcli.errors import ConfigError, DataError


def check_task(task: str) -> str:
    """``task`` if it is one of :data:`TASKS`, else a one-line :class:`ConfigError` listing them."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return task


@dataclass(frozen=True)
class CodeTable:
    """Every (record, SCP code, likelihood) triple of a database table, flattened once.

    Label matrices for any task are then built with array operations, without another pass
    over the per-record dictionaries.
    """

    n_records: int
    rows: np.ndarray  # (K,) int64 record position of each triple
    codes: np.ndarray  # (K,) object, the SCP code
    likelihoods: np.ndarray  # (K,) float64

    @classmethod
    def from_dicts(cls, scp_codes: list[dict[str, float]]) -> CodeTable:
        sizes = np.fromiter((len(c) for c in scp_codes), dtype=np.int64, count=len(scp_codes))
        codes = np.array([k for c in scp_codes for k in c], dtype=object)
        likelihoods = np.fromiter((v for c in scp_codes for v in c.values()), dtype=np.float64)
        rows = np.repeat(np.arange(len(scp_codes), dtype=np.int64), sizes)
        return cls(len(scp_codes), rows, codes, likelihoods)


def _flag(statements: pd.DataFrame, column: str) -> pd.Series:
    if column not in statements.columns:
        raise DataError(f"scp_statements.csv: missing column {column}")
    return pd.to_numeric(statements[column], errors="coerce") == 1


def statement_classes(statements: pd.DataFrame, task: str) -> pd.Series:
    """SCP code -> the class it contributes to ``task`` (codes that contribute nothing absent)."""
    check_task(task)
    if task == "all":
        return pd.Series(statements.index, index=statements.index)
    if task in ("form", "rhythm"):
        chosen = statements.index[_flag(statements, task)]
        return pd.Series(chosen, index=chosen)
    diagnostic = statements[_flag(statements, "diagnostic")]
    column = {
        "diagnostic": None,
        "subdiagnostic": "diagnostic_subclass",
        "superdiagnostic": "diagnostic_class",
    }
    if column[task] is None:
        return pd.Series(diagnostic.index, index=diagnostic.index)
    if column[task] not in statements.columns:
        raise DataError(f"scp_statements.csv: missing column {column[task]}")
    classes = diagnostic[column[task]].dropna().astype(str)
    if task == "superdiagnostic":
        classes = classes[classes.isin(SUPERCLASSES)]
    return classes


def task_labels(
    table: CodeTable, statements: pd.DataFrame, task: str, min_likelihood: float = 0.0
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Multi-hot ``(N, C)`` uint8 labels of ``task`` and the names of its ``C`` classes.

    Codes with a likelihood below ``min_likelihood`` are ignored (the benchmark uses 0: all).
    """
    mapping = statement_classes(statements, task)
    keep = table.likelihoods >= min_likelihood
    cls = pd.Series(table.codes[keep]).map(mapping).to_numpy()
    known = pd.notna(cls)
    rows, cls = table.rows[keep][known], cls[known].astype(str)
    names = SUPERCLASSES if task == "superdiagnostic" else tuple(sorted(set(cls.tolist())))
    y = np.zeros((table.n_records, len(names)), dtype=np.uint8)
    if len(names):
        y[rows, pd.Index(names).get_indexer(cls)] = 1
    return y, tuple(names)


def absent_classes(labels: np.ndarray, rows: np.ndarray, class_names: tuple[str, ...]) -> list[str]:
    """Names of the classes with no positive record among ``rows``."""
    present = labels[np.asarray(rows)].any(axis=0) if len(rows) else np.zeros(len(class_names), bool)
    return [c for c, p in zip(class_names, present, strict=True) if not p]
