"""Moving through the film: pdb's motions and their reverse twins.

Every motion is a handful of indexed lookups in one direction or the other
(``events_act`` for the frame's own events, the primary key for the thread's
next step), so stepping back costs what stepping forward costs.

Semantics (documented in docs/replay.md):

* ``s`` / ``rs``: the next / previous step on the same thread.
* ``n`` / ``rn``: the next / previous step of the current frame's
  activation, skipping what its callees did; past the frame's end (its
  return, yield or unwind) the caller's next step, and before its start
  the caller's previous one.
* ``r`` / ``rr``: to the current activation's return (yield, unwind), or
  back to its call (resume).  At that point already, the caller's.
* ``n``, ``rn``, ``r`` and ``rr`` act on the frame selected with ``u`` /
  ``d`` (``act``), as pdb's do.
* ``j LINE``: the next step at that line of the selected frame's file, or
  the latest one before when none follows.
* ``c`` / ``rc``: to the next / previous breakpoint hit or change of a
  watched name; the end / start of the film when there is none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..recorder import schema
from .conditions import Condition
from .errors import UnknownNameError, UsageError
from .film_search import search_for
from .state import frame_values
from .values import Path, Value, parse_path, walk

if TYPE_CHECKING:
    from .recording import Recording


def thread_step(rec: "Recording", step: int, forward: bool) -> int | None:
    """The next (previous) step on the same thread as ``step``."""
    thread = rec.act(rec.event_row(step)[1]).thread
    start = step + 1 if forward else step - 1
    if not rec.first_step <= start <= rec.last_step:
        return None
    for s, _kind, act, _line, _value in rec.walk(start, forward):
        if rec.act(act).thread == thread:
            return s
    return None


def _act_step(rec: "Recording", act: int, step: int, forward: bool) -> int | None:
    return rec.act_step(act, step, forward)


def _start(rec: "Recording", step: int, act: int | None) -> int:
    return rec.event_row(step)[1] if act is None else act


def over(rec: "Recording", step: int, forward: bool, act: int | None = None) -> int | None:
    """``n`` (forward) and ``rn`` (backward), in activation ``act`` (default:
    the step's own)."""
    for a in rec.callers(_start(rec, step, act), step):
        s = _act_step(rec, a.act, step, forward)
        if s is not None:
            return s
    return thread_step(rec, step, forward)


def to_return(rec: "Recording", step: int, act: int | None = None) -> int | None:
    """``r``: the step at which activation ``act`` (default: the step's) ends."""
    for a in rec.callers(_start(rec, step, act)):
        if a.end is None:
            return None
        if a.end > step:
            return a.end
    return None


def to_call(rec: "Recording", step: int, act: int | None = None) -> int | None:
    """``rr``: the step at which activation ``act`` (default: the step's) began."""
    for a in rec.callers(_start(rec, step, act)):
        if a.start < step:
            return a.start
    return None


# -- breakpoints and watches ------------------------------------------------------

@dataclass
class Breakpoint:
    """``b FILE:LINE``, ``b LINE`` (current file) or ``b FUNCTION``, each
    with an optional ``, CONDITION``."""

    number: int
    file: str | None = None
    line: int | None = None
    function: str | None = None
    codes: frozenset[int] = frozenset()
    condition: Condition | None = None
    #: One more test at a step where the breakpoint matched and its
    #: condition held (``escope dap``'s hit counts); None: always stops.
    also: Callable[[int], bool] | None = None
    #: ``(first, last)``: the steps outside which ``also`` never passes
    #: (None: it passes nowhere), so a search stops early; None: no window.
    window: Callable[[], tuple[int, int] | None] | None = None

    def __str__(self) -> str:
        where = f"function {self.function}" if self.function else f"{self.file}:{self.line}"
        return f"{self.number}: {where}" + (f" if {self.condition}" if self.condition else "")


def file_codes(rec: "Recording", file: str) -> frozenset[int]:
    """The codes of a recorded file, named in full or by a tail of its path."""
    return frozenset(c for c, v in rec.codes.items() if rec.files.get(v[0]) == file
                     or rec.files.get(v[0], "").endswith("/" + file))


def check_line(rec: "Recording", codes: frozenset[int], line: int) -> None:
    """Refuse a line the file does not have, as pdb does ("End of file")."""
    lines = rec.source_lines(next(iter(codes)))
    if line < 1 or (lines and line > len(lines)):
        name = rec.file_of(next(iter(codes)))
        raise UsageError(f"line {line} is not in {name}", fix=f"it has lines 1-{len(lines)}" if lines else None)


def make_breakpoint(rec: "Recording", number: int, spec: str, current_code: int) -> Breakpoint:
    spec, comma, cond_text = spec.partition(",")
    spec = spec.strip()
    if comma and not cond_text.strip():
        raise UsageError("a comma needs a condition after it", fix="e.g. b 36, rate > 5")
    condition = Condition(cond_text) if comma else None
    file, _, line = spec.rpartition(":")
    if not file and spec.isdigit():
        file, line = rec.file_of(current_code), spec
    if line.isdigit() and file:
        codes = file_codes(rec, file)
        if not codes:
            raise UnknownNameError(f"no recorded file {file!r}", fix="files: " + ", ".join(sorted(rec.files.values())))
        check_line(rec, codes, int(line))
        return Breakpoint(number, file=rec.file_of(next(iter(codes))), line=int(line), codes=codes,
                          condition=condition)
    codes = frozenset(c for c, v in rec.codes.items() if spec in (v[1], v[2]))
    if not codes:
        raise UnknownNameError(f"no function {spec!r} ran in this recording",
                               fix="use b FILE:LINE, b LINE or a function name (see the functions with: w, or "
                                   "escope flow)")
    return Breakpoint(number, function=spec, codes=codes, condition=condition)


def _line_scan(rec: "Recording", codes: frozenset[int], line: int, step: int, forward: bool,
               bound: int | None = None) -> int | None:
    """The first line step at ``line`` in ``codes`` after (before) ``step``,
    not past ``bound`` when given."""
    if rec.store is not None:
        return next(search_for(rec).hits(codes, line, step, forward, bound), None)
    op, order = (">", "") if forward else ("<", " DESC")
    sql = f"SELECT step, act FROM events WHERE step {op} ? AND kind = ? AND line = ?"
    args: tuple = (step, schema.LINE, line)
    if bound is not None:
        sql += f" AND step {'<=' if forward else '>='} ?"
        args += (bound,)
    for s, act in rec.iterate(sql + f" ORDER BY step{order}", args):
        if rec.act(act).code in codes:
            return s
    return None


def line_step(rec: "Recording", codes: frozenset[int], line: int, step: int) -> int | None:
    """``j LINE``: the next line step at ``line`` in ``codes`` after ``step``,
    else the latest one before it."""
    found = _line_scan(rec, codes, line, step, True)
    return found if found is not None else _line_scan(rec, codes, line, step, False)


def nearest_line_steps(rec: "Recording", codes: frozenset[int], line: int, step: int) -> list[int]:
    """``goto``'s targets: the line step at ``line`` in ``codes`` just after
    ``step`` and the one just before it when that is not farther, the
    nearer first.  The backward scan stops at the forward one's distance,
    so a line that runs again just ahead costs no long walk back."""
    after = _line_scan(rec, codes, line, step, True)
    bound = step - (after - step) if after is not None else None
    before = _line_scan(rec, codes, line, step, False, bound)
    found = [s for s in (after, before) if s is not None]
    found.sort(key=lambda s: (abs(s - step), s < step))
    return found


@dataclass
class Watch:
    """A name (or path) of one frame whose changes stop ``c`` and ``rc``."""

    text: str
    frame: int
    function: str
    path: Path = field(default_factory=lambda: Path("", ()))
    name_id: int = 0

    def __str__(self) -> str:
        return f"{self.text} (in {self.function}, frame {self.frame})"


def make_watch(rec: "Recording", text: str, frame: int, function: str) -> Watch:
    path = parse_path(text)
    nid = rec.name_ids().get(path.root)
    if nid is None or not _binds(rec, frame, nid):
        raise UnknownNameError(f"{function} has no local {path.root!r}", fix="see its locals with: p or w")
    return Watch(text, frame, function, path, nid)


def _binds(rec: "Recording", frame: int, name: int) -> bool:
    """Whether ``frame`` ever binds ``name``."""
    if rec.store is None:
        return rec.q1("SELECT 1 FROM bindings WHERE frame = ? AND name = ? LIMIT 1", (frame, name)) is not None
    made = rec.store.frame_row(frame)
    since = made[1] - 1 if made else rec.first_step - 1
    return rec.store.binding_steps(frame, name, since, True) is not None


def watch_value(rec: "Recording", w: Watch, step: int) -> tuple[Any, int | None]:
    """(comparable value, bound object) of a watch at ``step``."""
    vid = rec.binding(w.frame, w.name_id, step)
    if vid is None:
        return None, None
    value = rec.value(vid, step)
    obj = (rec.obj_of(vid),)
    form: Any = value.to_json() if isinstance(value, Value) else None
    if w.path.steps and form is not None:
        try:
            form = walk(form, w.path)
        except UnknownNameError:
            form = None
    return form, (obj[0] if obj else None)


def _candidate(rec: "Recording", w: Watch, step: int, obj: int | None, forward: bool) -> int | None:
    """The next (previous, including ``step``) step at which the watch may change."""
    found = []
    if rec.store is not None:
        # backward includes ``step``: the film's ``before`` is exclusive
        edge = step if forward else step + 1
        found = [rec.store.binding_steps(w.frame, w.name_id, edge, forward)]
        if obj is not None:
            found.append(rec.store.snapshot_step(obj, edge, forward))
        steps = [s for s in found if s is not None]
        return (min(steps) if forward else max(steps)) if steps else None
    if forward:
        row = rec.q1("SELECT step FROM bindings WHERE frame = ? AND name = ? AND step > ? ORDER BY step LIMIT 1",
                     (w.frame, w.name_id, step))
        if row:
            found.append(row[0])
        if obj is not None:
            row = rec.q1("SELECT step FROM vals WHERE obj = ? AND step > ? ORDER BY step LIMIT 1", (obj, step))
            if row:
                found.append(row[0])
        return min(found) if found else None
    row = rec.q1("SELECT step FROM bindings WHERE frame = ? AND name = ? AND step <= ? ORDER BY step DESC LIMIT 1",
                 (w.frame, w.name_id, step))
    if row:
        found.append(row[0])
    if obj is not None:
        row = rec.q1("SELECT step FROM vals WHERE obj = ? AND step <= ? ORDER BY step DESC LIMIT 1", (obj, step))
        if row:
            found.append(row[0])
    return max(found) if found else None


def watch_change(rec: "Recording", w: Watch, step: int, forward: bool) -> int | None:
    """The first step after (before) ``step`` at which the watched value differs
    from the step just before it."""
    if forward:
        cur = step
        before, obj = watch_value(rec, w, cur)
        while True:
            c = _candidate(rec, w, cur, obj, True)
            if c is None:
                return None
            now, obj = watch_value(rec, w, c)
            if now != before:
                return c
            cur = c
    cur = step
    while cur >= rec.first_step:
        _v, obj = watch_value(rec, w, cur)
        p = _candidate(rec, w, cur, obj, False)
        if p is None:
            return None
        if p < step and (p <= rec.first_step or watch_value(rec, w, p)[0] != watch_value(rec, w, p - 1)[0]):
            return p
        cur = p - 1
    return None


def breakpoint_hit(rec: "Recording", bps: list[Breakpoint], step: int, forward: bool) -> tuple[int, Breakpoint] | None:
    if not bps:
        return None
    if rec.store is not None:
        search = search_for(rec)
        best: tuple[int, Breakpoint] | None = None
        for b in bps:
            # a later breakpoint stops first only strictly before: at the
            # same step the earlier one in the list is the one reported
            bound = None if best is None else (best[0] - 1 if forward else best[0] + 1)
            s = next(search.matches(b, step, forward, bound), None)
            if s is not None:
                best = (s, b)
        return best
    lines = sorted({b.line for b in bps if b.line is not None})
    conds = []
    args: list[Any] = [step]
    if lines:
        conds.append(f"(kind = {schema.LINE} AND line IN ({','.join('?' * len(lines))}))")
        args += lines
    if any(b.function for b in bps):
        conds.append(f"kind = {schema.CALL}")
    op, order = (">", "") if forward else ("<", " DESC")
    sql = f"SELECT step, kind, act, line FROM events WHERE step {op} ? AND ({' OR '.join(conds)}) ORDER BY step{order}"
    found = rec.iterate(sql, tuple(args))
    for s, kind, act, line in found:
        code = rec.act(act).code
        for b in bps:
            if code not in b.codes:
                continue
            if (b.function and kind == schema.CALL) or (b.line is not None and kind == schema.LINE
                                                        and line == b.line):
                if (b.condition is None or b.condition.holds(
                        frame_values(rec, rec.act(act).frame, s, b.condition.names))) \
                        and (b.also is None or b.also(s)):
                    return s, b
    return None
