"""What escope tells a pytest session when recording meets a problem.

Neither changes a test's outcome: a warning is printed, or the session runs
unrecorded.
"""

from __future__ import annotations

from pathlib import Path


class EscopeWarning(UserWarning):
    """escope met a problem while recording; the test itself is unaffected."""


class EscopeUnavailable(Exception):
    """The escope dir cannot be written at the start of the session.

    An empty ``message`` is an xdist worker whose controller started no run:
    the controller has warned already, the worker stays silent.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def unavailable(escope_dir: Path, exc: BaseException) -> EscopeUnavailable:
    """The session-start refusal ``exc`` (a storage error) as the one line the user sees."""
    reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
    return EscopeUnavailable(
        f"cannot write to {escope_dir} ({reason}); the tests run unrecorded. "
        f"Make it writable or pick another place, then: pytest --escope --escope-dir=DIR")
