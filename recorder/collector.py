"""The in-memory film of one recording, shared by both tracing backends.

Backends append one tuple per event to ``events``: ``(kind, act, line, t)``
for a plain step, ``(kind, act, line, t, value, payload)`` when the step
carries a value or changes (new bindings, value snapshots, a new activation).
When ``_hotpath`` is built, ``events`` is its ``EventLog``: the same
``append``, but the four integers are kept as integers in an array (the C
callbacks write there directly), and a sealed segment is an ``EventLog``
too, which the writer reads without making a tuple per event.
A step's number is its position in the film, so changes ride inside the
event tuple and never need a step number of their own: that stays exact
even when several threads append at once.

Immutable scalars are kept by reference and rendered when the chunk is
written; anything mutable is rendered immediately (a later rendering would
show a later state).  ``spill`` hands full chunks to the background writer.
"""

from __future__ import annotations

# Bound at import: a test that monkeypatches builtins must not reach the recorder.
from builtins import bool, dict, id, int, issubclass, len, list, max, min, next, reversed, str, tuple, type  # noqa: A004

import itertools
import sys
import threading
import time
from types import BuiltinMethodType as _BUILTIN_METHOD, MethodType as _METHOD
from functools import partial as _PARTIAL
from typing import Any, Callable

from . import schema
from .interrupts import owned_by_test
from .config import RecorderConfig, pure_python_requested
from .flusher import FLUSHER
from .scope import CodeInfo, Scope, SourceFile
from .values import IMMUTABLE_IDS, Renderer, compile_redaction, fingerprint, kept_alive

try:
    from ._hotpath import (EventLog as _EventLog, render_scalar_sequence as _render_scalar_sequence,
                           render_tree as _render_tree, fingerprint_tree as _fingerprint_tree,
                           scalar_fingerprint as _scalar_fingerprint, untrack_segment as _untrack_segment,
                           forget_row as _forget_row)
except ImportError:  # not built: a list of tuples, which the garbage collector untracks later
    _EventLog = _render_scalar_sequence = _render_tree = _fingerprint_tree = _scalar_fingerprint = _untrack_segment = _forget_row = None
try:
    # 3.12 only: frame.f_locals there writes every local into the dict the
    # test's locals() returned (and holds a reference to each); 3.13's is a view
    from ._hotpath import frame_locals as _frame_locals
except ImportError:
    _frame_locals = None

MISSING = object()
_BUILTIN_SELF = _BUILTIN_METHOD.__dict__["__self__"].__get__
_METHOD_SELF = _METHOD.__dict__["__self__"].__get__
#: a partial's callable, read through the type's own member (``func``)
_PARTIAL_FUNC = _PARTIAL.__dict__["func"].__get__
#: a watch entry naming nothing: the next step still looks (class bodies)
_LOOK_AGAIN: tuple = ((), ())

_perf_ns = time.perf_counter_ns
#: bound at import: a test that mocks ``time.sleep`` must not reach the recorder
_sleep = time.sleep
_RESUME = schema.RESUME
_YIELD = schema.YIELD

_BORING_LOCAL_PREFIXES = ("@", ".")

#: The film in memory is a list the tracers append to, moved into a tuple
#: every this many events.  A full garbage collection visits every item of a
#: list, and 100,000 event tuples scattered over the heap cost it about a
#: hundred milliseconds of cache misses each time; a tuple of untracked
#: tuples is itself untracked, so a segment is never visited again.
SEGMENT_EVENTS = 2048
#: the most events a chunk grows to (memory: a few hundred bytes each)
SPILL_CAP = 100_000
#: Spill once the snapshots rendered since the last spill hold this many
#: characters: an object of a few hundred shown items changed at every
#: step makes kilobytes a step, and the writer holds a few copies of a
#: chunk while it packs it (peak RSS, docs/performance.md).
SPILL_CHARS = 8 << 20
#: the most events a chunk grows to when the flusher runs: a test that films
#: faster than the writer writes waits for it at this size, so what a hard
#: death loses stays near 10,000 events (docs/reliability.md, "Faults")
FLUSHED_CHUNK = 4096


def _take(rows: list) -> list:
    """Empty ``rows`` and return what it held; a row another thread appends
    meanwhile stays for the next chunk (the list object is kept: a tracer
    may hold it)."""
    n = len(rows)
    taken = rows[:n]
    del rows[:n]
    return taken


def _owner_of(method: Any) -> Any:
    """The object a bound method is bound to, also inside a
    ``functools.partial`` of one (read from the types' own descriptors: no
    code of the test runs); None for any other callable."""
    try:
        for _ in range(4):  # partial(partial(log.append, ...)): a few levels, never a loop
            if type(method) is not _PARTIAL:
                break
            method = _PARTIAL_FUNC(method)
        cls = type(method)
        if cls is not _METHOD and cls is not _BUILTIN_METHOD:
            return None
        return _METHOD_SELF(method) if cls is _METHOD else _BUILTIN_SELF(method)
    except Exception as recorder_err:
        if owned_by_test(recorder_err):
            raise
        return None


class FrameState:
    """One Python frame being filmed (a generator's survives its yields)."""

    __slots__ = ("frame_id", "act", "info", "code", "watch", "prev", "last", "seen",
                 "depth", "thread", "task", "exc_pending", "parent")

    def __init__(self, frame_id: int, info: CodeInfo) -> None:
        self.frame_id = frame_id
        self.info = info
        self.code = info.code
        self.watch = info.watch
        self.act = 0
        self.prev: Any = None  # watch entry of the statement now running
        self.last: dict[str, int] = {}  # name -> id() of the value bound to it
        self.seen: dict[str, int] = {}  # name -> value row of a mutable object, as last seen here
        self.depth = 0
        self.thread = 0
        self.task: int | None = None
        self.exc_pending = False
        self.parent: FrameState | None = None


class ThreadState:
    __slots__ = ("thread_id", "stack", "task")

    def __init__(self, thread_id: int) -> None:
        self.thread_id = thread_id
        self.stack: list[FrameState] = []
        self.task: int | None = None


class Collector:
    """Everything filmed for one test (or one ``escope run`` script)."""

    def __init__(self, config: RecorderConfig, scope: Scope, sink: Callable[[dict[str, Any]], None]) -> None:
        self.config = config
        self.scope = scope
        self.sink = sink  # receives chunks; the writer thread behind it
        size, depth, items = config.limits()
        self.renderer = Renderer(max_size=size, max_depth=depth, max_items=items,
                                 redact=compile_redaction(config.redact))
        self.strategy = config.strategy
        #: the compiled twin of fingerprint's common case (None: Python only)
        compiled = not pure_python_requested()
        self._scalar_fingerprint = _scalar_fingerprint if compiled else None
        #: fingerprint and kept_alive of nested containers and plain objects in C
        self._tree_fingerprint = _fingerprint_tree if compiled else None
        self._forget_row = _forget_row if compiled else None
        #: a frame's locals without touching its f_locals (None: read f_locals)
        self._frame_locals = _frame_locals if compiled else None
        if compiled:
            self.renderer.compiled_sequence = _render_scalar_sequence
            self.renderer.compiled_tree = _render_tree
        self.record_lines = config.strategy != "minimal"
        self.full = config.strategy == "full_trace"
        #: the film in memory: a list of event tuples, or (compiled) an
        #: EventLog, which takes the same ``append`` and stores the four
        #: integers of an event as integers
        self.events: Any = _EventLog() if compiled and _EventLog is not None else []
        self.segments: list[tuple] = []  # older events in memory, in order
        self.segmented = 0  # how many events the segments hold
        self.base = 0
        self.dropped = 0
        self.t0 = time.perf_counter_ns()
        self.spill_events = config.spill_events
        self.max_events = config.max_events
        #: the most events a chunk of the test thread's grows to while the flusher runs
        self.chunk_cap = FLUSHED_CHUNK if config.flush_seconds > 0 else None
        self.spill_limit = config.spill_events if self.chunk_cap is None else min(config.spill_events,
                                                                                  self.chunk_cap)
        if config.max_events:
            self.spill_limit = max(1, min(self.spill_limit, config.max_events))
        #: the tracers call ``overflow`` when ``events`` is this long; with
        #: the flusher's cap a chunk is small enough to stay one list
        self.hot_limit = self.spill_limit if self.chunk_cap is not None else min(SEGMENT_EVENTS, self.spill_limit)
        self.spill_every_ns = int(config.spill_seconds * 1e9)
        self.spill_at = self.spill_every_ns
        self.spilled = False
        self._spill_lock = threading.Lock()
        #: odd while ``base``, ``segmented`` and ``events`` are being moved
        #: into a chunk: the flusher thread (recorder/flusher.py) takes
        #: chunks while the test thread runs, and ``step_count`` must never
        #: see the events counted twice or not at all
        self.moving = 0
        #: the flusher may take chunks (cleared when the recording stops)
        self.flushable = False
        #: how often the flusher takes a chunk unasked (0: only when asked)
        self.flush_every = config.flush_seconds
        #: what a filming thread asked the flusher for (``serve``): 0 nothing,
        #: 1 room in ``events``, 2 everything in memory handed to the writer
        self.asked = 0
        #: passes of ``serve`` begun and finished: a filming thread that
        #: asked waits for one that began after its request
        self.serves_begun = 0
        self.serves_done = 0
        self.held_chars = 0  # text and detail of the snapshots not yet spilled
        # odd ids here; the writer numbers the scalars it renders with even ids
        self.vids = itertools.count(1, 2)
        self.objnums = itertools.count(1)
        self.frame_ids = itertools.count(1)
        self.act_ids = itertools.count(1)
        #: id(object) -> (fingerprint, vid, objnum, class, the scalars kept alive)
        self.objs: dict[int, tuple[Any, int, int, type, Any]] = {}
        self.threads: dict[int, ThreadState] = {}
        self.thread_rows: list[tuple[int, int, str]] = []
        self.task_ids: dict[int, tuple[Any, int]] = {}
        self.task_rows: list[tuple[int, str]] = []
        self.code_ids: dict[int, tuple[Any, int]] = {}
        self.code_rows: list[tuple] = []
        self.file_ids: dict[str, int] = {}
        self.new_files: list[tuple[int, SourceFile]] = []
        self.suspended: dict[int, FrameState] = {}
        self.secret_names: dict[str, bool] = {}
        self.exc_log: list[tuple[int, int, str]] = []  # (step, id(exc), type)
        self.faults: dict[str, int] = {}
        self.phase_rows: list[tuple] = []
        self.active = True
        self.inject_fault = False  # ESCOPE_TEST_FAULT=event (session.py)

    # -- identities --------------------------------------------------------

    def thread_state(self, ident: int) -> ThreadState:
        ts = self.threads.get(ident)
        if ts is None:
            thread_id = len(self.threads) + 1
            try:
                name = threading.current_thread().name
            except Exception as recorder_err:
                if owned_by_test(recorder_err):
                    raise
                name = f"thread-{ident}"
            ts = ThreadState(thread_id)
            self.threads[ident] = ts
            self.thread_rows.append((thread_id, ident, name))
        return ts

    def code_id(self, info: CodeInfo) -> int:
        entry = self.code_ids.get(id(info.code))
        if entry is not None and entry[0] is info.code:
            return entry[1]
        sf = info.file
        file_id = self.file_ids.get(sf.abspath)
        if file_id is None:
            file_id = self.file_ids[sf.abspath] = len(self.file_ids) + 1
            self.new_files.append((file_id, sf))
        code_id = len(self.code_ids) + 1
        self.code_ids[id(info.code)] = (info.code, code_id)
        code = info.code
        self.code_rows.append((code_id, file_id, code.co_name, info.qualname, code.co_firstlineno, 1))
        return code_id

    def task_id(self) -> int | None:
        """The running asyncio task, if any; read without running user code
        beyond asyncio's own ``current_task``."""
        asyncio = sys.modules.get("asyncio")
        if asyncio is None:
            return None
        try:
            loop = asyncio._get_running_loop()
            if loop is None:
                return None
            task = asyncio.current_task(loop)
        except Exception as recorder_err:
            if owned_by_test(recorder_err):
                raise
            return None
        if task is None:
            return None
        entry = self.task_ids.get(id(task))
        if entry is not None and entry[0] is task:
            return entry[1]
        tid = len(self.task_ids) + 1
        try:
            name = str(task.get_name())
        except Exception as recorder_err:
            if owned_by_test(recorder_err):
                raise
            name = f"task-{tid}"
        self.task_ids[id(task)] = (task, tid)
        self.task_rows.append((tid, name))
        return tid

    def is_secret(self, name: str) -> bool:
        s = self.secret_names.get(name)
        if s is None:
            s = self.secret_names[name] = self.renderer.is_secret_name(name)
        return s

    # -- values -----------------------------------------------------------

    def capture(self, value: Any, out: list, secret: bool = False) -> int:
        """Id of a value row for ``value``; rows to write go into ``out``.

        Immutable scalars are kept by reference (rendered by the writer).
        A mutable object is rendered only when its fingerprint (ids and
        lengths, two levels deep) differs from the last one seen for it.
        """
        if secret:
            vid = next(self.vids)
            tname, text, detail, flags = self.renderer.redacted(value)
            out.append(("v", vid, None, tname, text, detail, flags))
            return vid
        cls = type(value)
        if id(cls) in IMMUTABLE_IDS:
            vid = next(self.vids)
            out.append(("r", vid, value))
            return vid
        key = id(value)
        entry = self.objs.get(key)
        alive = None
        try:
            # a list or tuple of scalars (most re-checks) in C, then nested
            # containers and plain objects in C, the rest in Python
            fp = self._scalar_fingerprint(value) if self._scalar_fingerprint is not None else None
            if fp is None and self._tree_fingerprint is not None:
                renderer = self.renderer
                both = self._tree_fingerprint(value, renderer._c_kinds, renderer.c_kind)
                if both is not None:
                    fp, alive = both
            if fp is None:
                fp = fingerprint(value, self.renderer)
        except Exception as recorder_err:
            if owned_by_test(recorder_err):
                raise
            fp = None
        again = False
        if entry is not None and entry[3] is cls:
            if fp is not None and entry[0] == fp:
                return entry[1]
            # An exception whose args changed is a new exception that took a
            # freed one's address (code rarely reassigns ``args``): which
            # objects the allocator reuses must not decide what is one object
            again = not issubclass(cls, BaseException)
            objnum = entry[2] if again else next(self.objnums)
        else:
            objnum = next(self.objnums)
        # JSON now, not in the writer: a form is a tree of dicts and lists the
        # garbage collector would walk at every full collection while it waits
        renderer = self.renderer
        tname, text, detail, flags = renderer.render_again(value) if again else renderer.render(value)
        vid = next(self.vids)
        out.append(("v", vid, objnum, tname, text, detail, flags))
        self.held_chars += len(text) + (len(detail) if detail is not None else 0)
        try:
            if alive is None:
                alive = kept_alive(value, self.renderer) if fp is not None else ()
        except Exception as recorder_err:
            if owned_by_test(recorder_err):
                raise
            fp = alive = None  # never matched again: the next look takes a new snapshot
        row = self.objs[key] = (fp, vid, objnum, cls, alive)
        if self._forget_row is not None:
            self._forget_row(row)
        if self.held_chars > SPILL_CHARS:
            # this event's rows travel with it, in the next chunk
            self.spill()
        return vid

    def check_watch(self, fs: FrameState, frame: Any, entry: tuple) -> tuple | None:
        """After a statement ran: which of the names it may change did.

        ``_hotpath.c`` has this loop in C (``check_watch`` there) and calls
        ``bind_changed`` and ``recheck_mutable`` for what it does not keep
        by reference itself; the two must stay alike.
        """
        bound, mutated = entry
        try:
            loc = self._locals_of(fs, frame)
        except Exception as recorder_err:
            if owned_by_test(recorder_err):
                raise
            return None
        if fs.info.class_body and type(loc) is dict:
            # the whole namespace, and the names it no longer holds
            names = dict.fromkeys(bound)
            names.update(dict.fromkeys(k for k in loc if type(k) is str))
            names.update(dict.fromkeys(fs.last))
            bound = tuple(names)
        out: list = []
        last = fs.last
        fid = fs.frame_id
        secrets = self.secret_names
        for name in bound:
            v = loc.get(name, MISSING)
            if v is MISSING:
                if name in last:
                    del last[name]
                    out.append(("b", fid, name, None))
                continue
            i = id(v)
            if last.get(name) != i:
                last[name] = i
                if id(type(v)) in IMMUTABLE_IDS and secrets.get(name) is False:
                    out.append(("s", fid, name, v))
                else:
                    self.bind_changed(fs, name, v, out)
        for name in mutated:
            v = loc.get(name, MISSING)
            if v is MISSING:
                continue
            i = id(v)
            if last.get(name) != i:
                last[name] = i
                if id(type(v)) in IMMUTABLE_IDS and secrets.get(name) is False:
                    out.append(("s", fid, name, v))
                else:
                    self.bind_changed(fs, name, v, out)
            elif id(type(v)) not in IMMUTABLE_IDS:
                self.recheck_mutable(fs, loc, name, v, out)
        # a tuple of tuples of scalars: the GC untracks it, a list it never would
        return tuple(out) if out else None

    def _locals_of(self, fs: FrameState, frame: Any) -> Any:
        """The frame's locals: read without touching ``f_locals`` where the
        compiled helper can (3.12's fast locals); a module's or a class
        body's names live in a dict, which ``f_locals`` is, written to by
        nothing here."""
        if self._frame_locals is None or fs.info.namespace:
            return frame.f_locals
        return self._frame_locals(frame)

    def bind_changed(self, fs: FrameState, name: str, value: Any, out: list) -> None:
        """``name`` is bound to another object than at the last look."""
        secret = self.is_secret(name)
        if id(type(value)) in IMMUTABLE_IDS and not secret:
            out.append(("s", fs.frame_id, name, value))
        else:
            vid = self.capture(value, out, secret)
            fs.seen[name] = vid
            out.append(("b", fs.frame_id, name, vid))

    def recheck_mutable(self, fs: FrameState, loc: Any, name: str, value: Any, out: list) -> None:
        """``name`` still holds the same mutable object, which the statement
        may have changed in place: a new snapshot if its fingerprint moved."""
        if self.is_secret(name):
            return
        cls = type(value)
        if cls is _BUILTIN_METHOD or cls is _METHOD or cls is _PARTIAL:
            # a bound method called by name (``sink(x)`` with ``sink =
            # log.append``, or a partial of one) changes its owner, which no
            # name of the line holds: a new snapshot of the owner if this
            # film already shows it (any frame's binding to it then shows the
            # change)
            owner = _owner_of(value)
            if owner is not None and id(type(owner)) not in IMMUTABLE_IDS:
                entry = self.objs.get(id(owner))
                if entry is not None and entry[3] is type(owner):
                    self.capture(owner, out)
            return
        vid = self.capture(value, out)
        seen = fs.seen
        if seen.get(name, vid) != vid:
            # changed since this frame last looked (here or in a callee)
            self._recheck_aliases(fs, loc, name, value, out)
        seen[name] = vid

    def _recheck_aliases(self, fs: FrameState, loc: Any, name: str, value: Any, out: list) -> None:
        """``value`` changed: a local bound to one of its children changed too.

        ``inner = bag.items; bag.add(3)`` mutates the list through ``bag``;
        the statement names only ``bag``.  The new fingerprint of ``bag``
        holds the ids of its children, so any other local bound to one of
        them gets a new snapshot (when its own fingerprint moved).
        """
        entry = self.objs.get(id(value))
        if entry is None or not fs.last:
            return
        fp = entry[0]
        if type(fp) is bytes:
            # packed (values.packed_fingerprint): every word, markers and
            # lengths included, which no local's id equals
            ids = set(memoryview(fp).cast("Q"))
        elif type(fp) is tuple:
            ids = set()
            for part in fp:
                if type(part) is int:
                    ids.add(part)
                elif type(part) is tuple:
                    ids.update(p for p in part if type(p) is int)
        else:
            return
        for other, other_id in list(fs.last.items()):
            if other == name or other_id not in ids:
                continue
            v = loc.get(other, MISSING)
            if v is MISSING or id(v) != other_id or id(type(v)) in IMMUTABLE_IDS or self.is_secret(other):
                continue
            self.capture(v, out)

    def capture_locals(self, fs: FrameState, frame: Any, out: list) -> None:
        """Every local of a frame just entered: its arguments."""
        try:
            loc = self._locals_of(fs, frame)
            items = list(loc.items())
        except Exception as recorder_err:
            if owned_by_test(recorder_err):
                raise
            return
        last = fs.last
        fid = fs.frame_id
        is_secret = self.is_secret
        for name, v in items:
            if type(name) is not str or name.startswith(_BORING_LOCAL_PREFIXES):
                continue
            last[name] = id(v)
            if id(type(v)) in IMMUTABLE_IDS and not is_secret(name):
                out.append(("s", fid, name, v))
            else:
                vid = self.capture(v, out, is_secret(name))
                fs.seen[name] = vid
                out.append(("b", fid, name, vid))

    # -- frames -------------------------------------------------------------

    def enter(self, ts: ThreadState, info: CodeInfo, frame: Any, kind: int, line: int) -> FrameState:
        """A frame starts (``CALL``) or a suspended one resumes (``RESUME``)."""
        if self.inject_fault:
            raise RuntimeError("injected fault (ESCOPE_TEST_FAULT=event)")
        out: list = []
        fs = None
        resumed = False
        if kind == schema.RESUME:
            fs = self.suspended.pop(id(frame), None)
            if fs is not None and fs.code is not info.code:
                fs = None
            if fs is not None and not info.is_coro:
                self.resume(ts, fs, line)
                return fs
            resumed = fs is not None
        if fs is None:
            fs = FrameState(next(self.frame_ids), info)
            out.append(("F", fs.frame_id, self.code_id(info)))
            if self.record_lines or kind == schema.CALL:
                self.capture_locals(fs, frame, out)
            if kind == schema.RESUME:
                kind = schema.CALL
        parent = ts.stack[-1] if ts.stack else None
        fs.parent = parent
        fs.act = next(self.act_ids)
        fs.depth = parent.depth + 1 if parent is not None else 0
        fs.thread = ts.thread_id
        if info.is_coro:
            task = self.task_id()
            if task is not None:
                ts.task = task
        fs.task = parent.task if parent is not None and not info.is_coro else ts.task
        # A resumed generator is in the middle of its `yield` statement: what
        # that statement binds (`got = yield x`) is checked at its next step.
        # A class body's first step already shows what the compiler bound
        # before it (``__module__``, ``__qualname__``): look at once.
        fs.prev = fs.watch.get(line) if resumed else (_LOOK_AGAIN if info.class_body else None)
        fs.exc_pending = False
        out.append(("A", fs.act, fs.frame_id, parent.act if parent is not None else None,
                    ts.thread_id, fs.task, fs.depth))
        ts.stack.append(fs)
        t = time.perf_counter_ns() - self.t0
        self.events.append((kind, fs.act, line, t, None, tuple(out)))
        if t > self.spill_at:
            self.spill()
        elif len(self.events) >= self.hot_limit:
            self.overflow()
        return fs

    def resume(self, ts: ThreadState, fs: FrameState, line: int) -> None:
        """A suspended generator (not a coroutine) resumes: the part of
        ``enter`` a generator pays at every item, without its branches."""
        if self.inject_fault:
            raise RuntimeError("injected fault (ESCOPE_TEST_FAULT=event)")
        stack = ts.stack
        act = next(self.act_ids)
        fs.act = act
        if stack:
            parent = stack[-1]
            depth = parent.depth + 1
            task = parent.task
            parent_act = parent.act
        else:
            parent = None
            depth = 0
            task = ts.task
            parent_act = None
        fs.parent = parent
        fs.depth = depth
        fs.thread = thread = ts.thread_id
        fs.task = task
        fs.prev = fs.watch.get(line)
        fs.exc_pending = False
        stack.append(fs)
        t = _perf_ns() - self.t0
        events = self.events
        events.append((_RESUME, act, line, t, None, (("A", act, fs.frame_id, parent_act, thread, task, depth),)))
        if t > self.spill_at:
            self.spill()
        elif len(events) >= self.hot_limit:
            self.overflow()

    def leave(self, ts: ThreadState, fs: FrameState, frame: Any, kind: int, line: int, value: Any) -> None:
        """A frame returns, yields or is unwound by an exception."""
        changes = None
        if fs.prev and self.record_lines:
            changes = self.check_watch(fs, frame, fs.prev)
        fs.prev = None
        vid = None
        payload = changes
        if kind == schema.RETURN or kind == _YIELD:
            name = fs.code.co_name
            secret = self.secret_names.get(name)
            if secret is None:
                secret = self.is_secret(name)
            if id(type(value)) in IMMUTABLE_IDS and not secret:
                item = ("R", value)  # the writer renders it and fills in the event's value
                payload = changes + (item,) if changes else (item,)
            else:
                out = list(changes) if changes else []
                vid = self.capture(value, out, secret)
                payload = tuple(out) if out else None
        stack = ts.stack
        if stack and stack[-1] is fs:
            stack.pop()
        elif fs in stack:
            del stack[stack.index(fs):]
        if kind == _YIELD:
            self.suspended[id(frame)] = fs
        self.events.append((kind, fs.act, line, _perf_ns() - self.t0, vid, payload))

    def exception(self, fs: FrameState, kind: int, line: int, exc: Any) -> None:
        out: list = []
        vid = self.capture(exc, out)
        step = self.step_count()
        if kind == schema.EXCEPTION:
            try:
                tname = self.renderer._type_name(type(exc))
            except Exception as recorder_err:
                if owned_by_test(recorder_err):
                    raise
                tname = "?"
            self.exc_log.append((step, id(exc), tname))
        self.events.append((kind, fs.act, line, time.perf_counter_ns() - self.t0, vid, tuple(out)))

    def checkpoint(self, label: str, values: dict[str, Any]) -> None:
        """A custom event from the ``escope`` fixture, on the calling thread."""
        ts = self.thread_state(threading.get_ident())
        fs = ts.stack[-1] if ts.stack else None
        out: list = []
        payload = {"label": label}
        for k, v in values.items():
            payload[k] = v
        secret_keys = {k for k in values if self.is_secret(k)}
        tname, text, detail, flags = self.renderer.render({k: ("<redacted>" if k in secret_keys else v) for k, v in payload.items()})
        vid = next(self.vids)
        out.append(("v", vid, None, "checkpoint", text, detail, flags))
        line = sys._getframe(2).f_lineno if fs is not None else 0
        self.events.append((schema.CHECKPOINT, fs.act if fs else 0, line, time.perf_counter_ns() - self.t0, vid, out))

    def phase(self, name: str, start: bool, outcome: str | None = None, duration_ns: int | None = None) -> None:
        step = self.step_count()
        self.phase_rows.append((name, step, start, outcome, duration_ns))

    #: read by the compiled callbacks (``_hotpath.Hot``): an exception met
    #: inside the recorder that the test must get
    owned_by_test = staticmethod(owned_by_test)

    def fault(self, message: str) -> None:
        self.faults[message] = self.faults.get(message, 0) + 1

    # -- chunks ---------------------------------------------------------------

    def step_count(self) -> int:
        """The number of the next step: events filmed so far.

        Read again when a chunk was being taken meanwhile (``moving`` odd or
        changed): the three counts are consistent only between two moves."""
        while True:
            moving = self.moving
            count = self.base + self.segmented + len(self.events)
            if not moving & 1 and moving == self.moving:
                return count
            _sleep(0)  # let the flusher finish its move

    def _seal(self) -> None:
        """Move ``events`` into a new segment; the caller holds the spill lock."""
        events = self.events
        if not events:
            return
        self.moving += 1
        try:
            if type(events) is not list:
                segment = events.seal()  # atomic: another thread may append meanwhile
                self.segments.append(segment)
                self.segmented += len(segment)
                return
            # a slice of exactly n: another thread may append meanwhile
            n = len(events)
            segment = tuple(events[:n])
            if _untrack_segment is not None:
                _untrack_segment(segment)
            self.segments.append(segment)
            self.segmented += n
            del events[:n]
        finally:
            self.moving += 1

    def take_chunk(self) -> dict[str, Any]:
        """What is in memory, as a chunk; the caller holds the spill lock."""
        self._seal()
        self.moving += 1
        try:
            segments, count = self.segments, self.segmented
            self.segments = []
            base = self.base
            self.base = base + count
            self.segmented = 0
        finally:
            self.moving += 1
        chunk = {
            "base": base,
            "count": count,
            "events": tuple(segments),  # the events, in segments
            # taken as slices: another thread may append a row meanwhile
            "files": _take(self.new_files),
            "codes": _take(self.code_rows),
            "threads": _take(self.thread_rows),
            "tasks": _take(self.task_rows),
            "phases": _take(self.phase_rows),
            "faults": list(self.faults.items()),
        }
        self.held_chars = 0
        return chunk

    def overflow(self) -> None:
        """``events`` reached ``hot_limit`` (on a filming thread): have the
        flusher thread move it into a segment, and take a chunk when the
        segments reach ``spill_limit``."""
        FLUSHER.ask(self, 1)

    def spill(self) -> None:
        """Have the flusher thread hand what is in memory to the writer, and
        wait until it did (on a filming thread).  This thread never takes a
        chunk itself: it may be the main thread, where a signal handler that
        raises between taking the events and queueing them would lose them
        (recorder/flusher.py)."""
        now = _perf_ns() - self.t0
        self.spill_at = now + max(self.spill_every_ns, now // 2)
        FLUSHER.ask(self, 2)

    def spill_last(self) -> None:
        """The recording stopped: hand everything left to the writer, to the
        end even when a signal handler raises meanwhile (then raised on)."""
        FLUSHER.ask(self, 2, to_the_end=True)

    def serve(self) -> None:
        """Do what a filming thread asked (on the flusher thread): level 1
        seals ``events`` into a segment and takes a chunk once the segments
        reach ``spill_limit``; level 2 takes everything in memory."""
        with self._spill_lock:
            begun = self.serves_begun + 1
            self.serves_begun = begun
            level, self.asked = self.asked, 0
            try:
                if level == 0:
                    return
                if level == 1:
                    self._seal()
                    if self.segmented < self.spill_limit:
                        return
                if not self.events and not self.segments and not self.phase_rows:
                    # (a phase that filmed nothing, such as the teardown of a
                    # test whose earlier events the flusher took, still has its row)
                    return
                self.spilled = True
                try:
                    self.sink(self.take_chunk())
                finally:
                    grown = max(self.spill_events, min(self.base // 2, SPILL_CAP))
                    if self.chunk_cap is not None:
                        grown = min(grown, self.chunk_cap)
                    self.spill_limit = min(grown, self.max_events) if self.max_events else grown
            finally:
                self.serves_done = begun

    def flush(self) -> bool:
        """Hand what is in memory to the writer from the flusher thread, so a
        test that dies keeps its film up to its last moments, even while it
        is blocked (in C, in ``time.sleep``, on a lock) and films nothing.
        Never waits for the spill lock: a thread holding it is clearing the
        film.  Returns True when a chunk was handed over."""
        if not self._spill_lock.acquire(blocking=False):
            return False
        try:
            # checked under the lock: a recording that stopped is finished
            # (or discarded) by its own thread, which takes the lock too
            if not self.flushable or (not self.events and not self.segments):
                return False
            self.spilled = True
            self.sink(self.take_chunk())
            return True
        finally:
            self._spill_lock.release()

    def clear(self) -> None:
        """Forget every event still in memory (the recording is discarded)."""
        with self._spill_lock:
            self.events.clear()
            self.segments = []
            self.segmented = 0

    def failure_step(self, exc: BaseException | None) -> int | None:
        """The step where the exception that failed the test was first raised."""
        if exc is None:
            return None
        key = id(exc)
        try:
            tname = self.renderer._type_name(type(exc))
        except Exception as recorder_err:
            if owned_by_test(recorder_err):
                raise
            tname = "?"
        found = None
        for step, eid, etype in reversed(self.exc_log):
            if eid == key and etype == tname:
                found = step
            elif found is not None and eid != key:
                break
        return found
