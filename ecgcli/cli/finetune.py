"""``ecg finetune``."""

from __future__ import annotations

from ecgcli.cli.common import not_yet


def finetune() -> None:
    """Fine-tune (or linearly probe) a pretrained encoder on the labelled fraction."""
    not_yet("finetune")
