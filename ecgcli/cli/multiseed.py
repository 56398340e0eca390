"""``ecg multiseed``."""

from __future__ import annotations

from ecgcli.cli.common import not_yet


def multiseed() -> None:
    """Run configurations over many seeds and report means, CIs and significance tests."""
    not_yet("multiseed")
