"""``Recording``: the Python API over one recording file.

Everything the CLI shows comes from here, so scripts, notebooks and coding
agents can ask the same questions::

    from pytest_escope.replay import Recording
    rec = Recording.open("test_invoice.py::test_late_fee")
    state = rec.state_at(rec.failure().step)
    rec.history("total")

The object keeps one read-only connection and a few small caches (code
objects, files, the line -> node map of each file, activations it has
seen).  A recording of schema 3 is read where it lies: the state at a step
and the motions come from the chunk holding that step and its key frame
(``film_store.FilmStore``), so opening costs the same for a film of any
length and nothing is unpacked; ``history``, ``events``, ``flow`` and
``stats`` read the chunks they need too (``film_rows.FilmRows``).  An
older recording is unpacked once, on first use, and read as indexed rows
(``opening``).  Either way a step
near the end of a million-event recording costs what a step near the start
costs (see docs/performance.md).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import apsw

from ..recorder import schema
from .errors import BadStepError, RecordingError
from .film_store import FilmStore
from .opening import _private_copy, connect_readonly, open_film
from .runs import TestEntry, resolve_test
from .values import Value

if TYPE_CHECKING:
    from .film_rows import FilmRows
    from .history import History
    from .queries import Event
    from .state import Failure, State

__all__ = ["Recording", "Act"]


#: Deepest stack replay reconstructs: far beyond Python's default recursion
#: limit (1000), and small enough that one state stays quick; a deeper
#: chain of ``parent`` links comes from a damaged or crafted file.
MAX_STACK_DEPTH = 20_000

#: The tables whose rows a schema-3 recording keeps in its chunks: a query
#: that names one runs on the unpacked copy.
_FILM_TABLES = re.compile(r"\b(events|frames|activations|bindings|vals)\b")


class Act:
    """One activation: a stretch of a frame on the stack."""

    __slots__ = ("act", "frame", "parent", "thread", "task", "depth", "start", "end", "code")

    def __init__(self, row: tuple, code: int) -> None:
        self.act, self.frame, self.parent, self.thread, self.task, self.depth, self.start, self.end = row
        self.code = code


class Recording:
    """An open recording.  Use ``Recording.open``; close it (or use ``with``)."""

    def __init__(self, conn: apsw.Connection, meta: dict[str, str], path: Path,
                 entry: TestEntry | None = None, store: FilmStore | None = None) -> None:
        #: the file's own connection: every table but the film's (all of
        #: them for a recording read through its rows)
        self.file_conn = conn
        #: the film read from its chunks (schema 3), or None
        self.store = store
        self._rows_conn: apsw.Connection | None = None if store is not None else conn
        self.meta = meta
        self.path = path
        self.entry = entry
        self._acts: dict[int, Act] = {}
        self._frame_codes: dict[int, int] = {}
        self._lines: dict[int, dict[int, str]] = {}
        self._sources: dict[int, list[str]] = {}
        self._name_ids: dict[str, int] | None = None
        self._name_texts: dict[int, str] = {}
        self._film_rows: "FilmRows | None" = None
        self.codes: dict[int, tuple[int, str, str, int, int]] = {}
        self.files: dict[int, str] = {}
        self.threads: dict[int, str] = {}
        self.tasks: dict[int, str] = {}
        self._load()

    # -- opening -----------------------------------------------------------

    @classmethod
    def open(cls, path_or_test: str | os.PathLike[str] | None = None, run: str | None = None,
             escope_dir: str | os.PathLike[str] | None = None) -> "Recording":
        """Open a recording file, or the recording of a test (the TEST rule of
        docs/replay.md, "Choosing what to open").

        ``path_or_test`` is a path to a ``.sqlite`` recording, a full test
        node id, a unique part of one, or None for the first failed test of
        the latest run; ``run`` picks another run (id or directory).
        """
        from .runs import find_escope_dir
        base = find_escope_dir(escope_dir) if escope_dir else None
        path, entry = resolve_test(path_or_test, run, base)
        conn, meta, direct = open_film(path)
        try:
            store = FilmStore(conn, path) if direct else None
        except BaseException:
            conn.close()
            raise
        return cls(conn, meta, path, entry, store)

    def close(self) -> None:
        if self._rows_conn is not None and self._rows_conn is not self.file_conn:
            self._rows_conn.close()
        self.file_conn.close()

    @property
    def conn(self) -> apsw.Connection:
        """A connection to the film as indexed rows: the file's own, or for a
        recording read from its chunks the copy unpacked on first use."""
        if self._rows_conn is None:
            assert self.store is not None
            steps = self.store.last_step - self.store.first_step + 1
            self._rows_conn = connect_readonly(_private_copy(self.path, None, steps=steps, original=self.path))
        return self._rows_conn

    def film_rows(self) -> "FilmRows | None":
        """The film's rows read from its chunks (schema 3), for the
        questions over the whole film; None for a recording read as rows."""
        if self.store is None:
            return None
        if self._film_rows is None:
            from .film_rows import FilmRows
            self._film_rows = FilmRows(self)
        return self._film_rows

    def _conn_for(self, sql: str) -> apsw.Connection:
        if self.store is not None and _FILM_TABLES.search(sql) is None:
            return self.file_conn
        return self.conn

    def __enter__(self) -> "Recording":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _load(self) -> None:
        try:
            conn = self.file_conn
            self.codes = {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in conn.execute(
                "SELECT code, file, name, qualname, first_line, in_scope FROM codes")}
            self.files = dict(conn.execute("SELECT file, path FROM files").fetchall())
            self.threads = dict(conn.execute("SELECT thread, name FROM threads").fetchall())
            self.tasks = dict(conn.execute("SELECT task, name FROM tasks").fetchall())
            if self.store is not None:
                self.first_step, self.last_step = self.store.first_step, self.store.last_step
                return
            # two statements: SQLite answers a lone min() or max() from the
            # primary key, but scans the table for both in one statement
            lo = self.conn.execute("SELECT min(step) FROM events").fetchall()[0][0]
            hi = self.conn.execute("SELECT max(step) FROM events").fetchall()[0][0]
        except apsw.Error as exc:
            raise self.corrupt(exc) from None
        self.first_step: int = lo if lo is not None else 0
        self.last_step: int = hi if hi is not None else -1

    def corrupt(self, exc: BaseException) -> RecordingError:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return RecordingError(f"the recording is corrupt ({text[:100]})", path=self.path,
                              fix="copy it again or re-run the test")

    def q(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Run a query; SQLite errors become one clear RecordingError."""
        try:
            return self._conn_for(sql).execute(sql, args).fetchall()
        except apsw.Error as exc:
            raise self.corrupt(exc) from None

    def q1(self, sql: str, args: tuple = ()) -> tuple | None:
        try:
            for row in self._conn_for(sql).execute(sql, args):
                return row
            return None
        except apsw.Error as exc:
            raise self.corrupt(exc) from None

    def iterate(self, sql: str, args: tuple = ()) -> Iterator[tuple]:
        try:
            yield from self._conn_for(sql).execute(sql, args)
        except apsw.Error as exc:
            raise self.corrupt(exc) from None

    # -- facts ---------------------------------------------------------------

    @property
    def test_id(self) -> str:
        return self.meta.get("test_id", self.path.name)

    @property
    def kind(self) -> str:
        return self.meta.get("kind", "test")

    @property
    def complete(self) -> bool:
        return self.meta.get("complete") == "1"

    @property
    def outcome(self) -> str:
        if not self.complete:
            return "crashed"
        return self.meta.get("outcome", "")

    @property
    def steps(self) -> range:
        """Every step still in the file (older ones may have been dropped)."""
        return range(self.first_step, self.last_step + 1)

    @property
    def dropped(self) -> int:
        try:
            return int(self.meta.get("dropped_events") or self.first_step)
        except ValueError:
            return self.first_step

    def check_step(self, step: int) -> int:
        if self.last_step < 0:
            raise BadStepError("the recording holds no events", path=self.path,
                               fix="the test ran no recorded code; check --escope-include")
        if step < self.first_step:
            if self.first_step > 0:
                raise BadStepError(f"step {step} was dropped (--escope-max-events kept steps "
                                   f"{self.first_step}-{self.last_step})", path=self.path,
                                   fix=f"pick a step from {self.first_step} to {self.last_step}")
            raise BadStepError(f"no step {step}", path=self.path,
                               fix=f"pick a step from {self.first_step} to {self.last_step}")
        if step > self.last_step:
            raise BadStepError(f"no step {step} (the recording ends at {self.last_step})", path=self.path,
                               fix=f"pick a step from {self.first_step} to {self.last_step}")
        return step

    # -- cached lookups --------------------------------------------------------

    def act(self, act: int, step: int | None = None) -> Act:
        """Activation ``act``; ``step``, a step it is on the stack at, helps
        a recording read from its chunks find it without decoding."""
        a = self._acts.get(act)
        if a is None and self.store is not None:
            found = self.store.act(act, step)
            if found is None:
                raise RecordingError(f"activation {act} is missing", path=self.path,
                                     fix="the recording is damaged; re-run the test")
            a = self._acts[act] = Act(found[:8], found[8])
        if a is None:
            row = self.q1("SELECT a.act, a.frame, a.parent, a.thread, a.task, a.depth, a.start_step, a.end_step, "
                          "f.code FROM activations a JOIN frames f ON f.frame = a.frame WHERE a.act = ?", (act,))
            if row is None:
                raise RecordingError(f"activation {act} is missing", path=self.path,
                                     fix="the recording is damaged; re-run the test")
            a = self._acts[act] = Act(row[:8], row[8])
        return a

    def callers(self, act: int, step: int | None = None) -> Iterator[Act]:
        """The activation and its callers, innermost first.

        ``parent`` comes from the file: a crafted one can make it loop, so a
        visited activation ends the walk with a clear error, never a hang.
        """
        seen: set[int] = set()
        a: Act | None = self.act(act, step)
        while a is not None:
            if len(seen) >= MAX_STACK_DEPTH:
                raise RecordingError(f"the call stack of activation {act} is deeper than {MAX_STACK_DEPTH} frames",
                                     path=self.path, fix="the recording is damaged or crafted; re-run the test")
            if a.act in seen:
                raise RecordingError(f"the call stack of activation {act} loops back to activation {a.act}",
                                     path=self.path, fix="the recording is damaged; re-run the test")
            seen.add(a.act)
            yield a
            a = self.act(a.parent, step) if a.parent is not None else None

    def chain(self, act: int, step: int | None = None) -> list[Act]:
        """The activation and its callers, outermost first (``step``: as
        ``act``)."""
        out = list(self.callers(act, step))
        out.reverse()
        return out

    def frame_code(self, frame: int) -> int:
        code = self._frame_codes.get(frame)
        if code is None and self.store is not None:
            code = self._frame_codes[frame] = self.store.frame_code(frame)
        if code is None:
            row = self.q1("SELECT code FROM frames WHERE frame = ?", (frame,))
            code = self._frame_codes[frame] = row[0] if row else 0
        return code

    def function(self, code: int) -> str:
        c = self.codes.get(code)
        return c[2] if c else "?"

    def file_of(self, code: int) -> str:
        c = self.codes.get(code)
        return self.files.get(c[0], "?") if c else "?"

    def node(self, code: int, line: int) -> str | None:
        """The libcst node id of ``line`` in the file of ``code``."""
        c = self.codes.get(code)
        if c is None:
            return None
        file = c[0]
        table = self._lines.get(file)
        if table is None:
            table = self._lines[file] = dict(self.q(
                "SELECT l.line, n.node_id FROM lines l JOIN nodes n ON n.node = l.node WHERE l.file = ?", (file,)))
        return table.get(line)

    def source_lines(self, code: int) -> list[str]:
        """The embedded source of the file of ``code`` (empty when not embedded)."""
        c = self.codes.get(code)
        if c is None:
            return []
        file = c[0]
        lines = self._sources.get(file)
        if lines is None:
            row = self.q1("SELECT source FROM files WHERE file = ?", (file,))
            try:
                text = schema.decode_source(row[0]) if row else None
            except Exception as exc:  # zlib.error, ValueError: a damaged or oversized blob
                raise RecordingError(f"the embedded source of {self.files.get(file, '?')} is damaged ({exc})",
                                     path=self.path, fix="re-run the test to record it again") from None
            lines = self._sources[file] = text.splitlines() if text else []
        return lines

    def name_ids(self) -> dict[str, int]:
        if self._name_ids is None:
            self._name_ids = {t: n for n, t in self.q("SELECT name, text FROM names")}
            self._name_texts = {n: t for t, n in self._name_ids.items()}
        return self._name_ids

    def name_text(self, name: int) -> str:
        self.name_ids()
        return self._name_texts.get(name, f"?{name}")

    def value(self, vid: int | None, step: int | None = None) -> Value | None:
        """The value row ``vid`` as of ``step``: a mutable object shows its
        latest snapshot at or before ``step`` (so aliases agree)."""
        if vid is None:
            return None
        if self.store is not None:
            return self._stored_value(vid, step)
        row = self.q1("SELECT obj, type, repr, detail, flags FROM vals WHERE value = ?", (vid,))
        if row is None:
            return Value("?", "<missing value>", None, 0)
        if row[0] is not None and step is not None:
            snap = self.q1("SELECT type, repr, detail, flags FROM vals WHERE obj = ? AND step <= ? "
                           "ORDER BY step DESC, value DESC LIMIT 1", (row[0], step))
            if snap is not None:
                return Value(*snap)
        return Value(row[1], row[2], row[3], row[4])

    def _stored_value(self, vid: int, step: int | None) -> Value:
        assert self.store is not None
        row = self.store.val(vid, step)
        if row is None:
            return Value("?", "<missing value>", None, 0)
        if row[0] is not None and step is not None:
            snap = self.store.snapshot(row[0], row[1], step)
            if snap is not None and snap != vid:
                newer = self.store.val(snap, step)
                if newer is not None:
                    row = newer
        return Value(row[2], row[3], row[4], row[5])

    def obj_of(self, vid: int | None) -> int | None:
        """The object a value row is a snapshot of (None: immutable)."""
        if vid is None:
            return None
        if self.store is not None:
            row = self.store.val(vid)
            return row[0] if row else None
        found = self.q1("SELECT obj FROM vals WHERE value = ?", (vid,))
        return found[0] if found else None

    def binding_rows(self, frame: int, step: int) -> list[tuple[int, int, int]]:
        """``(name, value id, first bound step)`` of each name ``frame`` bound
        at or before ``step``; value id 0 for a name unbound since (del)."""
        if self.store is not None:
            return [(name, vid or 0, first) for name, (first, _s, vid) in self.store.bindings(frame, step).items()]
        from .state import LOCALS_SQL
        return [r for r in self.q(LOCALS_SQL, (frame, step)) if r[1] is not None]

    def binding(self, frame: int, name: int, step: int) -> int | None:
        """The value id ``name`` of ``frame`` is bound to at ``step`` (None:
        not bound)."""
        if self.store is not None:
            found = self.store.bindings(frame, step, frozenset((name,))).get(name)
            return found[2] if found else None
        row = self.q1("SELECT value FROM bindings INDEXED BY bindings_frame WHERE frame = ? AND name = ? "
                      "AND step <= ? ORDER BY step DESC LIMIT 1", (frame, name, step))
        return row[0] if row else None

    def act_step(self, act: int, step: int, forward: bool) -> int | None:
        """The next (previous) step of activation ``act`` after (before) ``step``."""
        if self.store is None:
            if forward:
                row = self.q1("SELECT step FROM events WHERE act = ? AND step > ? ORDER BY step LIMIT 1", (act, step))
            else:
                row = self.q1("SELECT step FROM events WHERE act = ? AND step < ? ORDER BY step DESC LIMIT 1",
                              (act, step))
            return row[0] if row else None
        # an activation's steps are its own events with its callees' whole
        # activations between them: jump over each callee, never scan it
        a = self.act(act)
        s = step + 1 if forward else step - 1
        while self.first_step <= s <= self.last_step:
            here = self.store.event(s)[1]
            if here == act:
                return s
            b = self.act(here)
            if b.thread != a.thread:
                s += 1 if forward else -1
            elif forward:
                if b.end is None or b.end < s or (a.end is not None and s > a.end):
                    return None
                s = b.end + 1
            else:
                if b.start > s or s < a.start:
                    return None
                s = b.start - 1
        return None

    def walk(self, step: int, forward: bool) -> Iterator[tuple[int, int, int, int, int | None]]:
        """``(step, kind, act, line, value)`` from ``step`` (included) to the
        end of the film, or back to its start."""
        if self.store is not None:
            yield from self.store.walk(step, forward)
            return
        if forward:
            yield from self.iterate("SELECT step, kind, act, line, value FROM events WHERE step >= ? ORDER BY step",
                                    (step,))
        else:
            yield from self.iterate("SELECT step, kind, act, line, value FROM events WHERE step <= ? "
                                    "ORDER BY step DESC", (step,))

    def event_row(self, step: int) -> tuple[int, int, int, int, int | None]:
        """``(kind, act, line, time_ns, value)`` of one step."""
        self.check_step(step)
        if self.store is not None:
            return self.store.event(step)
        row = self.q1("SELECT kind, act, line, time_ns, value FROM events WHERE step = ?", (step,))
        if row is None:
            raise BadStepError(f"step {step} is missing from the recording", path=self.path,
                               fix="the recording is damaged; re-run the test")
        return row  # type: ignore[return-value]

    def kind_name(self, kind: int) -> str:
        return schema.KIND_NAMES.get(kind, f"kind{kind}")

    def thread_name(self, thread: int) -> str:
        return self.threads.get(thread, f"thread-{thread}")

    # -- the questions -------------------------------------------------------------

    def state_at(self, step: int) -> "State":
        """The call stack, locals, thread, task and exception in flight at ``step``."""
        from .state import build_state
        return build_state(self, step)

    def failure(self) -> "Failure | None":
        """Where the test failed, or None when it did not."""
        from .state import failure
        return failure(self)

    def events(self, **filters: Any) -> list["Event"]:
        """Events oldest first; filters as ``escope events`` (kind, frame,
        thread, node, since, until, limit)."""
        from .queries import events
        return events(self, **filters)

    def history(self, name: str, frame: int | None = None, limit: int | None = None,
                since: int | None = None) -> "History":
        """Every value ``name`` (or ``a.b[0]`` path) took, with step and node;
        only in ``frame`` when given; the first ``limit`` values when given;
        only those at or after step ``since`` when given.  A lazy sequence:
        ``h[:50]`` costs fifty values, ``len(h)`` all of them (history.py)."""
        from .history import History
        return History(self, name, frame=frame, limit=limit, since=since)

    def flow(self) -> dict[str, Any]:
        """Caller -> callee counts, threads and tasks."""
        from .queries import flow
        return flow(self)

    def stats(self) -> dict[str, Any]:
        from .queries import stats
        return stats(self)
