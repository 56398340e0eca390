"""``ecg predict``."""

from __future__ import annotations

from ecgcli.cli.common import not_yet


def predict() -> None:
    """Classify WFDB record files (NORM, MI, STTC, HYP, CD)."""
    not_yet("predict")
