"""The ``sys.monitoring`` backend (PEP 669), Python 3.12+.

PY_START is the only always-on local event.  Its first firing per code
object decides scope: out-of-scope code gets DISABLE and never calls us
again; in-scope code gets LINE, returns, yields and resumes enabled on that
code object alone.  Exceptions (RAISE, EXCEPTION_HANDLED, PY_UNWIND...) can
only be global; their callbacks do one dict lookup to drop foreign code.

sys.monitoring's LINE does not fire when a loop jumps back to the same line
(a comprehension, ``for x in y: f(x)``), while sys.settrace reports every
iteration.  CPython's own settrace emulation (Python/legacy_tracing.c,
``sys_trace_jump_func``) adds a line event for a backward jump whose target
is on the jump's own line; we do the same, enabling JUMP only on code
objects that contain such a jump.
"""

from __future__ import annotations

# Bound at import: a test that monkeypatches builtins must not reach the recorder.
from builtins import bool, dict, getattr, hasattr, id, int, len, list, str, tuple, type  # noqa: A004

import sys
import threading
import time
from types import CodeType
from typing import Any

from . import schema
from .interrupts import owned_by_test
from .collector import Collector, FrameState, ThreadState
from .config import pure_python_requested
from .values import IMMUTABLE_SCALARS

try:
    from . import _hotpath
except ImportError:  # built without a C compiler: the Python callbacks do all the work
    _hotpath = None

CALL, LINE, RETURN, EXCEPTION, HANDLED, UNWIND, YIELD, RESUME = (
    schema.CALL, schema.LINE, schema.RETURN, schema.EXCEPTION, schema.HANDLED,
    schema.UNWIND, schema.YIELD, schema.RESUME)

_PREFERRED_TOOL_IDS = (4, 3, 2, 5)

# The tool id is taken once per process and kept: events an earlier
# recording DISABLEd stay disabled for the next one with the same scope,
# which is what keeps out-of-scope code free.  A recording with another
# scope restarts them.
_tool: int | None = None
_last_scope: tuple | None = None


def _acquire_tool(mon: Any) -> int:
    global _tool
    if _tool is not None and mon.get_tool(_tool) == "pytest-escope":
        return _tool
    for tool in _PREFERRED_TOOL_IDS:
        if mon.get_tool(tool) is None:
            mon.use_tool_id(tool, "pytest-escope")
            _tool = tool
            return tool
    raise RuntimeError("no free sys.monitoring tool id (all taken by other tools)")


def release() -> None:
    """Turn off the global events the recordings of this process left on
    (at the end of a session; a later recording turns them on again)."""
    mon = getattr(sys, "monitoring", None)
    if mon is not None and _tool is not None and mon.get_tool(_tool) == "pytest-escope":
        mon.set_events(_tool, 0)


class MonitoringBackend:
    """Registers callbacks under a free tool id for the length of a recording."""

    name = "monitoring"

    def __init__(self, col: Collector) -> None:
        self.col = col
        self.mon = sys.monitoring
        self.tool: int | None = None
        self.enabled_codes: list[Any] = []
        #: whether the per-event callbacks are the compiled ones (_hotpath.c)
        self.compiled = False

    # -- setup ------------------------------------------------------------

    def start(self) -> None:
        global _last_scope
        mon = self.mon
        self.tool = _acquire_tool(mon)
        E = mon.events
        tool = self.tool
        col = self.col
        scope = col.scope
        events = col.events
        t0 = col.t0
        perf = time.perf_counter_ns
        get_ident = threading.get_ident
        threads = col.threads
        getframe = sys._getframe
        DISABLE = mon.DISABLE
        record_lines = col.record_lines
        full = col.full
        limit = col.hot_limit
        set_local = mon.set_local_events
        enabled = self.enabled_codes
        local_events = E.PY_RETURN | E.PY_YIELD | E.PY_RESUME
        if record_lines:
            local_events |= E.LINE
        if full:
            local_events |= E.CALL
        infos: dict[int, Any] = {}  # id(code) -> CodeInfo for in-scope code
        outside: dict[int, Any] = {}  # id(code) -> code judged out of scope (full_trace's calls)

        def top_for(code: Any) -> tuple[Any, FrameState | None]:
            ts = threads.get(get_ident())
            if ts is None or not ts.stack:
                return ts, None
            fs = ts.stack[-1]
            if fs.code is not code:
                return ts, None
            return ts, fs

        def adopt(code: Any, line: int, frame: Any) -> FrameState | None:
            """A frame we did not see start (it began before recording)."""
            info = infos.get(id(code))
            if info is None:
                return None
            ts = col.thread_state(get_ident())
            return col.enter(ts, info, frame, CALL, line)

        def on_start(code: Any, offset: int) -> Any:
            if not col.active:
                return None
            info = infos.get(id(code))
            if info is None:
                try:
                    info = scope.code_info(code)
                except Exception as recorder_err:
                    if owned_by_test(recorder_err):
                        raise
                    col.fault("scope decision failed")
                    return DISABLE
                if info is None:
                    return DISABLE
                infos[id(code)] = info
                ev = local_events | (E.JUMP if (record_lines and info.needs_jump) else 0)
                set_local(tool, code, ev | E.PY_START)
                enabled.append(code)
            ts = col.thread_state(get_ident())
            try:
                col.enter(ts, info, getframe(1), CALL, code.co_firstlineno)
            except Exception as recorder_err:
                if owned_by_test(recorder_err):
                    raise
                col.fault("recorder error at a call")
            return None

        def on_resume(code: Any, offset: int) -> Any:
            info = infos.get(id(code))
            if info is None or not col.active:
                return None
            ts = col.thread_state(get_ident())
            frame = getframe(1)
            try:
                col.enter(ts, info, frame, RESUME, frame.f_lineno)
            except Exception as recorder_err:
                if owned_by_test(recorder_err):
                    raise
                col.fault("recorder error at a resume")
            return None

        def on_line(code: Any, line: int, depth: int = 1) -> Any:
            # depth: how far up the user's frame is (2 when on_jump calls us)
            try:
                ts = threads.get(get_ident())
                if ts is None or not ts.stack or ts.stack[-1].code is not code:
                    if not col.active:
                        return None
                    fs = adopt(code, line, getframe(depth + 1))
                    if fs is None:
                        return None
                else:
                    fs = ts.stack[-1]
                if fs.exc_pending:
                    fs.exc_pending = False
                    events.append((HANDLED, fs.act, line, perf() - t0))
                prev = fs.prev
                if prev:
                    changes = col.check_watch(fs, getframe(depth), prev)
                    if changes is not None:
                        events.append((LINE, fs.act, line, perf() - t0, None, changes))
                    else:
                        events.append((LINE, fs.act, line, perf() - t0))
                else:
                    events.append((LINE, fs.act, line, perf() - t0))
                prev = fs.watch.get(line)
                if full and fs.info.method_self:
                    prev = _with_self(prev)
                fs.prev = prev
                if len(events) >= limit:
                    col.overflow()
                return None
            except Exception as recorder_err:
                if owned_by_test(recorder_err):
                    raise
                col.fault("recorder error at a line step")
            return None

        def on_jump(code: Any, src: int, dest: int) -> Any:
            if dest > src:
                return DISABLE
            info = infos.get(id(code))
            if info is None:
                return DISABLE
            try:
                to_line = info.line_of_offset(dest)
                if to_line is None or to_line != info.line_of_offset(src):
                    return DISABLE
            except Exception as recorder_err:
                if owned_by_test(recorder_err):
                    raise
                col.fault("recorder error at a jump")
                return DISABLE
            return on_line(code, to_line, 2)

        def on_return(code: Any, offset: int, retval: Any) -> Any:
            ts, fs = top_for(code)
            if fs is None:
                return None
            frame = getframe(1)
            try:
                col.leave(ts, fs, frame, RETURN, frame.f_lineno, retval)
            except Exception as recorder_err:
                if owned_by_test(recorder_err):
                    raise
                col.fault("recorder error at a return")
            return None

        def on_yield(code: Any, offset: int, retval: Any) -> Any:
            ts, fs = top_for(code)
            if fs is None:
                return None
            frame = getframe(1)
            try:
                col.leave(ts, fs, frame, YIELD, frame.f_lineno, retval)
            except Exception as recorder_err:
                if owned_by_test(recorder_err):
                    raise
                col.fault("recorder error at a yield")
            return None

        # thread ident -> (id(frame state), offset, id(exception), filmable)
        # of the latest RERAISE in filmed code: ids, not the objects, so
        # the recorder keeps no exception (and its frames) alive
        reraised: dict[int, tuple[int, int, int, bool]] = {}

        def on_reraise(code: Any, offset: int, exc: Any) -> Any:
            # A re-raise (a bare ``raise``, the end of a ``finally``, an
            # ``except`` that does not match, a ``with`` whose ``__exit__``
            # let it through) is filmed only if the frame unwinds from
            # there: caught again in the same frame it changes nothing, and
            # the settrace backend, which gets no event for it, films the
            # same steps.  Right after the raise (no line step between) the
            # film already shows it in flight.
            if id(code) not in infos or type(exc) in _ITERATION_END:
                return None
            ts, fs = top_for(code)
            if fs is None:
                return None
            reraised[get_ident()] = (id(fs), offset, id(exc), not fs.exc_pending)
            return None

        def on_unwind(code: Any, offset: int, exc: Any) -> Any:
            if id(code) not in infos:
                return None
            ts, fs = top_for(code)
            if fs is None:
                return None
            frame = getframe(1)
            try:
                again = reraised.pop(get_ident(), None) if reraised else None
                if again is not None and again[3] and again[0] == id(fs) and again[1] == offset \
                        and again[2] == id(exc):
                    col.exception(fs, EXCEPTION, frame.f_lineno, exc)
                col.leave(ts, fs, frame, UNWIND, frame.f_lineno, None)
            except Exception as recorder_err:
                if owned_by_test(recorder_err):
                    raise
                col.fault("recorder error at an unwind")
            return None

        def on_raise(code: Any, offset: int, exc: Any) -> Any:
            if id(code) not in infos or type(exc) in _ITERATION_END:
                return None
            ts, fs = top_for(code)
            if fs is None:
                return None
            fs.exc_pending = True
            try:
                # RAISE fires again in each frame the exception passes; the
                # film keeps the frame that raised it (settrace's rule)
                tb = _traceback_of(exc)
                if tb is None or tb.tb_next is None:
                    col.exception(fs, EXCEPTION, getframe(1).f_lineno, exc)
            except Exception as recorder_err:
                if owned_by_test(recorder_err):
                    raise
                col.fault("recorder error at an exception")
            return None

        def on_throw(code: Any, offset: int, exc: Any) -> Any:
            # generator.throw()/close(): the frame resumes with an exception
            info = infos.get(id(code))
            if info is None or not col.active:
                return None
            ts = col.thread_state(get_ident())
            frame = getframe(1)
            try:
                # the RAISE that follows films the exception itself
                col.enter(ts, info, frame, RESUME, frame.f_lineno)
            except Exception as recorder_err:
                if owned_by_test(recorder_err):
                    raise
                col.fault("recorder error at a throw")
            return None

        def on_call(code: Any, offset: int, callable_: Any, arg0: Any) -> Any:
            # full_trace: note calls from filmed code into code out of scope.
            target = getattr(callable_, "__code__", None) if type(callable_).__name__ in ("function", "method") else None
            if target is not None:
                if id(target) in infos:
                    return None
                if id(target) not in outside:
                    # called before its first PY_START: the scope decides
                    try:
                        inside = type(target) is CodeType and scope.code_info(target) is not None
                    except Exception as recorder_err:
                        if owned_by_test(recorder_err):
                            raise
                        inside = False
                    if inside:
                        return None
                    outside[id(target)] = target
            ts, fs = top_for(code)
            if fs is None:
                return None
            try:
                name = _callable_name(callable_)
                out: list = []
                vid = col.capture(name, out)
                frame = getframe(1)
                events.append((schema.EXTERNAL_CALL, fs.act, frame.f_lineno, perf() - t0, vid, out))
            except Exception as recorder_err:
                if owned_by_test(recorder_err):
                    raise
                col.fault("recorder error at an external call")
            return None

        hot = _compiled_callbacks(col, infos, outside, on_line, on_resume, on_yield, on_return, on_jump, on_start,
                                  on_call)
        self.compiled = hot is not None
        reg = mon.register_callback
        reg(tool, E.PY_START, hot.start if hot else on_start)
        reg(tool, E.PY_RESUME, hot.resume if hot else on_resume)
        reg(tool, E.LINE, hot.line if hot else on_line)
        reg(tool, E.JUMP, hot.jump if hot else on_jump)
        reg(tool, E.PY_RETURN, hot.return_ if hot else on_return)
        reg(tool, E.PY_YIELD, hot.yield_ if hot else on_yield)
        reg(tool, E.PY_UNWIND, on_unwind)
        reg(tool, E.RERAISE, on_reraise)
        reg(tool, E.RAISE, hot.raise_ if hot else on_raise)
        reg(tool, E.PY_THROW, on_throw)
        if full:
            reg(tool, E.CALL, hot.call if hot else on_call)
        self._callbacks = (E.PY_START, E.PY_RESUME, E.LINE, E.JUMP, E.PY_RETURN, E.PY_YIELD,
                           E.PY_UNWIND, E.RAISE, E.PY_THROW, E.CALL, E.RERAISE)
        # Left on between recordings (``stop`` unregisters the callbacks
        # only): each change of a tool's global events makes CPython
        # re-instrument every code object the next time it runs, which cost
        # every test a pass over pytest's own code (10% of escope's time per
        # test in a suite of small tests).  ``release`` turns them off.
        wanted = E.PY_START | E.PY_UNWIND | E.RAISE | E.PY_THROW | E.RERAISE
        if mon.get_events(tool) != wanted:
            mon.set_events(tool, wanted)
        cfg = col.config
        scope_key = (cfg.rootdir, cfg.include, cfg.exclude, cfg.strategy)
        if scope_key != _last_scope:
            mon.restart_events()
            _last_scope = scope_key

    def stop(self) -> None:
        mon = self.mon
        tool = self.tool
        if tool is None:
            return
        try:
            for code in self.enabled_codes:
                try:
                    mon.set_local_events(tool, code, 0)
                except Exception:
                    pass
            for ev in self._callbacks:
                mon.register_callback(tool, ev, None)
        finally:
            self.tool = None


def _compiled_callbacks(col: Collector, infos: dict, outside: dict, on_line: Any, on_resume: Any,
                        on_yield: Any, on_return: Any, on_jump: Any, on_start: Any, on_call: Any) -> Any:
    """The C callbacks of ``_hotpath`` for this recording, or None.

    None when the extension was not built, when ``ESCOPE_PURE_PYTHON=1``
    asks for the Python callbacks, or when a test fault is injected (that
    hook lives in the Python path).  The Python callbacks are passed in:
    the C ones hand them every case they do not handle themselves.
    """
    if _hotpath is None or col.inject_fault or pure_python_requested():
        return None
    try:
        return _hotpath.Callbacks(
            collector=col, infos=infos, outside=outside, frame_state=FrameState, thread_state=ThreadState,
            immutable=IMMUTABLE_SCALARS, on_line=on_line, on_resume=on_resume, on_yield=on_yield,
            on_return=on_return, with_self=_with_self, on_jump=on_jump, disable=sys.monitoring.DISABLE,
            since_start_ns=time.perf_counter_ns() - col.t0, on_start=on_start, on_call=on_call)
    except Exception:
        col.fault("compiled callbacks unavailable; using the Python ones")
        return None


#: The iteration protocol's own ends are not failures: both backends leave
#: them out of the film (a for loop over a generator raises one in C).
_ITERATION_END = (StopIteration, StopAsyncIteration)

_tb_getter = BaseException.__dict__["__traceback__"].__get__


def _traceback_of(exc: Any) -> Any:
    try:
        return _tb_getter(exc)
    except Exception as recorder_err:
        if owned_by_test(recorder_err):
            raise
        return None


def _with_self(entry: Any) -> tuple:
    if entry is None:
        return ((), ("self",))
    bound, mutated = entry
    return (bound, mutated if "self" in mutated else mutated + ("self",))


def _callable_name(obj: Any) -> str:
    cls = type(obj)
    qual = None
    if cls.__name__ in ("function", "builtin_function_or_method", "method", "method_descriptor", "wrapper_descriptor"):
        try:
            qual = obj.__qualname__
        except Exception as recorder_err:
            if owned_by_test(recorder_err):
                raise
            qual = None
    if qual is None:
        try:
            qual = type.__dict__["__qualname__"].__get__(cls)
        except Exception as recorder_err:
            if owned_by_test(recorder_err):
                raise
            qual = "?"
    return qual
