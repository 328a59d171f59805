"""The breakpoints a DAP client sets, over the replayer's own.

Line and function breakpoints are ``navigation.Breakpoint`` objects, so
``continue`` and ``reverseContinue`` find them with the same search as the
terminal session's ``c`` and ``rc``, and a ``condition`` is the same
``conditions.Condition`` over recorded values.  What DAP adds:

* ``hitCondition`` (``5``, ``>= 5``, ``% 3``...): the hit's ordinal is
  counted from the start of the film, not from where the session is, so a
  breakpoint stops at the same steps whichever way the session travels;
* exception breakpoints: ``raised`` stops where an exception is first
  raised (its re-reports in each caller are folded, as in the state's
  "exception in flight"), ``uncaught`` where the exception that failed the
  test was raised;
* a client names files by absolute path while a recording keeps paths
  relative to its rootdir: ``recorded_file`` maps one to the other.
"""

from __future__ import annotations

import bisect
import os
import re
from typing import TYPE_CHECKING, Any, Callable

from ..recorder import schema
from . import navigation as nav
from .conditions import Condition
from .errors import EscopeError, UsageError
from .film_search import search_for
from .state import exception_in_flight, frame_values

if TYPE_CHECKING:
    from .recording import Recording

__all__ = ["EXCEPTION_FILTERS", "HitCondition", "Breakpoints", "recorded_file", "disk_path"]

EXCEPTION_FILTERS = [
    {"filter": "raised", "label": "Raised Exceptions", "default": False,
     "description": "where any exception is raised, and where a frame raises it again"},
    {"filter": "uncaught", "label": "Uncaught Exceptions", "default": True,
     "description": "where the exception that failed the test was raised"},
]

_HIT = re.compile(r"^\s*(==|>=|<=|>|<|%)?\s*(\d+)\s*$")


class _HitCounter:
    """The steps where a breakpoint matches and its condition holds,
    counted from the film's start only as far as a question needs: a chunk
    of the film at a time (an unpacked film: all at once)."""

    def __init__(self, rec: "Recording", b: nav.Breakpoint) -> None:
        self.rec, self.b = rec, b
        self.steps: list[int] = []
        #: the next chunk to count (len(bases): all counted)
        self._next = 0
        self._ends = len(rec.store.bases) if rec.store is not None else 1

    def _more(self) -> bool:
        if self._next >= self._ends:
            return False
        if self.rec.store is not None:
            self.steps.extend(search_for(self.rec).chunk_matches(self.b, self._next))
        else:
            self.steps = _all_hits_sql(self.rec, self.b)
        self._next += 1
        return True

    def _covers(self, step: int) -> bool:
        """Whether every hit at or before ``step`` is counted."""
        store = self.rec.store
        return self._next >= self._ends or (store is not None and store.bases[self._next] > step)

    def ordinal(self, step: int, cap: int | None = None) -> int:
        """The number of hits at or before ``step``; once past ``cap``, any
        number above it (the hits counted so far all lie before ``step``)."""
        while not self._covers(step) and (cap is None or len(self.steps) <= cap) and self._more():
            pass
        return bisect.bisect_right(self.steps, step)

    def nth(self, n: int) -> int | None:
        """The step of hit number ``n`` (from 1); None when there are fewer."""
        while len(self.steps) < n and self._more():
            pass
        return self.steps[n - 1] if len(self.steps) >= n else None


def _all_hits_sql(rec: "Recording", b: nav.Breakpoint) -> list[int]:
    """Every step where ``b`` matches and its condition holds, in an
    unpacked film: one pass over its line (call) events, joined to their
    code by SQLite rather than one lookup per activation."""
    codes = sorted(b.codes)
    # events_kind is a partial index (WHERE kind != LINE): SQLite uses
    # it only when the query holds that very term
    where = (f"e.kind = {schema.CALL} AND e.kind != {schema.LINE}" if b.function
             else f"e.kind = {schema.LINE} AND e.line = ?")
    sql = (f"SELECT e.step, a.frame FROM events e JOIN activations a ON a.act = e.act "
           f"JOIN frames f ON f.frame = a.frame WHERE {where} "
           f"AND f.code IN ({','.join('?' * len(codes))}) ORDER BY e.step")
    args = tuple(codes) if b.function else (b.line, *codes)
    cond = b.condition
    return [step for step, frame in rec.iterate(sql, args)
            if cond is None or cond.holds(frame_values(rec, frame, step, cond.names))]


class HitCondition:
    """``N`` (the Nth hit only, as debugpy reads it), ``== N``, ``> N``, ``>= N``, ``< N``, ``<= N``
    or ``% N`` (every Nth hit)."""

    def __init__(self, text: str) -> None:
        m = _HIT.match(text)
        if m is None:
            raise UsageError(f"cannot read the hit condition {text!r}",
                             fix="use N, == N, > N, >= N, < N, <= N or % N")
        self.op, self.n = m.group(1) or "==", int(m.group(2))
        if self.op == "%" and self.n == 0:
            raise UsageError("the hit condition % 0 divides by zero", fix="use % N with N of 1 or more")
        n = self.n
        #: the lowest and highest hit numbers it accepts (None: no highest)
        self.floor: int = max(1, {"==": n, ">=": n, ">": n + 1, "%": n}.get(self.op, 1))
        self.cap: int | None = {"==": n, "<=": n, "<": n - 1}.get(self.op)

    def accepts(self, hit: int) -> bool:
        op, n = self.op, self.n
        return {"==": hit == n, ">=": hit >= n, "<=": hit <= n, ">": hit > n, "<": hit < n,
                "%": n > 0 and hit % n == 0}[op]


def _rootdir(rec: "Recording") -> str:
    return rec.meta.get("rootdir") or os.getcwd()


def disk_path(rec: "Recording", file: int) -> str | None:
    """The absolute path of a recorded file when it is still on disk."""
    path = rec.files.get(file)
    if not isinstance(path, str) or not path:
        return None
    full = path if os.path.isabs(path) else os.path.join(_rootdir(rec), path)
    return os.path.normpath(full) if os.path.isfile(full) else None


def recorded_file(rec: "Recording", client_path: str) -> int | None:
    """The recorded file a client's path names: the same file under the
    rootdir, else the recorded path that is the longest tail of it."""
    want = os.path.normpath(client_path)
    best: tuple[int, int] | None = None
    for file, path in rec.files.items():
        if not isinstance(path, str) or not path:
            continue
        full = os.path.normpath(path if os.path.isabs(path) else os.path.join(_rootdir(rec), path))
        if full == want:
            return file
        if want.endswith(os.sep + os.path.normpath(path)) and (best is None or len(path) > best[1]):
            best = (file, len(path))
    return best[0] if best else None


class Breakpoints:
    """Every breakpoint of one DAP session; ids are DAP breakpoint ids."""

    def __init__(self, rec: "Recording") -> None:
        self.rec = rec
        self.lines: dict[int, list[nav.Breakpoint]] = {}
        self.functions: list[nav.Breakpoint] = []
        self.filters: set[str] = set()
        self._next_id = 0

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _extras(self, b: nav.Breakpoint, spec: dict[str, Any]) -> None:
        """The condition and hit condition of ``spec`` onto ``b`` (UsageError if unreadable)."""
        cond = spec.get("condition")
        if isinstance(cond, str) and cond.strip():
            b.condition = Condition(cond)
        hit_text = spec.get("hitCondition")
        if isinstance(hit_text, str) and hit_text.strip():
            hit = HitCondition(hit_text)
            b.also = self._hit_test(b, hit)

    def _hit_test(self, b: nav.Breakpoint, hit: HitCondition) -> Callable[[int], bool]:
        counter = _HitCounter(self.rec, b)

        def test(step: int) -> bool:
            return hit.accepts(counter.ordinal(step, hit.cap))

        def window() -> tuple[int, int] | None:
            if hit.cap is not None and hit.floor > hit.cap:
                return None
            lo = counter.nth(hit.floor)
            if lo is None:
                return None
            hi = counter.nth(hit.cap) if hit.cap is not None else None
            return lo, self.rec.last_step if hi is None else hi

        b.window = window
        return test

    def set_lines(self, file: int | None, name: str, specs: list[Any]) -> list[dict[str, Any]]:
        """``setBreakpoints`` for one source: replaces that source's breakpoints."""
        codes = frozenset(c for c, v in self.rec.codes.items() if v[0] == file) if file is not None else frozenset()
        kept: list[nav.Breakpoint] = []
        out: list[dict[str, Any]] = []
        for spec in specs:
            line = spec.get("line") if isinstance(spec, dict) else None
            bid = self._id()
            if type(line) is not int:
                out.append({"id": bid, "verified": False, "message": "a breakpoint needs a line number"})
                continue
            if not codes:
                out.append({"id": bid, "verified": False, "line": line,
                            "message": f"{name} did not run in this recording"})
                continue
            b = nav.Breakpoint(bid, file=self.rec.files.get(file), line=line, codes=codes)
            try:
                nav.check_line(self.rec, codes, line)
                self._extras(b, spec)
            except EscopeError as exc:
                out.append({"id": bid, "verified": False, "line": line, "message": exc.message()})
                continue
            kept.append(b)
            entry: dict[str, Any] = {"id": bid, "verified": True, "line": line}
            if not any(self.rec.node(c, line) for c in codes):
                entry.update(verified=False, message=f"no statement at line {line} ran in this recording")
            out.append(entry)
        if file is not None:
            self.lines[file] = kept
        return out

    def set_functions(self, specs: list[Any]) -> list[dict[str, Any]]:
        """``setFunctionBreakpoints``: replaces every function breakpoint."""
        self.functions = []
        out: list[dict[str, Any]] = []
        for spec in specs:
            name = spec.get("name") if isinstance(spec, dict) else None
            bid = self._id()
            if not isinstance(name, str) or not name.strip() or ":" in name or "," in name:
                out.append({"id": bid, "verified": False, "message": "a function breakpoint needs a function name"})
                continue
            try:
                b = nav.make_breakpoint(self.rec, bid, name.strip(), 0)
                self._extras(b, spec)
            except EscopeError as exc:
                out.append({"id": bid, "verified": False, "message": exc.message()})
                continue
            self.functions.append(b)
            out.append({"id": bid, "verified": True})
        return out

    def set_exceptions(self, filters: Any) -> list[dict[str, Any]]:
        known = {f["filter"] for f in EXCEPTION_FILTERS}
        wanted = [f for f in filters if isinstance(f, str)] if isinstance(filters, list) else []
        self.filters = {f for f in wanted if f in known}
        return [{"verified": f in known} | ({} if f in known else {"message": f"no exception filter {f!r}"})
                for f in wanted]

    def all(self) -> list[nav.Breakpoint]:
        return [b for bs in self.lines.values() for b in bs] + self.functions

    def _exception_stop(self, step: int, forward: bool) -> int | None:
        rec = self.rec
        best: int | None = None
        if "uncaught" in self.filters:
            f = rec.failure()
            if f is not None and (f.step > step if forward else f.step < step):
                best = f.step
        if "raised" in self.filters:
            op, order = (">", "") if forward else ("<", " DESC")
            # "kind != LINE" repeats the partial index's own WHERE: without it
            # SQLite does not use events_kind and walks the film by step
            sql = (f"SELECT step, act FROM events WHERE kind = {schema.EXCEPTION} AND kind != {schema.LINE} "
                   f"AND step {op} ? ORDER BY step{order}")
            for s, act in rec.iterate(sql, (step,)):
                if best is not None and (s >= best if forward else s <= best):
                    break
                exc = exception_in_flight(rec, s, rec.act(act).thread)
                if exc is not None and exc.step == s:  # not a caller's re-report of the same exception
                    best = s
                    break
        return best

    def next_stop(self, step: int, forward: bool) -> tuple[int, str, list[int]] | None:
        """The nearest stop after (before) ``step``: ``(step, reason, hit ids)``,
        reason ``breakpoint`` or ``exception``; None when the film ends first."""
        hit = nav.breakpoint_hit(self.rec, self.all(), step, forward)
        exc = self._exception_stop(step, forward)
        if hit is not None and (exc is None or (hit[0] <= exc if forward else hit[0] >= exc)):
            return hit[0], "breakpoint", [hit[1].number]
        if exc is not None:
            return exc, "exception", []
        return None
