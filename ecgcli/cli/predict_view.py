"""``ecg predict``'s tables for a person (``--json`` and ``--csv`` are in :mod:`ecgcli.cli.predict`).

A model of a few classes (PTB-XL's 5 superclasses) shows every class: one row each for one
record, one column each for many records. A model of many statements (PTB-XL's 71) cannot: 71
rows per record or 71 columns hide the answer. Above :data:`MAX_CLASS_COLUMNS` classes the
tables show the statements at or above their thresholds with their probabilities, and, for one
record, the highest of the rest; every class's probability stays in ``--json`` and ``--csv``,
and the caption says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape

if TYPE_CHECKING:
    from rich.text import Text

    from ecgcli.inference.onnx_runtime import OnnxPredictor
    from ecgcli.inference.predict import Prediction, Predictor

#: Above this many classes a table lists statements instead of a column or row per class.
MAX_CLASS_COLUMNS = 8
#: For one record of a many-class model: how many of the classes below threshold are shown.
BELOW_SHOWN = 5
_ALL_IN_MACHINE_OUTPUT = "every class's probability: --json or --csv"

_BLOCKS = " ▏▎▍▌▋▊▉█"


def _bar(p: float, width: int = 24, style: str = "green") -> Text:
    """A horizontal bar ``p`` (0..1) of ``width`` cells, in eighths of a cell."""
    from rich.text import Text

    eighths = round(min(max(p, 0.0), 1.0) * width * 8)
    full, part = divmod(eighths, 8)
    bar = "█" * full + (_BLOCKS[part] if part else "")
    return Text(bar.ljust(width), style=style)


def _shown_classes(pred: Prediction) -> tuple[list[str], int]:
    """For one record: every class, or (many classes) those above threshold, then the
    :data:`BELOW_SHOWN` most probable of the rest, each group by probability; and how many
    classes are left out."""
    names = list(pred.probabilities)
    if len(names) <= MAX_CLASS_COLUMNS:
        return names, 0
    by_p = sorted(names, key=lambda c: -pred.probabilities[c])
    above = [c for c in by_p if pred.above(c)]
    below = [c for c in by_p if not pred.above(c)][:BELOW_SHOWN]
    return above + below, len(names) - len(above) - len(below)


def print_prediction(predictor: Predictor | OnnxPredictor, pred: Prediction, aggregate: str) -> None:
    """One record: a row per class (the shown ones, for a many-class model) with its bar."""
    from rich.table import Table

    from ecgcli.cli.render import out

    windows = f"{pred.n_windows} window{'s' if pred.n_windows != 1 else ''} of {predictor.window_seconds:g} s"
    how = f", {aggregate} over windows" if pred.n_windows > 1 else ""
    padded = ", zero-padded" if pred.padded else ""
    shown, hidden = _shown_classes(pred)
    table = Table(
        title=f"{pred.record}  ({pred.duration_s:.3g} s at {pred.fs_in:g} Hz; {windows}{how}{padded})",
        title_justify="left",
        caption=(
            f"{len(pred.probabilities)} classes: those at or above their threshold, then the "
            f"{BELOW_SHOWN} most probable of the rest; {hidden} more not shown ({_ALL_IN_MACHINE_OUTPUT})"
            if hidden
            else None
        ),
        caption_justify="left",
    )
    table.add_column("class", no_wrap=True)
    table.add_column("probability", justify="right", no_wrap=True)
    table.add_column("threshold", justify="right", no_wrap=True)
    table.add_column("above threshold", justify="center", no_wrap=True)
    table.add_column("", no_wrap=True)
    for name in shown:
        p, above = pred.probabilities[name], pred.above(name)
        table.add_row(
            name,
            f"{p:.3f}",
            f"{pred.thresholds[name]:.3f}",
            "[bold green]yes[/]" if above else "[dim]no[/]",
            _bar(p, style="green" if above else "grey50"),
            style="bold" if above else None,
        )
    out.print(table)
    colour = "bold green" if pred.positive else "bold"
    out.print(f"[{colour}]{escape(pred.verdict())}[/]", soft_wrap=True)
    if pred.labels is not None:
        labels = escape(_labels_text(pred.labels))
        out.print(f"the record's own labels (its header): {labels}", soft_wrap=True)


def _labels_text(labels: tuple[str, ...]) -> str:
    return ", ".join(labels) if labels else "none"


def _statements(pred: Prediction) -> str:
    """``IMI 0.81, SR 0.77``: the classes above threshold by probability (many-class models)."""
    above = sorted(pred.positive, key=lambda c: -pred.probabilities[c])
    return ", ".join(f"{escape(c)} {_probability(pred.probabilities[c])}" for c in above) or "[dim]none[/]"


def _probability(p: float) -> str:
    """Two decimals, but a called class with a tiny threshold shows ``<0.01``, never ``0.00``."""
    return f"{p:.2f}" if p >= 0.005 else "<0.01"


def print_many(predictor: Predictor | OnnxPredictor, results: list) -> None:
    """One row per record; failed records show their problem in the last column. A column per
    class, or (many classes) the statements above threshold with their probabilities."""
    from rich import box
    from rich.table import Table

    from ecgcli.cli.render import out
    from ecgcli.inference.predict import Failure

    names = predictor.class_names
    per_class = len(names) <= MAX_CLASS_COLUMNS
    base = _common_folder([r.record for r in results])
    if per_class:
        caption = (
            "probability per class; bold green = at or above the checkpoint's threshold ("
            + ", ".join(f"{c} {t:.2f}" for c, t in zip(names, predictor.thresholds, strict=True))
            + ")"
        )
    else:
        caption = (
            f"{len(names)} classes: the statements at or above their thresholds, with probabilities "
            f"({_ALL_IN_MACHINE_OUTPUT})"
        )
    table = Table(
        title=f"{len(results)} records under {base}" if base else f"{len(results)} records",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        caption=caption,
        caption_justify="left",
    )
    table.add_column("record", no_wrap=True)
    table.add_column("top", no_wrap=True)
    if per_class:
        for name in names:
            table.add_column(name, justify="right", no_wrap=True)
    table.add_column("positive classes" if per_class else "statements (probability)")
    with_labels = any(getattr(r, "labels", None) is not None for r in results)
    if with_labels:
        table.add_column("record's labels", style="cyan")
    n_class_cells = len(names) if per_class else 0
    for r in results:
        if isinstance(r, Failure):
            table.add_row(
                _short(r.record, base),
                "",
                *([""] * n_class_cells),
                f"[red]error: {escape(r.problem)}[/]",
                *([""] if with_labels else []),
            )
            continue
        cells = [
            f"[bold green]{r.probabilities[c]:.3f}[/]" if r.above(c) else f"{r.probabilities[c]:.3f}"
            for c in (names if per_class else ())
        ]
        positive = (", ".join(r.positive) or "[dim]none[/]") if per_class else _statements(r)
        table.add_row(
            _short(r.record, base),
            r.top_class,
            *cells,
            positive
            + (" [yellow](padded)[/]" if r.padded else "")
            + (f" [yellow](flat {', '.join(r.flat_leads)})[/]" if r.flat_leads else ""),
            *([escape(_labels_text(r.labels)) if r.labels is not None else ""] if with_labels else []),
        )
    out.print(table)


def _common_folder(records: list[str]) -> str:
    """The deepest folder holding every record ("" when they share none worth naming)."""
    import os

    try:
        base = os.path.commonpath([os.path.dirname(r) for r in records])
    except ValueError:  # absolute and relative paths mixed
        return ""
    return "" if base in ("", ".", os.sep) else base


def _short(record: str, base: str) -> str:
    """A record's path relative to ``base``, escaped for rich markup."""
    import os

    return escape(os.path.relpath(record, base) if base else record)
