"""Rich rendering of core events: progress bars, warnings, error lines, tables.

Results go to stdout; progress, notes and errors go to stderr, so ``--json`` output stays
machine-readable.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

if TYPE_CHECKING:
    from ecgcli.events import Event

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def error_line(message: str) -> None:
    """The one red line a user sees for a problem they can fix."""
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True, markup=True, highlight=False)


def warn_line(message: str) -> None:
    err.print(f"[yellow]warning:[/] {message}", soft_wrap=True)


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
            if event.level == "warning":
                self.progress.console.print(f"[yellow]warning:[/] {event.text}", soft_wrap=True)
            else:
                self.progress.console.print(f"[dim]{event.text}[/]", soft_wrap=True)


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
