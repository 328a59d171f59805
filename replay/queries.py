"""Questions over the whole film: events, a variable's history, the call
flow, statistics.

Filters run in SQLite where an index or the step order helps (step range,
kind, lines of a node, a frame's activations) and in Python where the
answer lives in a cached activation (thread, task, function), so
``events --limit 100`` stops as soon as it has its hundred rows.
"""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from ..recorder import schema
from .errors import UnknownNameError, UsageError
from .state import JSON_SCHEMA_VERSION
from .values import Value, parse_path, walk

if TYPE_CHECKING:
    from .recording import Recording


@dataclass
class Event:
    """One step of the film, as ``escope events`` shows it."""

    step: int
    time_ns: int
    kind: str
    thread: str
    task: str | None
    function: str
    file: str
    line: int
    node: str | None
    frame: int
    args: dict[str, Value] | None = None
    value: Value | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "step": self.step, "time_ns": self.time_ns, "kind": self.kind, "thread": self.thread,
            "task": self.task, "function": self.function, "file": self.file, "line": self.line,
            "node": self.node, "frame": self.frame,
        }
        if self.args is not None:
            out["args"] = {k: v.to_json() for k, v in self.args.items()}
        if self.value is not None:
            out["value"] = self.value.to_json()
        return out


@dataclass
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


# -- events ----------------------------------------------------------------------

def _kinds(kind: str | Iterable[str] | None) -> list[int] | None:
    if kind is None:
        return None
    names = [k.strip() for part in ([kind] if isinstance(kind, str) else kind) for k in part.split(",") if k.strip()]
    codes = []
    for n in names:
        if n not in schema.KIND_CODES:
            raise UsageError(f"unknown event kind {n!r}", fix="use one of: " + ", ".join(schema.KIND_CODES))
        codes.append(schema.KIND_CODES[n])
    return codes


def _codes_named(rec: "Recording", name: str) -> set[int]:
    return {c for c, (_f, short, qual, _l, _s) in rec.codes.items() if name in (qual, short)}


def resolve_node(rec: "Recording", text: str) -> tuple[str, int, list[int]]:
    """A node id (exact, or a unique part of one) -> (node id, file, its lines)."""
    row = rec.q1("SELECT node, file, node_id FROM nodes WHERE node_id = ?", (text,))
    if row is None:
        rows = rec.q("SELECT node, file, node_id FROM nodes WHERE instr(node_id, ?) > 0 LIMIT 11", (text,))
        if not rows:
            raise UnknownNameError(f"no statement with node id {text!r} in this recording",
                                   fix="see node ids with: escope events TEST --kind line")
        if len(rows) > 1:
            shown = ", ".join(r[2] for r in rows[:4]) + (", ..." if len(rows) > 4 else "")
            raise UnknownNameError(f"{text!r} matches several node ids ({shown})", fix="give the full node id")
        row = rows[0]
    lines = [r[0] for r in rec.q("SELECT line FROM lines WHERE node = ?", (row[0],))]
    return row[2], row[1], lines


def _threads(rec: "Recording", text: str) -> set[int]:
    ids = {t for t, n in rec.threads.items() if n == text or str(t) == text}
    if not ids:
        known = ", ".join(sorted(set(rec.threads.values()))) or "none"
        raise UnknownNameError(f"no thread {text!r} in this recording (threads: {known})")
    return ids


def events(rec: "Recording", *, kind: str | Iterable[str] | None = None, frame: int | str | None = None,
           thread: str | int | None = None, task: str | None = None, node: str | None = None,
           since: int | None = None, until: int | None = None, limit: int | None = None,
           function: str | None = None) -> list[Event]:
    """Events oldest first.  ``frame`` is a frame number or a function name;
    every filter given must hold (they combine with AND)."""
    where = ["step >= ?", "step <= ?"]
    args: list[Any] = [max(rec.first_step, since if since is not None else rec.first_step),
                       min(rec.last_step, until if until is not None else rec.last_step)]
    codes = _kinds(kind)
    if codes:
        where.append(f"kind IN ({','.join('?' * len(codes))})")
        args += codes
    want_codes: set[int] | None = None
    want_frames: set[int] | None = None
    for fname in (frame if isinstance(frame, str) and not frame.isdigit() else None, function):
        if fname:
            found = _codes_named(rec, fname)
            if not found:
                raise UnknownNameError(f"no function {fname!r} ran in this recording",
                                       fix="see the functions with: escope flow TEST")
            want_codes = found if want_codes is None else want_codes & found
    if frame is not None and (isinstance(frame, int) or str(frame).isdigit()):
        fid = int(frame)
        acts = [r[0] for r in rec.q("SELECT act FROM activations WHERE frame = ?", (fid,))]
        if not acts:
            raise UnknownNameError(f"no frame {fid} in this recording", fix="frame numbers appear in --json output")
        want_frames = {fid}
        where.append(f"act IN ({','.join('?' * len(acts))})")
        args += acts
    if node is not None:
        _nid, file, lines = resolve_node(rec, node)
        in_file = {c for c, v in rec.codes.items() if v[0] == file}
        want_codes = in_file if want_codes is None else want_codes & in_file
        where.append(f"line IN ({','.join('?' * len(lines))})" if lines else "0")
        args += lines
    want_threads = _threads(rec, str(thread)) if thread is not None else None
    want_tasks = None
    if task is not None:
        want_tasks = {t for t, n in rec.tasks.items() if n == task or str(t) == task}
        if not want_tasks:
            raise UnknownNameError(f"no task {task!r} in this recording")
    if limit is not None and limit < 0:
        raise UsageError("--limit must be 0 or more")
    sql = f"SELECT step, kind, act, line, time_ns, value FROM events WHERE {' AND '.join(where)} ORDER BY step"
    out: list[Event] = []
    if limit == 0:
        return out
    for step, k, act_id, line, t, vid in rec.iterate(sql, tuple(args)):
        a = rec.act(act_id)
        if want_codes is not None and a.code not in want_codes:
            continue
        if want_frames is not None and a.frame not in want_frames:
            continue
        if want_threads is not None and a.thread not in want_threads:
            continue
        if want_tasks is not None and a.task not in want_tasks:
            continue
        out.append(make_event(rec, step, k, a, line, t, vid))
        if limit is not None and len(out) >= limit:
            break
    return out


def make_event(rec: "Recording", step: int, k: int, a: Any, line: int, t: int, vid: int | None) -> Event:
    ev = Event(step=step, time_ns=t, kind=rec.kind_name(k), thread=rec.thread_name(a.thread),
               task=rec.tasks.get(a.task) if a.task is not None else None, function=rec.function(a.code),
               file=rec.file_of(a.code), line=line, node=rec.node(a.code, line), frame=a.frame)
    if k == schema.CALL:
        # the arguments are exactly the bindings made at the call step
        ev.args = {}
        for name, vid in rec.q("SELECT name, value FROM bindings WHERE frame = ? AND step = ? ORDER BY rowid",
                               (a.frame, step)):
            value = rec.value(vid, step)
            if value is not None:
                ev.args[rec.name_text(name)] = value
    if vid is not None:
        ev.value = rec.value(vid, step)
    return ev


# -- history -----------------------------------------------------------------------

_HISTORY_SQL = """
SELECT b.frame, b.step, b.value, e.kind, e.line,
       (SELECT p.line FROM events p WHERE p.act = e.act AND p.step < b.step ORDER BY p.step DESC LIMIT 1),
       f.code, bf.code, v.obj, v.type, v.repr, v.detail, v.flags, a.end_step,
       (SELECT k.kind FROM events k WHERE k.step = a.end_step)
FROM bindings b
JOIN events e ON e.step = b.step
JOIN activations a ON a.act = e.act
JOIN frames f ON f.frame = a.frame
JOIN frames bf ON bf.frame = b.frame
LEFT JOIN vals v ON v.value = b.value
WHERE b.name = ?1 {frame}
ORDER BY b.step, b.rowid
"""

_SNAPSHOTS_SQL = """
SELECT v.step, v.value, e.kind, e.line,
       (SELECT p.line FROM events p WHERE p.act = e.act AND p.step < v.step ORDER BY p.step DESC LIMIT 1),
       f.code, v.type, v.repr, v.detail, v.flags
FROM vals v
JOIN events e ON e.step = v.step
JOIN activations a ON a.act = e.act
JOIN frames f ON f.frame = a.frame
WHERE v.obj = ?1 AND v.step >= ?2 AND v.step < ?3
ORDER BY v.step, v.value
"""


def _frame_end(rec: "Recording", frame: int) -> int:
    """One past the last step at which ``frame`` is alive."""
    row = rec.q1("SELECT end_step FROM activations WHERE frame = ? ORDER BY start_step DESC LIMIT 1", (frame,))
    if row is None or row[0] is None:
        return rec.last_step + 1
    end = row[0]
    kind = rec.q1("SELECT kind FROM events WHERE step = ?", (end,))
    if kind is not None and kind[0] == schema.YIELD:
        return rec.last_step + 1  # a suspended generator still holds its locals
    return end + 1


class _Snapshots:
    """Snapshots of one mutable object, fetched once for a span of steps."""

    __slots__ = ("steps", "rows")

    def __init__(self, rows: list[tuple]) -> None:
        # several snapshots at one step: the last one (highest value id) counts
        keep = [r for i, r in enumerate(rows) if i + 1 == len(rows) or rows[i + 1][0] != r[0]]
        self.rows = keep
        self.steps = [r[0] for r in keep]


def history(rec: "Recording", name: str, frame: int | None = None, limit: int | None = None) -> list[HistoryEntry]:
    """Every value ``name`` took, oldest first, in every frame that has it
    (or only ``frame``); at most ``limit`` values.  A mutable object's
    in-place changes are values too, wherever they happened.  A step where
    the value did not change is not a new value."""
    path = parse_path(name)
    nid = rec.name_ids().get(path.root)
    if nid is None:
        raise UnknownNameError(f"no variable {path.root!r} was recorded in {rec.test_id}",
                               fix="see the locals with: escope replay TEST --at-failure --print")
    if limit is not None and limit <= 0:
        return []
    sql = _HISTORY_SQL.format(frame="AND b.frame = ?2" if frame is not None else "")
    cursor = rec.iterate(sql, (nid, frame) if frame is not None else (nid,))
    if limit is None:
        rows = list(cursor)
    else:
        rows = []
        for row in cursor:  # enough bindings to give ``limit`` values, plus one to bound them
            rows.append(row)
            if len(rows) > limit:
                break
    ends = _lifetimes(rec, rows)
    snaps: dict[int, _Snapshots] = {}
    if limit is None:
        spans: dict[int, list[int]] = {}
        for row, end in zip(rows, ends):
            obj = row[8]
            if obj is not None:
                span = spans.setdefault(obj, [row[1], end])
                span[0] = min(span[0], row[1])
                span[1] = max(span[1], end)
        for obj, (lo, hi) in spans.items():
            snaps[obj] = _Snapshots(rec.q(_SNAPSHOTS_SQL, (obj, lo, hi)))
    node = rec.node
    function = rec.function
    out: list[HistoryEntry] = []
    previous: dict[int, Value | None] = {}
    for i, (fr, step, vid, kind, line, prev_line, code, owner_code, obj, t, text, detail, flags, _e, _k) \
            in enumerate(rows):
        if limit is not None and i == limit:
            break
        end = ends[i]
        owner = function(owner_code)
        where = line if kind == schema.CALL or prev_line is None else prev_line
        if vid is None:
            _add(out, previous, path, fr, step, node(code, where), owner, Value("unbound", "<unbound>"))
            continue
        if obj is None:
            _add(out, previous, path, fr, step, node(code, where), owner, Value(t, text, detail, flags))
            continue
        sn = snaps.get(obj)
        if sn is None:
            sn = _Snapshots(rec.q(_SNAPSHOTS_SQL + " LIMIT ?4", (obj, step - 0, end, (limit or 0) + 1)))
            before = rec.value(vid, step)
            value = before or Value(t, text, detail, flags)
            lo = bisect_right(sn.steps, step)
        else:
            at = bisect_right(sn.steps, step) - 1
            value = Value(*sn.rows[at][6:10]) if at >= 0 and sn.rows[at][1] >= vid else Value(t, text, detail, flags)
            lo = at + 1
        _add(out, previous, path, fr, step, node(code, where), owner, value)
        hi = bisect_left(sn.steps, end)
        for s, _v, k2, l2, p2, c2, t2, x2, d2, f2 in sn.rows[lo:hi]:
            w2 = l2 if k2 == schema.CALL or p2 is None else p2
            _add(out, previous, path, fr, s, node(c2, w2), owner, Value(t2, x2, d2, f2))
    out.sort(key=lambda e: e.step)
    if limit is not None:
        del out[limit:]
    return out


def _lifetimes(rec: "Recording", rows: list[tuple]) -> list[int]:
    """For each binding row: one past the last step it holds (the frame's
    next binding of the name, or the frame's end)."""
    ends = [0] * len(rows)
    next_step: dict[int, int] = {}
    for i in range(len(rows) - 1, -1, -1):
        fr, step = rows[i][0], rows[i][1]
        nxt = next_step.get(fr)
        if nxt is None:
            act_end, end_kind = rows[i][13], rows[i][14]
            if act_end is not None and end_kind != schema.YIELD:
                nxt = act_end + 1
            else:
                nxt = _frame_end(rec, fr)
        ends[i] = nxt
        next_step[fr] = step
    return ends


def _add(out: list[HistoryEntry], previous: dict[int, Value | None], path: Any, frame: int, step: int,
         node: str | None, function: str, value: Value) -> None:
    if path.steps:
        try:
            form = walk(value.to_json(), path)
        except UnknownNameError:
            return
        rest = {k: v for k, v in form.items() if k not in ("type", "repr", "truncated", "redacted")}
        flags = (1 if form.get("truncated") else 0) | (2 if form.get("redacted") else 0)
        value = Value(form.get("type", "?"), form.get("repr", "?"), json.dumps(rest) if rest else None, flags)
    if value.same_as(previous.get(frame)):
        return
    previous[frame] = value
    out.append(HistoryEntry(step, node, function, frame, value))


# -- flow and stats ----------------------------------------------------------------------

def flow(rec: "Recording") -> dict[str, Any]:
    """Caller -> callee with call and resume counts; threads and tasks."""
    rows = rec.q("""
        SELECT pf.code, f.code, sum(a.start_step = f.first_step), sum(a.start_step != f.first_step)
        FROM activations a JOIN frames f ON f.frame = a.frame
        LEFT JOIN activations p ON p.act = a.parent LEFT JOIN frames pf ON pf.frame = p.frame
        GROUP BY pf.code, f.code ORDER BY min(a.start_step)""")
    edges = [{"caller": rec.function(c) if c is not None else None,
              "caller_file": rec.file_of(c) if c is not None else None,
              "callee": rec.function(d), "callee_file": rec.file_of(d),
              "calls": calls, "resumes": resumes} for c, d, calls, resumes in rows]
    threads = [{"thread": rec.thread_name(t), "activations": n, "first_step": s}
               for t, n, s in rec.q("SELECT thread, count(*), min(start_step) FROM activations "
                                    "GROUP BY thread ORDER BY min(start_step)")]
    tasks = [{"task": rec.tasks.get(t, f"task-{t}"), "activations": n, "first_step": s}
             for t, n, s in rec.q("SELECT task, count(*), min(start_step) FROM activations WHERE task IS NOT NULL "
                                  "GROUP BY task ORDER BY min(start_step)")]
    return {"schema_version": JSON_SCHEMA_VERSION, "test": rec.test_id, "calls": edges,
            "threads": threads, "tasks": tasks}


def stats(rec: "Recording") -> dict[str, Any]:
    """Counts, sizes and the share of line events tied to a node."""
    kinds = {rec.kind_name(k): n for k, n in rec.q("SELECT kind, count(*) FROM events GROUP BY kind ORDER BY kind")}
    total = sum(kinds.values())
    size = rec.path.stat().st_size if rec.path.exists() else 0
    mapped = unmapped = 0
    for code, line, n in rec.q("""SELECT f.code, e.line, count(*) FROM events e JOIN activations a ON a.act = e.act
                                  JOIN frames f ON f.frame = a.frame WHERE e.kind = ? GROUP BY f.code, e.line""",
                               (schema.LINE,)):
        if rec.codes.get(code, (0, 0, 0, 0, 1))[4] and rec.node(code, line) is None:
            unmapped += n
        else:
            mapped += n
    counts = dict(zip(("frames", "activations", "values", "bindings"), rec.q(
        "SELECT (SELECT count(*) FROM frames), (SELECT count(*) FROM activations), "
        "(SELECT count(*) FROM vals), (SELECT count(*) FROM bindings)")[0]))
    faults = dict(rec.q("SELECT message, count FROM faults"))
    meta = rec.meta
    return {
        "schema_version": JSON_SCHEMA_VERSION, "test": rec.test_id, "kind": rec.kind, "outcome": rec.outcome,
        "complete": rec.complete, "events": total, "first_step": rec.first_step, "last_step": rec.last_step,
        "dropped_events": rec.dropped, "kinds": kinds, **counts,
        "threads": len(rec.threads), "tasks": len(rec.tasks), "bytes": size,
        "bytes_per_event": round(size / total, 1) if total else None,
        "line_events": mapped + unmapped, "line_events_with_node": mapped,
        "node_share": round(mapped / (mapped + unmapped), 6) if mapped + unmapped else 1.0,
        "recorder_faults": int(meta.get("recorder_faults") or 0), "faults": faults,
        "python": meta.get("python"), "backend": meta.get("backend"), "strategy": meta.get("strategy"),
        "path": str(rec.path),
    }
