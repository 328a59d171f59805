"""The ``sys.settrace`` backend: Python 3.11 (and a reference on 3.12+).

The global trace function runs once per new frame and decides scope with a
dict lookup; out-of-scope frames get no local tracer, so their lines cost
nothing.  In-scope frames get a bound method of their own ``_Local`` as the
local tracer.  CPython 3.11's trace trampoline already syncs ``f_locals``
before every trace call, so reading it costs a dict lookup, not a copy.

A trace function that was installed before us (coverage.py's, a
debugger's) keeps running: we call it first and chain its local tracer.
"""

from __future__ import annotations

# Bound at import: a test that monkeypatches builtins must not reach the recorder.
from builtins import bool, frozenset, getattr, hasattr, len, list, next, range, str, tuple, type  # noqa: A004

import dis
import sys
import threading
import time
from typing import Any

from . import schema
from .interrupts import owned_by_test
from .collector import Collector, FrameState, ThreadState

_YIELD_VALUE = dis.opmap.get("YIELD_VALUE")
_exc_info = sys.exc_info
#: the iteration protocol's own ends, never filmed as failures (monitoring.py)
_ITERATION_END = (StopIteration, StopAsyncIteration)
CALL, LINE, RETURN, EXCEPTION, HANDLED, UNWIND, YIELD, RESUME = (
    schema.CALL, schema.LINE, schema.RETURN, schema.EXCEPTION, schema.HANDLED,
    schema.UNWIND, schema.YIELD, schema.RESUME)


#: The fault a recording gets when a signal handler's exception went through
#: the trace function: CPython unsets a trace function an exception leaves,
#: so this thread's film ends there (sys.monitoring keeps filming).
SIGNAL_STOPPED = "a signal handler raised inside the trace function; sys.settrace stopped filming this thread there"


#: The fault a recording gets when our trace function was gone at its end.
TRACER_REMOVED = ("the trace function was removed during the test (a signal handler raised inside it, or "
                  "other code called sys.settrace); the film of the test's thread ends where that happened")


class _Local:
    """Local tracer of one in-scope frame activation."""

    __slots__ = ("col", "ts", "fs", "events", "t0", "chained", "limit", "handling", "handled")

    def __init__(self, col: Collector, ts: ThreadState, fs: FrameState, chained: Any) -> None:
        self.col = col
        self.ts = ts
        self.fs = fs
        self.events = col.events
        self.t0 = col.t0
        self.chained = chained
        self.limit = col.hot_limit
        # The exception being handled at the frame's latest line step
        # (``sys.exc_info()``, read from the first line on and while one is
        # handled; the one that arrived, at the step that catches it):
        # CPython sends no trace event for a re-raise (a bare ``raise``, the
        # end of a ``finally``...), so a frame that unwinds without an
        # 'exception' event since its last line re-raised this one.
        self.handling = True
        self.handled: Any = None

    def __call__(self, frame: Any, event: str, arg: Any) -> Any:
        try:
            chained = self.chained
            if chained is not None:
                try:
                    self.chained = chained(frame, event, arg)
                except Exception as recorder_err:
                    if owned_by_test(recorder_err):
                        raise
                    self.chained = None
            fs = self.fs
            col = self.col
            if not col.active:
                return None
            if event == "line":
                if fs.exc_pending:
                    fs.exc_pending = False
                    self.events.append((HANDLED, fs.act, frame.f_lineno, time.perf_counter_ns() - self.t0))
                    # ``handled`` is the exception that just arrived: this
                    # step can be the handler's first instruction, before
                    # ``sys.exc_info()`` shows it (a ``with`` calling __exit__)
                    self.handling = True
                elif self.handling:
                    handled = _exc_info()[1]
                    self.handled = handled
                    self.handling = handled is not None
                if col.record_lines:
                    prev = fs.prev
                    line = frame.f_lineno
                    if prev:
                        changes = col.check_watch(fs, frame, prev)
                        if changes is not None:
                            self.events.append((LINE, fs.act, line, time.perf_counter_ns() - self.t0, None, changes))
                        else:
                            self.events.append((LINE, fs.act, line, time.perf_counter_ns() - self.t0))
                    else:
                        self.events.append((LINE, fs.act, line, time.perf_counter_ns() - self.t0))
                    fs.prev = fs.watch.get(line)
                    if col.full and fs.info.method_self:
                        fs.prev = _with_self(fs.prev)
                    if len(self.events) >= self.limit:
                        col.overflow()
                return self
            if event == "return":
                # the instruction tells a return from an exception leaving the
                # frame (a bare `raise`, a re-raising `finally`)
                if _at_return(frame):
                    kind = RETURN
                elif fs.info.is_gen and not fs.exc_pending and _YIELD_VALUE is not None and _is_yield(frame):
                    kind = YIELD
                else:
                    kind = UNWIND  # also a generator closed or thrown into at its yield
                handled = self.handled
                if handled is not None:
                    # no reference to it outlives the frame's activation
                    self.handled = None
                    if kind == UNWIND and not fs.exc_pending and col.record_lines \
                            and type(handled) not in _ITERATION_END:
                        col.exception(fs, EXCEPTION, frame.f_lineno, handled)
                col.leave(self.ts, fs, frame, kind, frame.f_lineno, arg)
                return self
            if event == "exception":
                if arg[0] is StopIteration or arg[0] is StopAsyncIteration:
                    return self  # the iteration protocol's end, not a failure
                tb = arg[2]
                # Only the frame that raised reports it (sys.monitoring's RAISE);
                # frames the exception merely passes through do not.
                if tb is not None and tb.tb_next is None and tb.tb_frame is frame:
                    col.exception(fs, EXCEPTION, frame.f_lineno, arg[1])
                fs.exc_pending = True
                self.handled = arg[1]
                return self
            return self
        except BaseException as recorder_err:  # never into the test: counted and warned once
            if owned_by_test(recorder_err):
                self.col.fault(SIGNAL_STOPPED)
                raise
            self.col.fault("recorder error at a traced step")
            return self


def _call_chained(fn: Any, frame: Any, event: str, arg: Any) -> Any:
    """Call a trace function installed before ours; its failure is its own."""
    if fn is None:
        return None
    try:
        return fn(frame, event, arg)
    except Exception as recorder_err:
        if owned_by_test(recorder_err):
            raise
        return None


def _with_self(entry: Any) -> tuple:
    if entry is None:
        return ((), ("self",))
    bound, mutated = entry
    return (bound, mutated if "self" in mutated else mutated + ("self",))


_RETURNS = frozenset(dis.opmap[n] for n in ("RETURN_VALUE", "RETURN_CONST") if n in dis.opmap)


def _at_return(frame: Any) -> bool:
    try:
        return frame.f_code.co_code[frame.f_lasti] in _RETURNS
    except Exception as recorder_err:
        if owned_by_test(recorder_err):
            raise
        return True


def _is_yield(frame: Any) -> bool:
    try:
        code = frame.f_code.co_code
        lasti = frame.f_lasti
        if code[lasti] == _YIELD_VALUE:
            return True
        # 3.13 reports a yield with f_lasti already on the RESUME after it
        return code[lasti] == _RESUME and lasti >= 2 and code[lasti - 2] == _YIELD_VALUE
    except Exception as recorder_err:
        if owned_by_test(recorder_err):
            raise
        return False


_RESUME = dis.opmap.get("RESUME")


class SettraceBackend:
    """Installs and removes the trace functions for one recording."""

    name = "settrace"

    def __init__(self, col: Collector) -> None:
        self.col = col
        self.prev_trace: Any = None
        self.prev_thread_trace: Any = None
        self.scope = col.scope
        self._tl = threading.local()
        # one bound method, so ``sys.gettrace() is`` it can tell ours apart
        self._global_fn = self._global

    def _thread_start(self, frame: Any, event: str, arg: Any) -> Any:
        """First trace call in a new thread: let the previous thread hook
        (coverage's) install its own tracer, then chain to it from ours."""
        prev_hook = self.prev_thread_trace
        result = _call_chained(prev_hook, frame, event, arg)
        installed = sys.gettrace()
        if installed == self._thread_start or installed is self._global_fn:
            installed = None  # threading put our own hook there
        # a hook that installed its own tracer (coverage) is chained through
        # that tracer; a plain trace function is what threading would have
        # installed, so it becomes this thread's chained global tracer
        self._tl.prev = installed if installed is not None else prev_hook
        sys.settrace(self._global_fn)
        return self._global(frame, event, arg, _chained_done=result)

    def _global(self, frame: Any, event: str, arg: Any, _chained_done: Any = None) -> Any:
        try:
            prev = getattr(self._tl, "prev", self.prev_trace)
            if _chained_done is not None:
                prev = None
            chained = _chained_done if prev is None else _call_chained(prev, frame, event, arg)
            if event != "call":
                return chained
            if prev is not None and sys.gettrace() is not self._global_fn:
                # coverage's CTracer, called on a call event, installs itself
                # again as the thread's C-level tracer: put ours back on top
                sys.settrace(self._global_fn)
            col = self.col
            if not col.active:
                return chained
            try:
                info = self.scope.code_info(frame.f_code)
            except BaseException as recorder_err:
                if owned_by_test(recorder_err):
                    raise
                col.fault("scope decision failed")
                return chained
            if info is None:
                if col.full:
                    self._external(frame)
                return chained
            ts = col.thread_state(threading.get_ident())
            kind = CALL
            if info.is_gen and frame.f_lasti >= 0 and _resumed(frame):
                kind = RESUME
            try:
                fs = col.enter(ts, info, frame, kind, frame.f_lineno)
            except BaseException as recorder_err:
                if owned_by_test(recorder_err):
                    raise
                col.fault("recorder error at a call")
                return chained
            return _Local(col, ts, fs, chained)
        except BaseException as recorder_err:
            # what a signal handler raised anywhere in here is the test's;
            # the sites above turn every other error into a fault
            if owned_by_test(recorder_err):
                self.col.fault(SIGNAL_STOPPED)
            raise

    def _external(self, frame: Any) -> None:
        """full_trace: a call from filmed code into code out of scope."""
        col = self.col
        ts = col.threads.get(threading.get_ident())
        if ts is None or not ts.stack:
            return
        caller = frame.f_back
        top = ts.stack[-1]
        if caller is None or caller.f_code is not top.code:
            return
        name = getattr(frame.f_code, "co_qualname", frame.f_code.co_name)
        out: list = []
        vid = col.capture(name, out)
        col.events.append((schema.EXTERNAL_CALL, top.act, caller.f_lineno, time.perf_counter_ns() - col.t0, vid, out))

    def start(self) -> None:
        self.prev_trace = sys.gettrace()
        self.prev_thread_trace = threading.gettrace() if hasattr(threading, "gettrace") else None
        threading.settrace(self._thread_start)
        sys.settrace(self._global_fn)

    def stop(self) -> None:
        if sys.gettrace() is self._global_fn:
            sys.settrace(self.prev_trace)
        elif sys.gettrace() is None:
            # CPython unsets a trace function that raised; a signal handler
            # that runs as the tracer starts (before any line of ours can
            # catch it) leaves no other trace than this
            self.col.fault(TRACER_REMOVED)
        threading.settrace(self.prev_thread_trace)  # type: ignore[arg-type]


def _resumed(frame: Any) -> bool:
    """A generator frame's 'call' event is a resume when it is not at its
    very first instruction (the RESUME opcode that starts every code)."""
    try:
        code = frame.f_code.co_code
        lasti = frame.f_lasti
        # 3.11+: generators start with RETURN_GENERATOR, POP_TOP, RESUME;
        # a first run is at or before that RESUME.
        first_resume = next((i for i in range(0, len(code), 2) if code[i] == dis.opmap["RESUME"]), 0)
        return lasti > first_resume
    except Exception as recorder_err:
        if owned_by_test(recorder_err):
            raise
        return False
