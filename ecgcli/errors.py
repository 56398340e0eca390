"""The small family of errors the core raises for problems a user can act on.

The CLI catches :class:`EcgError` once, prints its message on one line and exits with
``exit_code``. Anything else escaping the core is a bug.
"""

from __future__ import annotations


class EcgError(Exception):
    """Base class: a message written for the user, and the process exit code to use.

    Two flags matter only under torchrun, where every rank runs the same code:
    ``all_ranks`` says every rank raises this same error at the same point (a NaN loss seen
    through the all-reduced value, Ctrl-C), and ``quiet`` says this rank must not print it
    because rank 0 prints the same line.
    """

    exit_code: int = 2
    all_ranks: bool = False
    quiet: bool = False

    def __init__(
        self, message: str, *, exit_code: int | None = None, all_ranks: bool = False, quiet: bool = False
    ) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
        self.all_ranks = all_ranks
        self.quiet = quiet


class ConfigError(EcgError):
    """An option or setting is invalid (unknown loss, fraction out of range, ...)."""


class DataError(EcgError):
    """A dataset folder, table or cache is missing or malformed."""


class RecordError(DataError):
    """One WFDB record cannot be read or has the wrong shape, leads, rate or values."""

    def __init__(self, record: str, problem: str) -> None:
        super().__init__(f"{record}: {problem}")
        self.record = record
        self.problem = problem

    def __reduce__(self):  # keeps the error intact when it crosses a process boundary
        return (type(self), (self.record, self.problem))


class CheckpointError(EcgError):
    """A checkpoint is missing, corrupt, not ours, or does not fit the requested model."""


class TrainingError(EcgError):
    """Training cannot continue (NaN/inf loss, diverged run)."""


class Interrupted(EcgError):
    """The user pressed Ctrl-C; state was saved and the run can be resumed."""

    exit_code = 130
