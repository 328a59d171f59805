"""Exceptions that belong to the test although the recorder's code met them.

CPython runs a Python signal handler in the main thread, at the next point
where the interpreter checks for pending calls, in whatever Python code runs
there.  Under recording that is often the recorder's own code, called from a
tracing callback, or the recorder waiting for its writer thread.  What the
handler raises (``Timeout`` from a ``signal.alarm`` handler, ``Failed`` from
pytest-timeout, ``KeyboardInterrupt``) is the test's: it must reach the
test's code exactly as it would without escope, never be taken for a
recorder fault and swallowed.
"""

from __future__ import annotations

# Bound at import: a test that monkeypatches builtins must not reach the recorder.
from builtins import BaseException, Exception, OSError, ValueError, isinstance, set, type  # noqa: A004

import functools
import os
import _signal  # the C module: signal's wrappers build enums, which run isinstance
import types
from typing import Any

_RECORDER_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def owned_by_test(exc: BaseException) -> bool:
    """True when ``exc``, caught in the recorder, must be raised on.

    Anything that is not an ``Exception`` (``KeyboardInterrupt``,
    ``SystemExit``, pytest's outcomes) belongs to the test.  An
    ``Exception`` does when a frame its traceback passed through runs a
    function installed as a signal handler: the recorder never calls user
    code, so that frame can only be a handler the interpreter ran inside the
    recorder.  Only frames outside the recorder's own files are checked, and
    only when an exception was met: this costs nothing on the hot path.
    """
    if not isinstance(exc, Exception):
        return True
    try:
        return _raised_by_handler(exc)
    except Exception:  # the check itself must never raise into the recorder
        return False


def _raised_by_handler(exc: BaseException) -> bool:
    foreign = []
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if not code.co_filename.startswith(_RECORDER_DIR):
            foreign.append(code)
        tb = tb.tb_next
    if not foreign:
        return False
    handlers = _handler_codes()
    for code in foreign:
        if code in handlers:
            return True
    return False


def _handler_codes() -> set[types.CodeType]:
    """The code objects of the Python functions installed as signal handlers."""
    codes: set[types.CodeType] = set()
    for signum in _signal.valid_signals():
        try:
            handler = _signal.getsignal(signum)
        except (ValueError, OSError):
            continue
        code = _code_of(handler)
        if code is not None:
            codes.add(code)
    return codes


def _code_of(handler: Any, depth: int = 0) -> types.CodeType | None:
    """The code a handler runs, found by exact type and class dicts only:
    reading an attribute of a user object could run its code."""
    cls = type(handler)
    if cls is types.FunctionType:
        return handler.__code__
    if cls is types.MethodType:
        return _code_of(handler.__func__, depth + 1) if depth < 4 else None
    if cls is functools.partial:
        return _code_of(handler.func, depth + 1) if depth < 4 else None
    if handler is None or cls is int:  # SIG_DFL, SIG_IGN, none set from Python
        return None
    for klass in type.__dict__["__mro__"].__get__(cls):
        call = type.__dict__["__dict__"].__get__(klass).get("__call__")
        if call is not None:
            return call.__code__ if type(call) is types.FunctionType else None
    return None
