"""One DAP debug session over one recording: the request handlers.

The debuggee is the film: "running" is moving the session's step, with the
same motions as the terminal session (``navigation``), so VS Code's
Step Over is ``n``, Step Back is ``rn``, Step Into is ``s``, Continue and
Reverse Continue are ``c`` and ``rc`` over the same breakpoints.  Each
handler is an ``on_<command>`` method that returns the response body or
raises ``EscopeError`` (an error response); events that follow a
response (``stopped``, ``terminated``) are queued and sent after it, as
clients expect.

Running off either end of the film (Continue with no breakpoint ahead,
Step Back at the first step) sends ``terminated``: the recorded program
has no more to show in that direction, as a time-travel debugger reports
the end of its history.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import TYPE_CHECKING, Any, Callable

from ..recorder import schema
from . import navigation as nav
from .dap_breakpoints import EXCEPTION_FILTERS, Breakpoints, disk_path, recorded_file
from .dap_protocol import MessageWriter
from .dap_variables import References, child_variables, value_text, variable
from .errors import EscopeError, UsageError
from .recording import Recording
from .render import lookup
from .state import State

if TYPE_CHECKING:
    from .state import Frame

__all__ = ["DapSession", "CAPABILITIES"]

CAPABILITIES: dict[str, Any] = {
    "supportsConfigurationDoneRequest": True,
    "supportsStepBack": True,
    "supportsConditionalBreakpoints": True,
    "supportsHitConditionalBreakpoints": True,
    "supportsFunctionBreakpoints": True,
    "supportsEvaluateForHovers": True,
    "supportsGotoTargetsRequest": True,
    "supportsExceptionInfoRequest": True,
    "supportsTerminateRequest": True,
    "supportsRestartFrame": False,
    "supportsSetVariable": False,
    "exceptionBreakpointFilters": EXCEPTION_FILTERS,
}

#: Requests a client may send before ``launch`` has opened a recording.
_BEFORE_LAUNCH = {"initialize", "launch", "attach", "disconnect", "terminate", "configurationDone", "threads",
                  "setExceptionBreakpoints"}


class DapSession:
    """Serves the requests of one client; ``handle`` one at a time."""

    def __init__(self, writer: MessageWriter, escope_dir: str | None = None) -> None:
        self.out = writer
        self.escope_dir = escope_dir
        self.rec: Recording | None = None
        self.step = 0
        self.state: State | None = None
        self.thread = 0
        self.stop_at = "failure"
        self.failure_step: int | None = None
        self.breakpoints: Breakpoints | None = None
        self.pending_filters: Any = None
        self.refs: References[Any] = References("variables reference")
        self.frames: References[tuple[State, int, int]] = References("frame id")
        self.thread_states: dict[int, State] = {}
        self.returned: tuple[str, dict[str, Any]] | None = None
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.done = False

    # -- dispatch -----------------------------------------------------------------

    def handle(self, request: dict[str, Any]) -> None:
        """Answer one request (a response, then any events it caused)."""
        seq, command = request["seq"], request["command"]
        args = request.get("arguments") or {}
        handler: Callable[[dict[str, Any]], dict[str, Any] | None] | None = getattr(self, f"on_{command}", None)
        self.events = []
        try:
            if handler is None:
                raise UsageError(f"escope dap does not support the request {command!r}")
            if self.rec is None and command not in _BEFORE_LAUNCH:
                raise UsageError(f"{command!r} before launch", fix="send launch with a test or a recording first")
            body = handler(args)
        except EscopeError as exc:
            self.out.error(seq, command, exc.message())
            return
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError, RecursionError) as exc:
            # a malformed argument (a string where a number belongs) or a
            # damaged recording: an error for this request, never the end
            # of the session
            self.out.error(seq, command, f"cannot answer {command}: {type(exc).__name__}: {exc}"[:300])
            return
        except Exception as exc:  # a server outlives any one request; ESCOPE_DEBUG=1 shows where it broke
            if os.environ.get("ESCOPE_DEBUG"):
                traceback.print_exc(file=sys.stderr)
            self.out.error(seq, command, f"escope dap could not answer {command} ({type(exc).__name__}: {exc}); "
                                         f"ESCOPE_DEBUG=1 prints the traceback on stderr"[:300])
            return
        self.out.response(seq, command, body)
        for name, event_body in self.events:
            self.out.event(name, event_body)

    def emit(self, name: str, body: dict[str, Any] | None = None) -> None:
        self.events.append((name, body or {}))

    @property
    def r(self) -> Recording:
        assert self.rec is not None
        return self.rec

    # -- starting and stopping -------------------------------------------------------

    def on_initialize(self, args: dict[str, Any]) -> dict[str, Any]:
        return dict(CAPABILITIES)

    def on_launch(self, args: dict[str, Any]) -> None:
        if self.rec is not None:
            raise UsageError("this session already replays a recording", fix="start a new debug session")
        cwd = args.get("cwd")
        if cwd:
            if not isinstance(cwd, str) or not os.path.isdir(cwd):
                raise UsageError(f"launch: cwd {cwd!r} is not a directory")
            os.chdir(cwd)
        target = args.get("recording") or args.get("test")
        if target is not None and not isinstance(target, str):
            raise UsageError("launch: test and recording are strings", fix='e.g. {"test": "test_invoice.py::test_fee"}')
        run = args.get("run")
        self.stop_at = args.get("stopAt", "failure")
        if self.stop_at not in ("failure", "start"):
            raise UsageError(f"launch: stopAt {self.stop_at!r}", fix='use "failure" or "start"')
        self.rec = Recording.open(target, run=run if isinstance(run, str) else None, escope_dir=self.escope_dir)
        rec = self.rec
        rec.check_step(rec.first_step)
        self.breakpoints = Breakpoints(rec)
        if self.pending_filters is not None:
            self.breakpoints.set_exceptions(self.pending_filters)
        f = rec.failure()
        self.failure_step = f.step if f else None
        self.emit("output", {"category": "console",
                             "output": f"escope: replaying {rec.test_id} ({rec.outcome}), steps "
                                       f"{rec.first_step}-{rec.last_step}\n"})
        self.emit("initialized")
        return None

    def on_configurationDone(self, args: dict[str, Any]) -> None:
        if self.rec is None:
            return None
        if self.stop_at == "failure" and self.failure_step is not None:
            f = self.r.failure()
            self._stop(self.failure_step, "exception", description=f"the test {self.r.outcome}",
                       text=f.message if f else None)
        else:
            if self.stop_at == "failure":
                self.emit("output", {"category": "console",
                                     "output": f"escope: the test {self.r.outcome}; stopped at its first step\n"})
            self._stop(self.r.first_step, "entry")
        return None

    def on_disconnect(self, args: dict[str, Any]) -> None:
        self.done = True
        if self.rec is not None:
            self.rec.close()
            self.rec = None
        return None

    def on_terminate(self, args: dict[str, Any]) -> None:
        self.emit("terminated")
        return None

    # -- moving ---------------------------------------------------------------------------

    def _stop(self, step: int, reason: str, **extra: Any) -> None:
        rec = self.r
        self.step = step
        self.state = rec.state_at(step)
        self.thread = rec.act(rec.event_row(step)[1]).thread
        self.refs.clear()
        self.frames.clear()
        self.thread_states = {self.thread: self.state}
        body = {"reason": reason, "threadId": self.thread, "allThreadsStopped": True}
        body.update({k: v for k, v in extra.items() if v is not None})
        self.emit("stopped", body)

    def _move(self, target: int | None, reason: str = "step", **extra: Any) -> dict[str, Any]:
        self.returned = None
        if target is None:
            self.emit("terminated")
        else:
            self._stop(target, reason, **extra)
        return {"allThreadsContinued": True}

    def on_next(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._move(nav.over(self.r, self.step, True))

    def on_stepBack(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._move(nav.over(self.r, self.step, False))

    def on_stepIn(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._move(nav.thread_step(self.r, self.step, True))

    def on_stepOut(self, args: dict[str, Any]) -> dict[str, Any]:
        """To the caller's next step after this frame returns; the value it
        returned shows in the caller's Locals as ``(return) NAME``."""
        rec = self.r
        end = nav.to_return(rec, self.step)
        if end is None:
            return self._move(None)
        kind, _act, _line, _t, vid = rec.event_row(end)
        returned = None
        value = rec.value(vid, end) if kind in (schema.RETURN, schema.YIELD) else None
        if value is not None:
            returned = (rec.function(rec.act(rec.event_row(end)[1]).code), value.to_json())
        after = nav.thread_step(rec, end, True)
        out = self._move(after if after is not None else end)
        self.returned = returned
        return out

    def _run(self, forward: bool) -> dict[str, Any]:
        assert self.breakpoints is not None
        found = self.breakpoints.next_stop(self.step, forward)
        if found is None:
            return self._move(None)
        step, reason, ids = found
        if reason == "exception":
            exc = self.r.state_at(step).exception
            return self._move(step, reason, description="exception raised",
                              text=exc.value.repr if exc else None)
        return self._move(step, reason, hitBreakpointIds=ids)

    def on_continue(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._run(True)

    def on_reverseContinue(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._run(False)

    def on_pause(self, args: dict[str, Any]) -> None:
        return None  # every motion ends before its response: there is never anything running to pause

    def on_gotoTargets(self, args: dict[str, Any]) -> dict[str, Any]:
        rec = self.r
        line = args.get("line")
        if type(line) is not int:
            raise UsageError("gotoTargets needs a line number")
        file = self._source_file(args.get("source"))
        codes = frozenset(c for c, v in rec.codes.items() if v[0] == file)
        if not codes:
            raise UsageError(f"{rec.files.get(file, 'this file')} did not run in this recording")
        nav.check_line(rec, codes, line)
        steps = nav.nearest_line_steps(rec, codes, line, self.step)
        if not steps:
            raise UsageError(f"line {line} of {rec.files.get(file)} never ran in this recording",
                             fix="pick a line that ran")
        return {"targets": [{"id": s + 1, "line": line,
                             "label": f"line {line}, step {s} ({'ahead' if s > self.step else 'back'})"}
                            for s in steps]}

    def on_goto(self, args: dict[str, Any]) -> None:
        target = args.get("targetId")
        if type(target) is not int:
            raise UsageError("goto needs a targetId from gotoTargets")
        step = self.r.check_step(target - 1)
        self._move(step, "goto")
        return None

    # -- breakpoints ---------------------------------------------------------------------

    def _source_file(self, source: Any) -> int | None:
        """The recorded file a DAP ``Source`` names (by path or by reference)."""
        if not isinstance(source, dict):
            raise UsageError("the request has no source")
        ref = source.get("sourceReference")
        if type(ref) is int and ref > 0 and ref - 1 in self.r.files:
            return ref - 1
        path = source.get("path")
        return recorded_file(self.r, path) if isinstance(path, str) else None

    def on_setBreakpoints(self, args: dict[str, Any]) -> dict[str, Any]:
        assert self.breakpoints is not None
        source = args.get("source")
        file = self._source_file(source)
        specs = args.get("breakpoints")
        if not isinstance(specs, list):
            specs = [{"line": n} for n in args.get("lines") or [] if type(n) is int]
        name = str(source.get("path") or source.get("name") or "this source") if isinstance(source, dict) else "?"
        return {"breakpoints": self.breakpoints.set_lines(file, name, specs)}

    def on_setFunctionBreakpoints(self, args: dict[str, Any]) -> dict[str, Any]:
        assert self.breakpoints is not None
        specs = args.get("breakpoints")
        return {"breakpoints": self.breakpoints.set_functions(specs if isinstance(specs, list) else [])}

    def on_setExceptionBreakpoints(self, args: dict[str, Any]) -> dict[str, Any]:
        filters = args.get("filters")
        if self.breakpoints is None:
            # VS Code may send these before launch has opened the recording
            self.pending_filters = filters
            return {"breakpoints": [{"verified": True} for _ in filters or []]} if isinstance(filters, list) else {}
        return {"breakpoints": self.breakpoints.set_exceptions(filters)}

    # -- looking around ---------------------------------------------------------------

    def on_threads(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.rec is None:
            return {"threads": []}
        names = dict(self.r.threads)
        if self.state is not None and self.thread not in names:
            names[self.thread] = self.state.thread
        return {"threads": [{"id": t, "name": str(n)} for t, n in sorted(names.items())]}

    def _thread_state(self, thread: Any) -> State:
        """The state of ``thread``: the stop's own, or for another thread its
        innermost live frame's latest step at or before the stop."""
        if self.state is None:
            raise UsageError("the session has not stopped yet", fix="send configurationDone")
        if thread is None or thread == self.thread:
            return self.state
        if type(thread) is not int or thread not in self.r.threads:
            raise UsageError(f"no thread {thread!r} in this recording")
        cached = self.thread_states.get(thread)
        if cached is not None:
            return cached
        rec = self.r
        row = rec.q1("SELECT act FROM activations WHERE thread = ? AND start_step <= ? "
                     "AND (end_step IS NULL OR end_step >= ?) ORDER BY depth DESC LIMIT 1",
                     (thread, self.step, self.step))
        step = None
        if row is not None:
            found = rec.q1("SELECT step FROM events WHERE act = ? AND step <= ? ORDER BY step DESC LIMIT 1",
                           (row[0], self.step))
            step = found[0] if found else None
        if step is None:
            raise UsageError(f"thread {rec.thread_name(thread)} has no frame in recorded code at step {self.step}")
        state = self.thread_states[thread] = rec.state_at(step)
        return state

    def _source(self, file: int) -> dict[str, Any]:
        """A DAP ``Source``: the file on disk, else the recording's embedded copy."""
        rec = self.r
        recorded = rec.files.get(file, "?")
        path = disk_path(rec, file)
        name = os.path.basename(str(recorded))
        if path is not None:
            return {"name": name, "path": path}
        return {"name": name, "sourceReference": file + 1, "origin": "embedded in the recording",
                "presentationHint": "emphasize"}

    def on_stackTrace(self, args: dict[str, Any]) -> dict[str, Any]:
        state = self._thread_state(args.get("threadId"))
        start = args.get("startFrame") or 0
        levels = args.get("levels") or 0
        if type(start) is not int or type(levels) is not int or start < 0 or levels < 0:
            raise UsageError("stackTrace: startFrame and levels are whole numbers")
        frames = []
        inner = list(range(len(state.stack) - 1, -1, -1))
        chosen = inner[start:start + levels] if levels else inner[start:]
        for i in chosen:
            f = state.stack[i]
            code = self.r.codes.get(f.code)
            # the film's "instruction pointer" is the step: a client can
            # tell two stops at the same line apart by it
            entry: dict[str, Any] = {"id": self.frames.add((state, i, f.code)), "name": f.function,
                                     "line": f.line, "column": 1, "instructionPointerReference": str(state.step)}
            if code is not None:
                entry["source"] = self._source(code[0])
            frames.append(entry)
        return {"stackFrames": frames, "totalFrames": len(state.stack)}

    def _frame(self, frame_id: Any) -> tuple[State, int]:
        state, index, _code = self.frames.get(frame_id)
        return state, index

    def on_scopes(self, args: dict[str, Any]) -> dict[str, Any]:
        state, index = self._frame(args.get("frameId"))
        scopes = [{"name": "Locals", "presentationHint": "locals", "expensive": False,
                   "variablesReference": self.refs.add(("locals", state, index))}]
        if index == len(state.stack) - 1 and state.exception is not None:
            scopes.append({"name": f"Exception (raised at step {state.exception.step})", "expensive": False,
                           "variablesReference": self.refs.add(("exception", state))})
        return {"scopes": scopes}

    def on_variables(self, args: dict[str, Any]) -> dict[str, Any]:
        item = self.refs.get(args.get("variablesReference"))
        if item[0] == "locals":
            state, index = item[1], item[2]
            frame: Frame = state.stack[index]
            out = [variable(name, v.to_json(), name, self.refs) for name, v in frame.locals.items()]
            if index == len(state.stack) - 1:
                if state.value is not None and state.kind in ("return", "yield"):
                    out.append(variable(f"({state.kind} value)", state.value.to_json(), None, self.refs))
                if self.returned is not None and state is self.state:
                    out.append(variable(f"(return) {self.returned[0]}", self.returned[1], None, self.refs))
        elif item[0] == "exception":
            exc = item[1].exception
            out = [variable(exc.value.type, exc.value.to_json(), None, self.refs)]
        else:
            out = child_variables(item[1], item[2], self.refs)
        start, count = args.get("start") or 0, args.get("count") or 0
        if type(start) is int and type(count) is int and (start or count):
            out = out[start:start + count] if count else out[start:]
        return {"variables": out}

    def on_evaluate(self, args: dict[str, Any]) -> dict[str, Any]:
        expression = args.get("expression")
        if not isinstance(expression, str) or not expression.strip():
            raise UsageError("evaluate needs an expression: a local name or a path like a.b[0]")
        frame_id = args.get("frameId")
        if frame_id is None:
            state = self._thread_state(None)
            frame = state.stack[-1]
        else:
            state, index = self._frame(frame_id)
            frame = state.stack[index]
        form = lookup(frame, expression)
        var = variable(expression.strip(), form, expression.strip(), self.refs)
        return {"result": var["value"], "type": var["type"], "variablesReference": var["variablesReference"]}

    def on_exceptionInfo(self, args: dict[str, Any]) -> dict[str, Any]:
        state = self._thread_state(args.get("threadId"))
        exc = state.exception
        if exc is None:
            raise UsageError(f"no exception is in flight at step {state.step}")
        form = exc.value.to_json()
        failing = exc.step == self.failure_step
        return {"exceptionId": exc.value.type, "description": value_text(form),
                "breakMode": "unhandled" if failing else "always",
                "details": {"typeName": exc.value.type, "message": value_text(form),
                            "stackTrace": f"raised at step {exc.step}"}}

    def on_source(self, args: dict[str, Any]) -> dict[str, Any]:
        rec = self.r
        ref = args.get("sourceReference")
        source = args.get("source")
        if (type(ref) is not int or ref <= 0) and isinstance(source, dict):
            ref = source.get("sourceReference")
        if type(ref) is not int or ref - 1 not in rec.files:
            raise UsageError(f"no source reference {ref!r} in this recording")
        file = ref - 1
        code = next((c for c, v in rec.codes.items() if v[0] == file), None)
        lines = rec.source_lines(code) if code is not None else []
        if not lines:
            raise UsageError(f"the source of {rec.files.get(file)} is not embedded in the recording",
                             fix="record with the file present, or open it from disk")
        return {"content": "\n".join(lines) + "\n", "mimeType": "text/x-python"}
