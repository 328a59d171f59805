"""Errors the replayer reports to people: each names the problem and the fix.

The CLI turns every ``EscopeError`` into one line on stderr and exit status
2, never a traceback, so a message must stand on its own: what is wrong, with which
file, and the command or action that gets the user going again.  SQLite's
own errors never reach the user raw; ``opening`` and ``recording`` wrap them
with the file name.
"""

from __future__ import annotations

from pathlib import Path


class EscopeError(Exception):
    """Base of every error the replayer raises on purpose."""

    def __init__(self, problem: str, *, path: str | Path | None = None, fix: str | None = None) -> None:
        self.problem = problem
        self.path = str(path) if path is not None else None
        self.fix = fix
        super().__init__(self.message())

    def message(self) -> str:
        text = f"{self.path}: {self.problem}" if self.path else self.problem
        if self.fix:
            text += f"; {self.fix}"
        return text


class RecordingError(EscopeError):
    """A recording file that cannot be read: missing, truncated, corrupt, foreign."""


class SchemaTooNewError(RecordingError):
    """The file was written by a newer pytest-escope than this one."""


class RunError(EscopeError):
    """No escope directory, no such run, or an unreadable run index."""


class UnknownTestError(EscopeError):
    """No test of the run matches what the user typed."""


class AmbiguousTestError(UnknownTestError):
    """Several tests match; ``candidates`` lists them for the user to pick."""

    def __init__(self, problem: str, candidates: list[str], *, fix: str | None = None) -> None:
        self.candidates = candidates
        super().__init__(problem, fix=fix)


class UnknownNameError(EscopeError):
    """A variable, path or node that is not in the recording."""


class BadStepError(EscopeError):
    """A step outside the recording, or one dropped by --escope-max-events."""


class UsageError(EscopeError):
    """A command line that cannot be carried out as typed."""
