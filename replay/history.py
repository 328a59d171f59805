"""A variable's history: every value a name (or ``a.b[0]`` path) took.

``Recording.history(name)`` returns a ``History``: a lazy sequence,
computed in step order as far as it is read and kept.  ``h[:50]``,
``bool(h)`` and a loop that stops early cost what they reach, so a name
rebound a hundred thousand times shows its first page as fast as one
rebound ten times; ``len(h)``, negative indexes, ``list(h)`` and ``==``
walk to the end.

How the values are found (the walk): the bindings of the name are read a
window of the film at a time (one query: each binding with its rendering,
the statement that made it and, for a mutable object, how long it holds),
with the snapshots of the objects held then (one query per object and
window).  A step where the value did not change is not a new value, so a
rendering equal to its frame's previous one is left out (raw rows are
compared: no ``Value`` is made for that); a snapshot is a value in every
frame whose binding holds the object at that step.  ``HistoryEntry`` and
``Value`` objects are made only for the positions read.

A schema-3 film gives the same rows from its chunks (``film_rows``), read
where it lies: a window reads the ``bindings`` section of the chunks it
spans, a snapshot the ``vals`` section of its chunk.  A binding's end
there is its activation's; the walk ends it at the frame's next binding
of the name as it meets it (``_end_rebound``), as ``_HOLDS`` does ahead.

Why an exact count cannot be cheaper: it depends on every candidate row
(equal values are left out; snapshots fan out to the frames alive then),
so ``len`` costs the walk (docs/performance.md, "Replay").  ``since``
starts the walk at a step without walking up to it (see ``_Walk._resume``).

Order rules (unchanged since the first version): oldest first; at one
step, a change seen through an older binding comes before a new binding,
bindings in the order they were recorded.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, overload

from ..recorder import schema
from .errors import UnknownNameError, UsageError
from .values import Path, Value, parse_path, walk

if TYPE_CHECKING:
    from .recording import Recording

__all__ = ["History", "HistoryEntry", "history", "PAGE"]


@dataclass(slots=True)
class HistoryEntry:
    """``name`` took ``value`` at ``step``; ``node`` is the statement that
    made the change and ``function`` the frame that owns the name."""

    step: int
    node: str | None
    function: str
    frame: int
    value: Value

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "node": self.node, "function": self.function, "frame": self.frame,
                "value": self.value.to_json()}


# -- SQL ---------------------------------------------------------------------------------

# A window of bindings, oldest first.  The last column is, for a binding to
# a mutable object only, one past the last step it holds: the frame's next
# binding of the name, else the end of the activation unless that is a
# yield (a suspended generator keeps its locals; NULL: ask _frame_end).
# Where a change seen at step e.step was made: the event's kind and line, the
# line before it in its activation (the statement that ran; a call is its own
# place), and the code it ran in.
_WHERE = f"""e.kind, e.line,
       CASE WHEN e.kind != {schema.CALL} THEN
           (SELECT p.line FROM events p WHERE p.act = e.act AND p.step < e.step ORDER BY p.step DESC LIMIT 1) END,
       f.code"""

_HOLDS = f"""CASE WHEN v.obj IS NOT NULL THEN coalesce(
           (SELECT n.step FROM bindings n WHERE n.frame = b.frame AND n.name = b.name AND n.step >= b.step
            AND (n.step > b.step OR n.rowid > b.rowid) ORDER BY n.step, n.rowid LIMIT 1),
           (SELECT a.end_step + 1 FROM activations a WHERE a.act = (SELECT e.act FROM events e WHERE e.step = b.step)
            AND (SELECT k.kind FROM events k WHERE k.step = a.end_step) IS NOT {schema.YIELD})) END"""

# (Events are dense from first_step to last_step, so the step range stands
# for a join with them; rowid and value ids only matter for a mutable
# object: 0 says "bound" without making an int per row.)
_BINDINGS_SQL = f"""
SELECT b.step, CASE WHEN v.obj IS NOT NULL THEN b.rowid END, b.frame,
       CASE WHEN v.obj IS NOT NULL THEN b.value WHEN b.value IS NOT NULL THEN 0 END,
       v.obj, v.type, v.repr, v.detail, v.flags, {_HOLDS}, {_WHERE},
       CASE WHEN a.frame = b.frame THEN f.code ELSE (SELECT x.code FROM frames x WHERE x.frame = b.frame) END
FROM bindings b
LEFT JOIN vals v ON v.value = b.value
LEFT JOIN events e ON e.step = b.step LEFT JOIN activations a ON a.act = e.act LEFT JOIN frames f ON f.frame = a.frame
WHERE b.name = ?1 AND b.step >= ?2 AND b.step < ?5 {{frame}}
ORDER BY b.step, b.rowid
LIMIT ?3
"""
_BINDINGS = {False: _BINDINGS_SQL.format(frame=""), True: _BINDINGS_SQL.format(frame="AND b.frame = ?4")}

# Snapshots of one object in a span of steps.
_SNAPSHOTS_SQL = f"""
SELECT v.step, v.value, v.type, v.repr, v.detail, v.flags, {_WHERE}
FROM vals v
LEFT JOIN events e ON e.step = v.step LEFT JOIN activations a ON a.act = e.act LEFT JOIN frames f ON f.frame = a.frame
WHERE v.obj = ?1 AND v.step >= ?2 AND v.step < ?3
ORDER BY v.step, v.value
LIMIT ?4
"""

# The newest snapshot of an object before a step.
_BEFORE_SQL = """
SELECT v.step, v.value, v.type, v.repr, v.detail, v.flags
FROM vals v JOIN events e ON e.step = v.step
WHERE v.obj = ?1 AND v.step < ?2
ORDER BY v.step DESC, v.value DESC
LIMIT 1
"""

# Starting at a step S without walking up to it: the bindings to mutable
# objects that still hold at S (their objects' changes from S on are values),
# and a frame's latest binding before S (its value just before S decides
# whether its first value from S on is new).
_HELD_SQL = f"""
SELECT step, rowid, frame, obj, holds FROM (
    SELECT b.step AS step, b.rowid AS rowid, b.frame AS frame, v.obj AS obj, {_HOLDS} AS holds
    FROM bindings b JOIN vals v ON v.value = b.value
    WHERE b.name = ?1 AND b.step >= ?2 AND b.step < ?3 AND v.obj IS NOT NULL {{frame}})
WHERE holds IS NULL OR holds > ?3
ORDER BY step, rowid
"""
_HELD = {False: _HELD_SQL.format(frame=""), True: _HELD_SQL.format(frame="AND b.frame = ?4")}

_LATEST_SQL = f"""
SELECT b.step, b.value, v.obj, v.type, v.repr, v.detail, v.flags, {_HOLDS}
FROM bindings b LEFT JOIN vals v ON v.value = b.value
WHERE b.frame = ?1 AND b.name = ?2 AND b.step >= ?3 AND b.step < ?4
ORDER BY b.step DESC, b.rowid DESC
LIMIT 1
"""

_FIRST_STEPS_SQL = "SELECT frame, first_step FROM frames WHERE frame IN (SELECT value FROM json_each(?1))"

_FRAMES_SQL = "SELECT frame, code FROM frames WHERE frame IN (SELECT value FROM json_each(?1))"

#: Bindings in the first window; each later window takes four times more,
#: up to ``_MAX_WINDOW``: a first page costs a first page, a whole history
#: few queries.
_FIRST_WINDOW = 64
_MAX_WINDOW = 16384
#: Entries made at once when one is read (a loop reading on makes up to
#: ``_MAX_BATCH`` at once).
_BATCH = 256
_MAX_BATCH = 8192
#: Values ``escope history`` and the session's ``history`` show at once
#: unless told otherwise (text and JSON): a page costs a page, however long
#: the history.
PAGE = 50

_UNBOUND = ("unbound", "<unbound>", None, 0)
_UNSET = object()
_CALL = schema.CALL
_END = 1 << 62


class _Live:
    """A frame's binding to a mutable object, while it holds."""

    __slots__ = ("start", "rowid", "frame", "end")

    def __init__(self, start: int, rowid: int, frame: int, end: int) -> None:
        self.start, self.rowid, self.frame, self.end = start, rowid, frame, end


class _Walk:
    """Finds the values, window by window, in step order: ``(step, frame,
    raw, node)`` rows, where ``raw`` is ``(type, repr, detail, flags)`` (for
    a path, of the part walked to) and ``node`` the statement that made the
    change; ``functions`` names the function owning the name in each frame.

    Carried from one window to the next: the bindings to mutable objects
    that still hold, the newest snapshot of each such object, and each
    frame's last value.
    """

    def __init__(self, rec: "Recording", nid: int, path: Path, frame: int | None, since: int | None) -> None:
        self.rec = rec
        #: a schema-3 film: its rows read from the chunks, never unpacked
        self.src = rec.film_rows()
        self.nid = nid
        self.path = path if path.steps else None
        self.frame = frame
        self.since = since if since is not None else rec.first_step
        self.cursor = rec.first_step
        self.end = rec.last_step + 1
        self.window = _FIRST_WINDOW
        self.live: dict[int, list[_Live]] = {}          # obj -> bindings holding it, oldest first
        self.newest: dict[int, tuple] = {}               # obj -> its newest snapshot so far
        self.previous: dict[int, Any] = {}               # frame -> its last value
        self.frame_ends: dict[int, int] = {}
        self.nodes: dict[tuple[int, int], str | None] = {}
        self.functions: dict[int, str] = {}            # frame -> the function owning the name there
        self.checked: set[int] | None = None            # resumed: frames whose value before since is known
        if since is not None and since > self.cursor and self.path is None:
            self.cursor = min(since, self.end)
            self.checked = set()
            self._resume()
        self.done = self.cursor >= self.end

    def next_batch(self, want: int = 0) -> list[tuple]:
        """The values of the next window (possibly none); sets ``done``.
        ``want``: how many values the reader still needs (a binding gives
        at least one, most often), so a first window of 100 is one query."""
        if self.done:
            return []
        self.window = max(self.window, min(want + 1, _MAX_WINDOW))
        lo = self.cursor
        sql = _BINDINGS[self.frame is not None]
        while True:
            if self.src is not None:
                rows = self.src.bindings(self.nid, lo, self.window, self.frame, self.end)
            else:
                rows = self.rec.q(sql, (self.nid, lo, self.window, self.frame, self.end))
            if len(rows) < self.window:
                hi = self.end
                break
            hi = rows[-1][0]  # that step may be cut short: the next window fetches it whole
            if hi > lo:
                rows = [r for r in rows if r[0] < hi]
                break
            self.window *= 2  # one step holds more bindings than a window
        self.window = min(self.window * 4, _MAX_WINDOW)
        # snapshots of the objects still held, and of those bound in this window
        objs = [o for o, lives in self.live.items() if lives]
        for r in rows:
            obj = r[4]
            if obj is not None and obj not in self.newest and obj not in objs:
                objs.append(obj)
        snaps: dict[int, list[tuple]] = {}
        for obj in objs:
            if obj not in self.newest:
                before = self._before(obj, lo)
                self.newest[obj] = before if before is not None else ()
            snaps[obj], hi = self._snapshots(obj, lo, hi)
        if hi < self.end:
            rows = [r for r in rows if r[0] < hi]
            for obj, got in snaps.items():
                snaps[obj] = [s for s in got if s[0] < hi]
        if self.checked is not None:
            self._before_since({r[2] for r in rows})
        out: list[tuple] = []
        if self.src is not None:
            rows = self._end_rebound(rows)
        self._merge(rows, snaps, out)
        self.cursor = hi
        for obj in list(self.live):
            lives = [lv for lv in self.live[obj] if lv.end > hi]
            if lives:
                self.live[obj] = lives
            else:
                del self.live[obj]
        for obj in list(self.newest):
            if obj not in self.live:
                del self.newest[obj]  # no longer followed: fetched again if bound again
        if hi >= self.end:
            self.done = True
        return out

    def _resume(self) -> None:
        """Start at ``since`` as if the walk had come there: the bindings to
        mutable objects that hold at ``since``, and their frames' values just
        before it.  One pass over the name's earlier bindings in SQLite (the
        index has no way to skip them), none in Python.  A path history
        walks from the start instead: its value before ``since`` may lie
        further back (a value without that part is no value)."""
        since = self.cursor
        args: tuple = (self.nid, self.rec.first_step, since) + ((self.frame,) if self.frame is not None else ())
        held_rows = (self.src.held(self.nid, since, self.frame) if self.src is not None
                     else self.rec.q(_HELD[self.frame is not None], args))
        for step, rowid, frame, obj, holds in held_rows:
            if holds is None:
                holds = self._frame_end(frame)
                if holds <= since:
                    continue
            self.live.setdefault(obj, []).append(_Live(step, rowid, frame, holds))
        held = {lv.frame for lives in self.live.values() for lv in lives}
        if held:
            for frame, code in self._frame_codes(sorted(held)):
                self.functions[frame] = self.rec.function(code)
        self._before_since(held)

    def _before_since(self, frames: set[int]) -> None:
        """Each frame's last value before ``since`` (when it had one), the
        one its first value from ``since`` on is compared with."""
        checked = self.checked
        assert checked is not None
        todo = [f for f in frames if f not in checked]
        if not todo:
            return
        checked.update(todo)
        rec = self.rec
        since = self.since
        firsts = (self.src.first_steps(todo) if self.src is not None
                  else rec.q(_FIRST_STEPS_SQL, (json.dumps(todo),)))
        for frame, first_step in firsts:
            if first_step is not None and first_step >= since:
                continue  # a frame made at or after since had no value before it
            row = (self.src.latest(frame, self.nid, since) if self.src is not None
                   else rec.q1(_LATEST_SQL, (frame, self.nid, rec.first_step, since)))
            if row is None:
                continue
            step, vid, obj, t, text, detail, flags, holds = row
            if vid is None:
                raw: Any = _UNBOUND
            elif obj is None:
                raw = (t, text, detail, flags)
            else:
                # its last value: the newest snapshot while it held (before since), else its own start value
                bound = min(since, holds if holds is not None else self._frame_end(frame))
                snap = self._before(obj, bound)
                raw = snap[2:6] if snap and (snap[0] > step or snap[1] >= vid) else (t, text, detail, flags)
            if type(raw[1]) is not str or type(raw[0]) is not str or type(raw[3]) is not int:
                raw = self._form(raw)
            self.previous[frame] = raw

    def _snapshots(self, obj: int, lo: int, hi: int) -> tuple[list[tuple], int]:
        """Snapshots of ``obj`` in [lo, hi), a window's worth at most: when
        cut, ``hi`` moves back to the first step not fetched whole."""
        cap = max(self.window, 256)
        while True:
            got = (self.src.snapshots(obj, lo, hi, cap) if self.src is not None
                   else self.rec.q(_SNAPSHOTS_SQL, (obj, lo, hi, cap)))
            if len(got) < cap:
                return got, hi
            last = got[-1][0]
            if last > lo:
                return [s for s in got if s[0] < last], last
            cap *= 2

    def _before(self, obj: int, step: int) -> tuple | None:
        """The newest snapshot of ``obj`` before ``step`` (_BEFORE_SQL)."""
        if self.src is not None:
            return self.src.before(obj, step)
        return self.rec.q1(_BEFORE_SQL, (obj, step))

    def _frame_codes(self, frames: list[int]) -> list[tuple[int, int]]:
        if self.src is not None:
            return self.src.frame_codes(frames)
        return self.rec.q(_FRAMES_SQL, (json.dumps(frames),))

    def _end_rebound(self, rows: list[tuple]) -> list[tuple]:
        """Rows read from chunks carry, for a binding to a mutable object,
        the end of its activation, not the frame's next binding of the name
        (finding that would read ahead, maybe to the film's end).  So each
        binding is ended here by the next one of its frame in this window,
        and a binding still held from an earlier window by its frame's first
        one in this window: the ``holds`` _HOLDS gives, for every step the
        window reaches (a next binding past the window ends it later)."""
        open_lives: dict[int, _Live] = {}
        for lives in self.live.values():
            for lv in lives:
                cur = open_lives.get(lv.frame)
                if cur is None or (lv.start, lv.rowid) > (cur.start, cur.rowid):
                    open_lives[lv.frame] = lv
        out = list(rows)
        last: dict[int, int] = {}  # frame -> position of its latest binding to a mutable object
        for j, r in enumerate(out):
            fr = r[2]
            k = last.pop(fr, None)
            if k is not None:
                prev = out[k]
                if prev[9] is None or prev[9] > r[0]:
                    out[k] = prev[:9] + (r[0],) + prev[10:]
            else:
                lv = open_lives.pop(fr, None)
                if lv is not None and lv.end > r[0]:
                    lv.end = r[0]
            open_lives.pop(fr, None)
            if r[4] is not None:
                last[fr] = j
        return out

    def _merge(self, rows: list[tuple], snaps: dict[int, list[tuple]], out: list[tuple]) -> None:
        """Bindings and snapshots of one window, in step order."""
        # (step, obj, snapshot): the last snapshot of an object at a step counts
        timeline: list[tuple[int, int, tuple]] = []
        for obj, got in snaps.items():
            n = len(got)
            for i, s in enumerate(got):
                if i + 1 == n or got[i + 1][0] != s[0]:
                    timeline.append((s[0], obj, s))
        if len(snaps) > 1:
            timeline.sort(key=lambda t: t[0])
        live = self.live
        newest = self.newest
        previous = self.previous
        since = self.since
        nodes = self.nodes
        functions = self.functions
        ti = 0
        nt = len(timeline)
        for row in itertools.chain(rows, (None,)):
            step = row[0] if row is not None else _END
            # the snapshots up to this binding's step (at one step: before the binding)
            while ti < nt and timeline[ti][0] <= step:
                s_step, obj, s = timeline[ti]
                if ti + 1 < nt and timeline[ti + 1][0] == s_step:
                    ti = self._snapshots_until(timeline, ti, s_step, out)  # several objects at one step
                    continue
                ti += 1
                newest[obj] = s
                lives = live.get(obj)
                if not lives:
                    continue
                raw = self._shown(s[2:6])
                node: Any = _UNSET
                expired = False
                for lv in lives:  # in binding order already
                    if lv.end <= s_step:
                        expired = True
                    elif lv.start < s_step and raw is not None:
                        fr = lv.frame
                        if previous.get(fr) != raw:
                            previous[fr] = raw
                            if s_step >= since:
                                if node is _UNSET:
                                    node = self._node(s[9], s[6], s[7], s[8])
                                out.append((s_step, fr, raw, node))
                if expired:  # a callee holding it returned
                    live[obj] = [lv for lv in lives if lv.end > s_step]
            if row is None:
                break
            _s, rowid, fr, vid, obj, t, text, detail, flags, end, kind, line, prev_line, code, owner = row
            if vid is None:
                raw = _UNBOUND
            elif obj is None:
                raw = (t, text, detail, flags)
            else:
                snap = newest.get(obj)
                raw = snap[2:6] if snap and snap[1] >= vid else (t, text, detail, flags)
                if end is None:
                    end = self._frame_end(fr)
                lives = live.get(obj)
                if lives is None:
                    lives = live[obj] = []
                # (the frame's previous binding of the name ended at this step: its end says so)
                lives.append(_Live(step, rowid, fr, end))
            if fr not in functions:
                functions[fr] = self.rec.function(owner)
            raw = self._shown(raw)
            if raw is None:
                continue
            if previous.get(fr) != raw:
                previous[fr] = raw
                if step >= since:
                    node = None
                    if code is not None:
                        at = (code, line if kind == _CALL or prev_line is None else prev_line)
                        node = nodes.get(at, _UNSET)
                        if node is _UNSET:
                            node = nodes[at] = self.rec.node(*at)
                    out.append((step, fr, raw, node))

    def _shown(self, raw: Any) -> Any:
        """A value row as compared and shown: the path applied, a damaged
        row's columns checked (None: nothing to show)."""
        if self.path is not None or type(raw[1]) is not str or type(raw[0]) is not str or type(raw[3]) is not int:
            return self._form(raw)
        return raw

    def _snapshots_until(self, timeline: list[tuple[int, int, tuple]], ti: int, until: int | None,
                         out: list[tuple]) -> int:
        """The snapshots up to step ``until`` (None: all): each is a value in
        every frame whose binding holds the object at that step."""
        live = self.live
        newest = self.newest
        previous = self.previous
        since = self.since
        nt = len(timeline)
        while ti < nt:
            step = timeline[ti][0]
            if until is not None and step > until:
                break
            j = ti + 1
            while j < nt and timeline[j][0] == step:
                j += 1
            group = []
            for k in range(ti, j):
                s = timeline[k][2]
                obj = timeline[k][1]
                newest[obj] = s
                lives = live.get(obj)
                if not lives:
                    continue
                expired = False
                for lv in lives:
                    if lv.end > step:
                        if lv.start < step:
                            group.append((lv.start, lv.rowid, lv.frame, s))
                    else:
                        expired = True
                if expired:  # a callee holding it returned
                    live[obj] = [lv for lv in lives if lv.end > step]
            if j - ti > 1 and len(group) > 1:
                group.sort(key=lambda g: (g[0], g[1]))  # one object's bindings are in order already
            ti = j
            last = None
            node = None
            for _start, _rowid, fr, s in group:
                raw = self._shown(s[2:6])
                if raw is None:
                    continue
                if previous.get(fr) != raw:
                    previous[fr] = raw
                    if step >= since:
                        if s is not last:
                            last = s
                            node = self._node(s[9], s[6], s[7], s[8])
                        out.append((step, fr, raw, node))
        return ti

    def _node(self, code: int | None, kind: int, line: int, prev_line: int | None) -> str | None:
        """The node id of the statement that made a change (see _WHERE)."""
        if code is None:
            return None
        at = (code, line if kind == _CALL or prev_line is None else prev_line)
        node = self.nodes.get(at, _UNSET)
        if node is _UNSET:
            node = self.nodes[at] = self.rec.node(*at)
        return node

    def _form(self, raw: tuple) -> Any:
        """What is compared and kept for a value that is not a plain row: a
        path's part (None when the value has no such part), or a crafted
        row's columns as ``Value`` reads them."""
        value = Value(*raw)
        if self.path is None:
            return (value.type, value.repr, value._detail, value.flags)
        try:
            form = walk(value.to_json(), self.path)
        except UnknownNameError:
            return None
        rest = {k: v for k, v in form.items() if k not in ("type", "repr", "truncated", "redacted")}
        flags = (1 if form.get("truncated") else 0) | (2 if form.get("redacted") else 0)
        value = Value(form.get("type", "?"), form.get("repr", "?"), json.dumps(rest) if rest else None, flags)
        return (value.type, value.repr, value._detail, value.flags)

    def _frame_end(self, frame: int) -> int:
        """One past the last step at which ``frame`` is alive."""
        end = self.frame_ends.get(frame)
        if end is None and self.src is not None:
            end = self.frame_ends[frame] = self.src.frame_end(frame)
        if end is None:
            rec = self.rec
            row = rec.q1("SELECT end_step FROM activations WHERE frame = ? ORDER BY start_step DESC LIMIT 1", (frame,))
            if row is None or row[0] is None:
                end = rec.last_step + 1
            else:
                kind = rec.q1("SELECT kind FROM events WHERE step = ?", (row[0],))
                # a suspended generator still holds its locals
                end = rec.last_step + 1 if kind is not None and kind[0] == schema.YIELD else row[0] + 1
            self.frame_ends[frame] = end
        return end


class History(Sequence[HistoryEntry]):
    """Every value a name took, oldest first, computed as far as it is read.

    ``h[:50]``, ``h[i]``, ``bool(h)`` and iteration compute only what they
    reach; ``len(h)``, negative indexes and ``==`` compute everything (once:
    it is kept).  ``complete`` tells whether all values are known, ``known``
    how many are.
    """

    def __init__(self, rec: "Recording", name: str, frame: int | None = None, limit: int | None = None,
                 since: int | None = None) -> None:
        path = parse_path(name)
        nid = rec.name_ids().get(path.root)
        if nid is None:
            raise UnknownNameError(f"no variable {path.root!r} was recorded in {rec.test_id}",
                                   fix="see the locals with: escope replay TEST --at-failure --print")
        if limit is not None and limit < 0:
            raise UsageError("--limit must be 0 or more")
        self.rec = rec
        self._nid = nid
        self.name = name
        self.frame = frame
        self.limit = limit
        self.since = since
        self._rows: list[tuple] = []                       # (step, frame, raw, node) of every value found
        self._entries: list[HistoryEntry | None] = []      # made on demand, same positions
        self._walk: _Walk | None = _Walk(rec, nid, path, frame, since) if limit != 0 else None
        self._functions: dict[int, str] = self._walk.functions if self._walk is not None else {}

    # -- computing ------------------------------------------------------------------

    def _find(self, want: int | None) -> None:
        """Walk on until ``want`` values are found (None: all)."""
        walk = self._walk
        rows = self._rows
        cap = self.limit
        goal = want if want is not None else cap  # how many values the reader needs, when known
        while walk is not None and (want is None or len(rows) < want):
            rows.extend(walk.next_batch(0 if goal is None else goal - len(rows)))
            if cap is not None and len(rows) >= cap:
                del rows[cap:]
                walk = None
            elif walk.done:
                walk = None
        self._walk = walk

    def _make(self, lo: int, hi: int) -> None:
        """Make the entries at positions [lo, hi) (found already)."""
        entries = self._entries
        if len(entries) < hi:
            entries.extend([None] * (hi - len(entries)))
        functions = self._functions
        missing = {frame for _step, frame, _raw, _node in self._rows[lo:hi] if frame not in functions}
        if missing:  # a frame seen only through the walk's start (since)
            rows = self.rec.film_rows()
            found = (rows.frame_codes(sorted(missing)) if rows is not None
                     else self.rec.q(_FRAMES_SQL, (json.dumps(sorted(missing)),)))
            for frame, code in found:
                functions[frame] = self.rec.function(code)
        function_of = functions.get
        entry = HistoryEntry
        value = Value
        for i in range(lo, hi):
            if entries[i] is None:  # an entry handed out before stays the one handed out
                step, frame, raw, node = self._rows[i]
                entries[i] = entry(step, node, function_of(frame) or "?", frame, value(*raw))

    def _entry(self, i: int, batch: int = _BATCH) -> HistoryEntry:
        entries = self._entries
        if i >= len(entries) or entries[i] is None:
            self._make(i, min(len(self._rows), i + batch))
        return entries[i]  # type: ignore[return-value]

    @property
    def complete(self) -> bool:
        """Whether every value is found (``len`` is then free)."""
        return self._walk is None

    @property
    def known(self) -> int:
        """How many values are found so far."""
        return len(self._rows)

    def page(self, limit: int) -> tuple[list[HistoryEntry], bool]:
        """The first ``limit`` entries and whether more follow.  A page
        never splits a step: the values at the last entry's step all come
        with it (frames holding one object see its change at one step), so
        ``since=`` one past that step continues exactly where it ended."""
        self._find(limit + 1)
        rows = self._rows
        n = min(limit, len(rows))
        if n:
            last = rows[n - 1][0]
            while True:
                self._find(n + 1)
                if n < len(rows) and rows[n][0] == last:
                    n += 1
                else:
                    break
        return self[:n], len(rows) > n

    def bindings(self) -> int:
        """How many times the name was bound (in ``frame``; from ``since``):
        one count over an index, no walk.  It is not the number of values:
        equal values are left out, and in-place changes add values."""
        src = self.rec.film_rows()
        if src is not None:
            return src.count_bindings(self._nid, self.since if self.since is not None else self.rec.first_step,
                                      self.frame)
        where = "name = ?1 AND step >= ?2" + (" AND frame = ?3" if self.frame is not None else "")
        args: tuple = (self._nid, self.since if self.since is not None else self.rec.first_step)
        row = self.rec.q1(f"SELECT count(*) FROM bindings WHERE {where}",
                          args + ((self.frame,) if self.frame is not None else ()))
        return row[0] if row else 0

    # -- the sequence -------------------------------------------------------------------

    def __len__(self) -> int:
        self._find(None)
        return len(self._rows)

    def __bool__(self) -> bool:
        self._find(1)
        return bool(self._rows)

    @overload
    def __getitem__(self, index: int) -> HistoryEntry: ...

    @overload
    def __getitem__(self, index: slice) -> list[HistoryEntry]: ...

    def __getitem__(self, index: int | slice) -> HistoryEntry | list[HistoryEntry]:
        if isinstance(index, slice):
            start, stop, step = index.start, index.stop, index.step
            if stop is None or (start is not None and start < 0) or stop < 0 or (step is not None and step < 0):
                self._find(None)
            else:
                self._find(stop)
            positions = range(len(self._rows))[index]
            if len(positions):
                lo, hi = min(positions), max(positions) + 1
                self._make(lo, hi)
            return [self._entries[i] for i in positions]  # type: ignore[misc]
        if not isinstance(index, int):
            raise TypeError(f"history indices must be integers or slices, not {type(index).__name__}")
        self._find(None if index < 0 else index + 1)
        if index < 0:
            index += len(self._rows)
        if not 0 <= index < len(self._rows):
            raise IndexError("history index out of range")
        return self._entry(index)

    def __iter__(self) -> Iterator[HistoryEntry]:
        i = 0
        batch = _BATCH
        entries = self._entries
        while True:
            if i < len(self._rows):
                if i >= len(entries) or entries[i] is None:
                    batch = min(batch * 2, _MAX_BATCH)  # reading on: larger batches, fewer queries
                    hi = min(len(self._rows), i + batch)
                    self._make(i, hi)
                    yield from entries[i:hi]  # type: ignore[misc]
                    i = hi
                else:
                    yield entries[i]  # type: ignore[misc]
                    i += 1
            elif self._walk is not None:
                self._find(len(self._rows) + 1)
            else:
                return

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (History, list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        more = "" if self.complete else "+"
        return f"<History of {self.name}: {len(self._rows)}{more} values>"


def history(rec: "Recording", name: str, frame: int | None = None, limit: int | None = None,
            since: int | None = None) -> History:
    """Every value ``name`` took, oldest first, in every frame that has it
    (or only ``frame``); at most ``limit`` values; only those at or after
    step ``since``.  A mutable object's in-place changes are values too,
    wherever they happened.  A step where the value did not change is not a
    new value."""
    return History(rec, name, frame=frame, limit=limit, since=since)
