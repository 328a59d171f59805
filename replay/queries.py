"""Questions over the whole film: events, the call flow, statistics (a
variable's history is in history.py).

Filters run in SQLite where an index or the step order helps (step range,
kind, lines of a node, a frame's activations) and in Python where the
answer lives in a cached activation (thread, task, function), so
``events --limit 100`` stops as soon as it has its hundred rows.  A
schema-3 film is read where it lies (``film_rows``): its events are walked
from ``since`` in the chunks, and ``flow`` and ``stats`` make one pass over
them, with the answers the rows give.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from ..recorder import schema
from .errors import UnknownNameError, UsageError
from .history import HistoryEntry, history  # noqa: F401  (re-exported: the first home of both)
from .recording import Act
from .state import JSON_SCHEMA_VERSION
from .values import Value

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
    where = ["e.step >= ?", "e.step <= ?"]
    args: list[Any] = [max(rec.first_step, since if since is not None else rec.first_step),
                       min(rec.last_step, until if until is not None else rec.last_step)]
    codes = _kinds(kind)
    if codes:
        where.append(f"e.kind IN ({','.join('?' * len(codes))})")
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
    rows = rec.film_rows()
    if frame is not None and (isinstance(frame, int) or str(frame).isdigit()):
        fid = int(frame)
        if rows is not None:
            acts = [fid] if rows.store.frame_row(fid) is not None else []
        else:
            acts = [r[0] for r in rec.q("SELECT act FROM activations WHERE frame = ?", (fid,))]
        if not acts:
            raise UnknownNameError(f"no frame {fid} in this recording", fix="frame numbers appear in --json output")
        want_frames = {fid}
        where.append(f"e.act IN ({','.join('?' * len(acts))})")
        args += acts
    line_set: set[int] | None = None
    if node is not None:
        _nid, file, lines = resolve_node(rec, node)
        in_file = {c for c, v in rec.codes.items() if v[0] == file}
        want_codes = in_file if want_codes is None else want_codes & in_file
        where.append(f"e.line IN ({','.join('?' * len(lines))})" if lines else "0")
        args += lines
        line_set = set(lines)
    want_threads = _threads(rec, str(thread)) if thread is not None else None
    want_tasks = None
    if task is not None:
        want_tasks = {t for t, n in rec.tasks.items() if n == task or str(t) == task}
        if not want_tasks:
            raise UnknownNameError(f"no task {task!r} in this recording")
    if limit is not None and limit < 0:
        raise UsageError("--limit must be 0 or more")
    # function, thread and task live on the activation: filtered in SQLite,
    # the rows that fail are never built in Python
    for column, wanted in (("f.code", want_codes), ("a.thread", want_threads), ("a.task", want_tasks)):
        if wanted is not None:
            where.append(f"{column} IN ({','.join('?' * len(wanted))})" if wanted else "0")
            args += sorted(wanted)
    out: list[Event] = []
    if limit == 0:
        return out
    if rows is not None:
        return _events_in_place(rec, args[0], args[1], set(codes) if codes else None, line_set, want_codes,
                                want_threads, want_tasks, want_frames, limit)
    sql = _EVENTS_SQL.format(where=" AND ".join(where))
    acts = rec._acts
    for row in rec.iterate(sql, tuple(args)):
        step, k, act_id, line, t = row[:5]
        a = acts.get(act_id)
        if a is None:
            if row[12] is None:  # no activation (or frame) row: the error rec.act gives
                a = rec.act(act_id)
            else:
                a = acts[act_id] = Act((act_id,) + tuple(row[5:12]), row[12])
        if want_frames is not None and a.frame not in want_frames:
            continue
        ev = _event(rec, step, k, a, line, t, args=False)
        if row[22] is not None:  # the value it carries, as of this step
            if row[18] is not None:
                ev.value = Value(*row[18:22])
            elif row[13] is not None:
                ev.value = Value(*row[14:18])
            else:
                ev.value = Value("?", "<missing value>", None, 0)
        out.append(ev)
        if limit is not None and len(out) >= limit:
            break
    _fill_args(rec, [e for e in out if e.kind == "call"])
    return out


def _events_in_place(rec: "Recording", lo: int, hi: int, kinds: set[int] | None, lines: set[int] | None,
                     codes: set[int] | None, threads: set[int] | None, tasks: set[int] | None,
                     frames: set[int] | None, limit: int | None) -> list[Event]:
    """``events`` over a schema-3 film: its events walked from ``lo`` in
    the chunks, each filter tested as cheaply as it can be (the kind and
    line on the event, the rest on its cached activation)."""
    out: list[Event] = []
    store = rec.store
    assert store is not None
    if lo > hi:  # the walk would clamp a step past the end to the last one
        return out
    acts = rec._acts
    for step, k, act_id, line, vid in rec.walk(lo, True):
        if step > hi:
            break
        if kinds is not None and k not in kinds:
            continue
        if lines is not None and line not in lines:
            continue
        a = acts.get(act_id)
        if a is None:
            a = rec.act(act_id, step)
        if codes is not None and a.code not in codes:
            continue
        if threads is not None and a.thread not in threads:
            continue
        if tasks is not None and a.task not in tasks:
            continue
        if frames is not None and a.frame not in frames:
            continue
        ev = _event(rec, step, k, a, line, store.event(step)[3], args=False)
        if vid is not None:  # the value it carries, as of this step
            ev.value = rec.value(vid, step)
        out.append(ev)
        if limit is not None and len(out) >= limit:
            break
    _fill_args(rec, [e for e in out if e.kind == "call"])
    return out


# Events with their activation (no lookup per activation) and the value they
# carry; a mutable object's as its snapshot at the step (Recording.value's rule).
_EVENTS_SQL = """
SELECT e.step, e.kind, e.act, e.line, e.time_ns,
       a.frame, a.parent, a.thread, a.task, a.depth, a.start_step, a.end_step, f.code,
       v.value, v.type, v.repr, v.detail, v.flags, s.type, s.repr, s.detail, s.flags, e.value
FROM events e
LEFT JOIN activations a ON a.act = e.act
LEFT JOIN frames f ON f.frame = a.frame
LEFT JOIN vals v ON v.value = e.value
LEFT JOIN vals s ON v.obj IS NOT NULL AND s.value = (
    SELECT x.value FROM vals x WHERE x.obj = v.obj AND x.step <= e.step ORDER BY x.step DESC, x.value DESC LIMIT 1)
WHERE {where}
ORDER BY e.step
"""

# The arguments of calls: the bindings made at each call step, each with its
# value as of that step (Recording.value's rule), for a batch of calls at once.
_ARGS_SQL = """
SELECT b.frame, b.step, b.name, b.value, v.value, v.type, v.repr, v.detail, v.flags, s.type, s.repr, s.detail, s.flags
FROM json_each(?1) c
JOIN bindings b ON b.frame = c.value ->> 0 AND b.step = c.value ->> 1
LEFT JOIN vals v ON v.value = b.value
LEFT JOIN vals s ON v.obj IS NOT NULL AND s.value = (
    SELECT x.value FROM vals x WHERE x.obj = v.obj AND x.step <= b.step ORDER BY x.step DESC, x.value DESC LIMIT 1)
ORDER BY b.rowid
"""


def _fill_args(rec: "Recording", calls: list[Event]) -> None:
    """``args`` of call events: exactly the bindings made at the call step."""
    if not calls:
        return
    by_key: dict[tuple[int, int], Event] = {}
    for ev in calls:
        ev.args = {}
        by_key[(ev.frame, ev.step)] = ev
    rows = rec.film_rows()
    if rows is not None:
        for ev in calls:
            for name, vid in rows.call_args(ev.frame, ev.step):
                if vid is not None:
                    ev.args[rec.name_text(name)] = rec.value(vid, ev.step)  # type: ignore[index,assignment]
        return
    for frame, step, name, vid, found, *cols in rec.q(_ARGS_SQL, (json.dumps(list(by_key)),)):
        ev = by_key.get((frame, step))
        if ev is None or vid is None:
            continue
        if cols[4] is not None:
            value = Value(*cols[4:8])
        elif found is not None:
            value = Value(*cols[0:4])
        else:
            value = Value("?", "<missing value>", None, 0)
        ev.args[rec.name_text(name)] = value  # type: ignore[index]


def _event(rec: "Recording", step: int, k: int, a: Any, line: int, t: int, args: bool = True) -> Event:
    ev = Event(step=step, time_ns=t, kind=rec.kind_name(k), thread=rec.thread_name(a.thread),
               task=rec.tasks.get(a.task) if a.task is not None else None, function=rec.function(a.code),
               file=rec.file_of(a.code), line=line, node=rec.node(a.code, line), frame=a.frame)
    if k == schema.CALL and args:
        _fill_args(rec, [ev])
    return ev


# -- flow and stats ----------------------------------------------------------------------

def flow(rec: "Recording") -> dict[str, Any]:
    """Caller -> callee with call and resume counts; threads and tasks."""
    film = rec.film_rows()
    if film is not None:
        rows, thread_rows, task_rows = film.flow()
    else:
        rows, thread_rows, task_rows = _flow_rows(rec)
    edges = [{"caller": rec.function(c) if c is not None else None,
              "caller_file": rec.file_of(c) if c is not None else None,
              "callee": rec.function(d), "callee_file": rec.file_of(d),
              "calls": calls, "resumes": resumes} for c, d, calls, resumes in rows]
    threads = [{"thread": rec.thread_name(t), "activations": n, "first_step": s} for t, n, s in thread_rows]
    tasks = [{"task": rec.tasks.get(t, f"task-{t}"), "activations": n, "first_step": s} for t, n, s in task_rows]
    return {"schema_version": JSON_SCHEMA_VERSION, "test": rec.test_id, "calls": edges,
            "threads": threads, "tasks": tasks}


def _flow_rows(rec: "Recording") -> tuple[list[tuple], list[tuple], list[tuple]]:
    rows = rec.q("""
        SELECT pf.code, f.code, sum(a.start_step = f.first_step), sum(a.start_step != f.first_step)
        FROM activations a JOIN frames f ON f.frame = a.frame
        LEFT JOIN activations p ON p.act = a.parent LEFT JOIN frames pf ON pf.frame = p.frame
        GROUP BY pf.code, f.code ORDER BY min(a.start_step)""")
    threads = rec.q("SELECT thread, count(*), min(start_step) FROM activations GROUP BY thread ORDER BY min(start_step)")
    tasks = rec.q("SELECT task, count(*), min(start_step) FROM activations WHERE task IS NOT NULL "
                  "GROUP BY task ORDER BY min(start_step)")
    return rows, threads, tasks


def stats(rec: "Recording") -> dict[str, Any]:
    """Counts, sizes and the share of line events tied to a node."""
    film = rec.film_rows()
    if film is not None:
        kind_counts, line_counts, counts = film.stats()
        kind_rows: Iterable[tuple] = kind_counts.items()
        line_rows: Iterable[tuple] = ((c, ln, n) for (c, ln), n in line_counts.items())
    else:
        kind_rows = rec.q("SELECT kind, count(*) FROM events GROUP BY kind ORDER BY kind")
        line_rows = rec.q("""SELECT f.code, e.line, count(*) FROM events e JOIN activations a ON a.act = e.act
                             JOIN frames f ON f.frame = a.frame WHERE e.kind = ? GROUP BY f.code, e.line""",
                          (schema.LINE,))
        counts = dict(zip(("frames", "activations", "values", "bindings"), rec.q(
            "SELECT (SELECT count(*) FROM frames), (SELECT count(*) FROM activations), "
            "(SELECT count(*) FROM vals), (SELECT count(*) FROM bindings)")[0]))
    kinds = {rec.kind_name(k): n for k, n in kind_rows}
    total = sum(kinds.values())
    size = rec.path.stat().st_size if rec.path.exists() else 0
    mapped = unmapped = 0
    for code, line, n in line_rows:
        if rec.codes.get(code, (0, 0, 0, 0, 1))[4] and rec.node(code, line) is None:
            unmapped += n
        else:
            mapped += n
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
        "python": meta.get("python"), "backend": meta.get("backend"), "callbacks": meta.get("callbacks"),
        "strategy": meta.get("strategy"),
        "path": str(rec.path),
    }
