"""Rich rendering of core events: progress bars, warnings, error lines, tables.

Results go to stdout; progress, notes and errors go to stderr, so ``--json`` output stays
machine-readable.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ecgcli.scoring.names import SHORT

if TYPE_CHECKING:
    from pathlib import Path

    from ecgcli.events import Event

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def error_line(message: str) -> None:
    """The one red line a user sees for a problem they can fix."""
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)


def warn_line(message: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def message_markup(event: Event) -> str:
    """A core :class:`~ecgcli.events.Message` as rich markup (its text escaped: paths may hold [])."""
    text = escape(event.text)
    return f"[yellow]warning:[/] {text}" if event.level == "warning" else f"[dim]{text}[/]"


class EventRenderer:
    """A callback for core events that draws rich progress bars on stderr."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, event: Event) -> None:
        from ecgcli.events import Message, TaskDone, TaskProgress, TaskStarted

        if isinstance(event, TaskStarted):
            self.tasks[event.task] = self.progress.add_task(
                event.description or event.task, total=event.total
            )
        elif isinstance(event, TaskProgress) and event.task in self.tasks:
            self.progress.advance(self.tasks[event.task], event.advance)
        elif isinstance(event, TaskDone) and event.task in self.tasks:
            self.progress.remove_task(self.tasks.pop(event.task))
        elif isinstance(event, Message):
            self.progress.console.print(message_markup(event), soft_wrap=True)


def make_progress(console: Console = err) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # no bars (and no stray blank lines) in logs and pipes
    )


@contextmanager
def progress_events() -> Iterator[EventRenderer]:
    """``with progress_events() as callback:`` pass ``callback`` to a core function."""
    with make_progress() as progress:
        yield EventRenderer(progress)


# --- training: progress bar per epoch + a live table that grows one row per epoch ---------

_METRIC_LABELS = {**SHORT, "auroc": f"val {SHORT['auroc']}", "f1": f"val {SHORT['f1']}"}


class TrainingView:
    """Renders loop events: a live epoch table (best epoch starred) under a batch progress bar.

    On a terminal this is a rich ``Live`` display; in a log or pipe each epoch is one plain line.
    """

    def __init__(self, title: str, console: Console = err) -> None:
        from rich.progress import SpinnerColumn

        self.title = title
        self.console = console
        self.rows: list = []
        self.best_epoch = 0
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  {task.fields[rate]:.0f} samples/s"),
            TimeElapsedColumn(),
            console=console,
        )
        self.setup_progress = make_progress(console)  # cache building etc., drawn inside the Live
        self.setup = EventRenderer(self.setup_progress)
        self.task: TaskID | None = None
        self.live = None

    def __enter__(self) -> TrainingView:
        from rich.live import Live

        if self.console.is_terminal:
            self.live = Live(self._render(), console=self.console, refresh_per_second=8)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.update(self._render(final=True))
            self.live.__exit__(*exc)

    def _table(self):
        from rich.table import Table

        table = Table(title=self.title, title_justify="left", expand=False)
        keys: list[str] = []
        for row in self.rows:
            keys += [k for k in row.metrics if k not in keys]
        table.add_column("epoch", justify="right")
        table.add_column("train loss", justify="right")
        for k in keys:
            table.add_column(_METRIC_LABELS.get(k, k), justify="right")
        table.add_column("time", justify="right")
        table.add_column("", justify="left")
        for row in self.rows:
            best = row.epoch == self.best_epoch
            cells = [f"{row.epoch}/{row.epochs}", f"{row.train_loss:.4f}"]
            cells += [f"{row.metrics[k]:.4f}" if k in row.metrics else "" for k in keys]
            cells += [f"{row.seconds:.1f}s", "★ best" if best else ""]
            table.add_row(*cells, style="bold green" if best else None)
        return table

    def _render(self, final: bool = False):
        from rich.console import Group

        parts = [self._table()] if self.rows else []
        if not final:
            if self.setup_progress.tasks:
                parts.append(self.setup_progress)
            if self.task is not None:
                parts.append(self.progress)
        return Group(*parts)

    def __call__(self, event: Event) -> None:
        from ecgcli.events import BatchDone, EpochDone, EpochStarted, Message, TaskStarted

        if isinstance(event, EpochStarted):
            if self.task is not None:
                self.progress.remove_task(self.task)
            self.task = self.progress.add_task(
                f"epoch {event.epoch}/{event.epochs}", total=event.n_batches, loss=0.0, rate=0.0
            )
        elif isinstance(event, BatchDone) and self.task is not None:
            self.progress.update(self.task, completed=event.batch, loss=event.loss, rate=event.samples_per_s)
        elif isinstance(event, EpochDone):
            self.rows.append(event)
            if event.best:
                self.best_epoch = event.epoch
            if self.live is not None:
                self.live.update(self._render())
            else:
                m = "  ".join(f"{_METRIC_LABELS.get(k, k)} {v:.4f}" for k, v in event.metrics.items())
                self._line(
                    f"epoch {event.epoch}/{event.epochs}  loss {event.train_loss:.4f}  {m}  "
                    f"{event.seconds:.1f}s{'  * best' if event.best else ''}"
                )
        elif isinstance(event, Message):
            self._line(message_markup(event))
        else:  # cache building before training, evaluation steps: ordinary progress bars
            self.setup(event)
            if self.live is not None and isinstance(event, TaskStarted):
                self.live.update(self._render())

    def _line(self, markup: str) -> None:
        """Print one line whole: rich clears its buffer only after writing it, so a Ctrl-C
        between the two printed the line again with the error (issue 31); it waits instead."""
        from ecgcli.files import ctrl_c_deferred

        with ctrl_c_deferred():
            self.console.print(markup, soft_wrap=True)


def print_evaluation(evaluation, run_dir, checkpoint, extra_paths: tuple = ()) -> None:
    """Validation and test scores, clearly labelled, and the per-class test table."""
    from rich.table import Table

    table = Table(
        title="Scores: macro AUROC and F1, micro sensitivity (sens) and specificity (spec)",
        title_justify="left",
        caption="thresholds: 0.5, or tuned = per class to maximise F1 on fold 9",
        caption_justify="left",
    )
    for col in ("split", "thresholds", "AUROC", "F1", "sens", "spec", "n"):
        text = col in ("split", "thresholds")
        table.add_column(col, justify="left" if text else "right", no_wrap=True)
    rows = (
        ("val (fold 9)", "0.5", evaluation.val, None),
        ("val (fold 9)", "tuned", evaluation.val_tuned, None),
        ("TEST (fold 10)", "0.5", evaluation.test, "bold"),
        ("TEST (fold 10)", "tuned", evaluation.test_tuned, "bold"),
    )
    for split, thr, m, style in rows:
        table.add_row(
            split,
            thr,
            f"{m.macro_auroc:.4f}",
            f"{m.macro_f1:.4f}",
            f"{m.sensitivity:.4f}",
            f"{m.specificity:.4f}",
            str(m.n),
            style=style,
        )
    out.print(table)
    per = Table(title="TEST (fold 10) per class, thresholds tuned on fold 9", title_justify="left")
    for col in ("class", "AUROC", "AUPRC", "F1", "sens", "spec", "support", "threshold"):
        per.add_column(col, justify="left" if col == "class" else "right", no_wrap=True)
    for name, c in evaluation.test_tuned.per_class.items():
        per.add_row(
            name,
            f"{c.auroc:.4f}",
            f"{c.auprc:.4f}",
            f"{c.f1:.4f}",
            f"{c.sensitivity:.4f}",
            f"{c.specificity:.4f}",
            str(c.support),
            f"{c.threshold:.3f}",
        )
    out.print(per)
    out.print(f"run directory: {run_dir}\ncheckpoint:    {checkpoint}", soft_wrap=True)
    for label, path in extra_paths:
        out.print(f"{label}: {path}", soft_wrap=True)


def print_pretraining(run_path: Path, metrics: dict[str, Any], also: str | None = None) -> None:
    """The end of `ecg train ssl`: the final probe against the untrained encoder's, the
    augmentations and their share of the time, and where the encoder went."""
    probe, init = metrics.get("final_probe") or {}, metrics.get("probe_at_init") or {}
    if probe:
        line = f"final linear probe (fold 9): AUROC {probe['probe_auroc']:.4f}  F1 {probe['probe_f1']:.4f}"
        if init:
            line += f"   (untrained encoder: AUROC {init['probe_auroc']:.4f}  F1 {init['probe_f1']:.4f})"
        out.print(line)
    share = metrics["timing"]["augment_share"]
    if metrics["augmentations"]:
        out.print(
            f"augmentations: {', '.join(metrics['augmentations'])}; "
            f"{100 * sum(share) / len(share):.1f}% of training time spent augmenting"
        )
    else:
        out.print(f"augmentations: none ({metrics['method']} takes the records themselves)")
    out.print(f"run directory: {run_path}\nencoder checkpoint: {run_path / 'model.safetensors'}")
    if also:
        out.print(f"also written: {also}")
    out.print(f"next: ecg finetune --ssl-checkpoint {run_path / 'model.safetensors'}")


class MultiseedView:
    """Progress across the whole grid: one bar for the grid, one per running cell.

    On a terminal these are live rich bars; in a log or pipe each finished epoch and each
    finished cell is one plain line.
    """

    def __init__(self, console: Console | None = None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console or err
        self.live = self.console.is_terminal
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            disable=not self.live,
        )
        self.setup = EventRenderer(self.progress)  # cache building before the first cell
        self.grid_task: Any = None
        self.cells: dict[str, Any] = {}

    def __enter__(self) -> MultiseedView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: Any) -> None:
        from ecgcli.events import (
            BatchDone,
            EpochDone,
            EpochStarted,
            Message,
            TaskDone,
            TaskProgress,
            TaskStarted,
        )
        from ecgcli.experiments.runner import CellDone, CellEvent, CellSkipped, CellStarted, GridStarted

        p = self.progress
        if isinstance(event, GridStarted):
            self.grid_task = p.add_task(
                "[bold]all runs[/]", total=event.total, completed=event.finished, info=""
            )
            left = event.total - event.finished
            share = f"; shard {event.shard} holds {event.share} of them" if event.shard else ""
            self.console.print(
                f"multiseed: {event.total} runs, {event.finished} already finished, {left} to train "
                f"({event.jobs} at a time) in {event.out}{share}",
                soft_wrap=True,
                markup=False,
            )
        elif isinstance(event, CellSkipped):
            self.console.print(
                f"skipping {event.key}: {event.owner} is training it", soft_wrap=True, markup=False
            )
        elif isinstance(event, CellStarted):
            verb = "resuming" if event.action == "resume" else "training"
            self.cells[event.key] = p.add_task(f"  {event.key}", total=None, info=verb)
            if not self.live:
                self.console.print(f"{verb} {event.key}", soft_wrap=True, markup=False)
        elif isinstance(event, CellEvent):
            inner, task = event.event, self.cells.get(event.key)
            if isinstance(inner, EpochStarted) and task is not None:
                p.update(
                    task,
                    description=f"  {event.key} · epoch {inner.epoch}/{inner.epochs}",
                    total=inner.n_batches,
                    completed=0,
                )
            elif isinstance(inner, BatchDone) and task is not None:
                p.update(task, completed=inner.batch, info=f"loss {inner.loss:.4f}")
            elif isinstance(inner, EpochDone):
                m = inner.metrics
                info = (
                    f"val AUROC {m.get('auroc', float('nan')):.3f} F1 {m.get('f1', float('nan')):.3f}"
                    if m
                    else "not validated (--val-every)"
                )
                if task is not None:
                    p.update(task, info=info)
                if not self.live:
                    self.console.print(
                        f"  {event.key} epoch {inner.epoch}/{inner.epochs} loss {inner.train_loss:.4f} {info}"
                        f"{' *' if inner.best else ''}",
                        soft_wrap=True,
                        markup=False,
                    )
            elif isinstance(inner, Message) and inner.level == "warning":
                self.console.print(
                    f"[yellow]warning:[/] {escape(f'{event.key}: {inner.text}')}", soft_wrap=True
                )
            elif isinstance(inner, (TaskStarted, TaskProgress, TaskDone)):
                self.setup(inner)
        elif isinstance(event, CellDone):
            task = self.cells.pop(event.key, None)
            if task is not None:
                p.remove_task(task)
            if not event.reused:
                if self.grid_task is not None:
                    p.update(self.grid_task, completed=event.finished)
                auroc = "—" if event.auroc is None else f"{event.auroc:.4f}"
                f1 = "—" if event.f1 is None else f"{event.f1:.4f}"
                self.console.print(
                    f"[green]✓[/] {escape(event.key)}: test AUROC {auroc}  F1 {f1}  "
                    f"({event.seconds:.1f}s; {event.finished}/{event.total} done)",
                    soft_wrap=True,
                )
        else:  # core messages are escaped by the shared renderer
            self.setup(event)


class AblationView(MultiseedView):
    """The multiseed view, plus one line per pretraining variant started and finished."""

    def __call__(self, event: Any) -> None:
        from ecgcli.events import EpochDone
        from ecgcli.experiments.ablation import PretrainDone, PretrainStarted
        from ecgcli.experiments.runner import CellEvent

        if isinstance(event, PretrainStarted):
            verb = "resuming" if event.action == "resume" else "pretraining"
            key = f"pretrain {event.variant}"
            self.cells[key] = self.progress.add_task(f"  {key}", total=None, info=verb)
            self.console.print(
                f"{verb} {event.variant} ({event.index}/{event.total})", soft_wrap=True, markup=False
            )
        elif isinstance(event, PretrainDone):
            task = self.cells.pop(f"pretrain {event.variant}", None)
            if task is not None:
                self.progress.remove_task(task)
            probe = "—" if event.probe_auroc is None else f"{event.probe_auroc:.4f}"
            what = "already pretrained" if event.reused else f"pretrained in {event.seconds:.1f}s"
            self.console.print(
                f"[green]✓[/] {event.variant}: {what}; fold-9 probe AUROC {probe}", soft_wrap=True
            )
        elif (
            isinstance(event, CellEvent)
            and event.key.startswith("pretrain ")
            and isinstance(event.event, EpochDone)
        ):
            inner, task = event.event, self.cells.get(event.key)
            auroc = inner.metrics.get("probe_auroc")
            info = f"loss {inner.train_loss:.4f}" + ("" if auroc is None else f" probe AUROC {auroc:.3f}")
            if task is not None:
                self.progress.update(task, info=info)
            if not self.live:
                self.console.print(
                    f"  {event.key} epoch {inner.epoch}/{inner.epochs} {info}", soft_wrap=True, markup=False
                )
        else:
            super().__call__(event)
