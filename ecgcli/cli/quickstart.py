"""``ecg quickstart``."""

from __future__ import annotations

from ecgcli.cli.common import not_yet


def quickstart() -> None:
    """Run the whole pipeline on a synthetic PTB-XL in about five minutes."""
    not_yet("quickstart")
