"""Rich views of the shipped models: the list (``ecg models --pretrained``) and a card
re-check (``ecg models --check``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich import box
from rich.table import Table

from ecgcli.cli.compare import table_console

if TYPE_CHECKING:
    from ecgcli.experiments.recheck import Recheck
    from ecgcli.pretrained import ShippedModel


def _num(x: Any, digits: int = 3) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def _with_ci(value: Any, ci: Any) -> str:
    if value is None:
        return ""
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{value:.3f}"


def render_pretrained(rows: list[ShippedModel], default: str | None) -> None:
    """One row per shipped model: task, classes, leads, fold-10 AUROC [CI], ECE, size."""
    console = table_console()
    if not rows:
        console.print("no trained models ship with this install of ecgcli")
        return
    table = Table(
        title="Trained models that ship with ecgcli",
        caption=(
            "AUROC: fold-10 macro AUROC of real PTB-XL [95% bootstrap CI]; ECE: fold-10 macro "
            "calibration error after temperature scaling. Use a name with -c (predict, explain, "
            "export) or --ssl-checkpoint (finetune); ecg models --card NAME tells how it was made."
        ),
        box=box.SIMPLE_HEAD,
    )
    for col, justify in (
        ("name", "left"), ("kind", "left"), ("task", "left"), ("classes", "right"), ("leads", "left"),
        ("AUROC (fold 10)", "right"), ("ECE", "right"), ("size", "right"),
    ):  # fmt: skip
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for m in rows:
        f = m.fold10
        leads = "12" if len(m.leads) == 12 else ",".join(m.leads)
        name = f"{m.name} (default)" if m.name == default else m.name
        table.add_row(
            name,
            m.kind,
            m.task,
            str(len(m.classes)) if m.kind == "classifier" else "",
            leads,
            _with_ci(f.get("macro_auroc"), f.get("auroc_ci")),
            _num(f.get("ece")),
            f"{m.size_bytes / 1e6:.1f} MB",
        )
    console.print(table)


def render_recheck(result: Recheck) -> None:
    """The card's numbers beside the recomputed ones, and whether they agree."""
    table = Table(
        title=f"{result.name}: fold 10 of your PTB-XL ({result.yours.get('n')} records) against its card",
        caption="agree: equal at the card's printed precision",
        box=box.SIMPLE_HEAD,
    )
    for col in ("metric", "card", "yours", "agree"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for r in result.rows():
        d = r["digits"]
        table.add_row(
            r["metric"], _num(r["card"], d), _num(r["yours"], d), "yes" if r["agree"] else "[red]no[/red]"
        )
    console = table_console()
    console.print(table)
    console.print(
        "the card's numbers are reproduced"
        if result.agrees
        else "[red]some numbers differ from the card[/red]"
    )
