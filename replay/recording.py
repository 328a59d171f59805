"""``Recording``: the Python API over one recording file.

Everything the CLI shows comes from here, so scripts, notebooks and coding
agents can ask the same questions::

    from pytest_escope.replay import Recording
    rec = Recording.open("test_invoice.py::test_late_fee")
    state = rec.state_at(rec.failure().step)
    rec.history("total")

The object keeps one read-only connection and a few small caches (code
objects, files, the line -> node map of each file, activations it has
seen).  Every question is answered by indexed lookups, never by scanning
the film, so a step near the end of a million-event recording costs what a
step near the start costs (see docs/performance.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import apsw

from ..recorder import schema
from .errors import BadStepError, RecordingError
from .opening import open_recording
from .runs import TestEntry, resolve_test
from .values import Value

if TYPE_CHECKING:
    from .history import History
    from .queries import Event
    from .state import Failure, State

__all__ = ["Recording", "Act"]


#: Deepest stack replay reconstructs: far beyond Python's default recursion
#: limit (1000), and small enough that one state stays quick; a deeper
#: chain of ``parent`` links comes from a damaged or crafted file.
MAX_STACK_DEPTH = 20_000


class Act:
    """One activation: a stretch of a frame on the stack."""

    __slots__ = ("act", "frame", "parent", "thread", "task", "depth", "start", "end", "code")

    def __init__(self, row: tuple, code: int) -> None:
        self.act, self.frame, self.parent, self.thread, self.task, self.depth, self.start, self.end = row
        self.code = code


class Recording:
    """An open recording.  Use ``Recording.open``; close it (or use ``with``)."""

    def __init__(self, conn: apsw.Connection, meta: dict[str, str], path: Path,
                 entry: TestEntry | None = None) -> None:
        self.conn = conn
        self.meta = meta
        self.path = path
        self.entry = entry
        self._acts: dict[int, Act] = {}
        self._frame_codes: dict[int, int] = {}
        self._lines: dict[int, dict[int, str]] = {}
        self._sources: dict[int, list[str]] = {}
        self._name_ids: dict[str, int] | None = None
        self._name_texts: dict[int, str] = {}
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
        conn, meta = open_recording(path)
        return cls(conn, meta, path, entry)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Recording":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _load(self) -> None:
        try:
            self.codes = {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in self.conn.execute(
                "SELECT code, file, name, qualname, first_line, in_scope FROM codes")}
            self.files = dict(self.conn.execute("SELECT file, path FROM files").fetchall())
            self.threads = dict(self.conn.execute("SELECT thread, name FROM threads").fetchall())
            self.tasks = dict(self.conn.execute("SELECT task, name FROM tasks").fetchall())
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
            return self.conn.execute(sql, args).fetchall()
        except apsw.Error as exc:
            raise self.corrupt(exc) from None

    def q1(self, sql: str, args: tuple = ()) -> tuple | None:
        try:
            for row in self.conn.execute(sql, args):
                return row
            return None
        except apsw.Error as exc:
            raise self.corrupt(exc) from None

    def iterate(self, sql: str, args: tuple = ()) -> Iterator[tuple]:
        try:
            yield from self.conn.execute(sql, args)
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

    def act(self, act: int) -> Act:
        a = self._acts.get(act)
        if a is None:
            row = self.q1("SELECT a.act, a.frame, a.parent, a.thread, a.task, a.depth, a.start_step, a.end_step, "
                          "f.code FROM activations a JOIN frames f ON f.frame = a.frame WHERE a.act = ?", (act,))
            if row is None:
                raise RecordingError(f"activation {act} is missing", path=self.path,
                                     fix="the recording is damaged; re-run the test")
            a = self._acts[act] = Act(row[:8], row[8])
        return a

    def callers(self, act: int) -> Iterator[Act]:
        """The activation and its callers, innermost first.

        ``parent`` comes from the file: a crafted one can make it loop, so a
        visited activation ends the walk with a clear error, never a hang.
        """
        seen: set[int] = set()
        a: Act | None = self.act(act)
        while a is not None:
            if len(seen) >= MAX_STACK_DEPTH:
                raise RecordingError(f"the call stack of activation {act} is deeper than {MAX_STACK_DEPTH} frames",
                                     path=self.path, fix="the recording is damaged or crafted; re-run the test")
            if a.act in seen:
                raise RecordingError(f"the call stack of activation {act} loops back to activation {a.act}",
                                     path=self.path, fix="the recording is damaged; re-run the test")
            seen.add(a.act)
            yield a
            a = self.act(a.parent) if a.parent is not None else None

    def chain(self, act: int) -> list[Act]:
        """The activation and its callers, outermost first."""
        out = list(self.callers(act))
        out.reverse()
        return out

    def frame_code(self, frame: int) -> int:
        code = self._frame_codes.get(frame)
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
        row = self.q1("SELECT obj, type, repr, detail, flags FROM vals WHERE value = ?", (vid,))
        if row is None:
            return Value("?", "<missing value>", None, 0)
        if row[0] is not None and step is not None:
            snap = self.q1("SELECT type, repr, detail, flags FROM vals WHERE obj = ? AND step <= ? "
                           "ORDER BY step DESC, value DESC LIMIT 1", (row[0], step))
            if snap is not None:
                return Value(*snap)
        return Value(row[1], row[2], row[3], row[4])

    def event_row(self, step: int) -> tuple[int, int, int, int, int | None]:
        """``(kind, act, line, time_ns, value)`` of one step."""
        self.check_step(step)
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
