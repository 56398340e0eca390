"""``ecg compare``."""

from __future__ import annotations

from ecgcli.cli.common import not_yet


def compare() -> None:
    """Compare runs side by side (AUROC, F1, sensitivity, specificity, deltas)."""
    not_yet("compare")
