"""Writing recordings: chunks of the film into one SQLite file, in the background.

Each chunk is one transaction written with ``executemany``; a process that
dies keeps every chunk already committed (the journal is the rollback kind,
so a half-written chunk simply vanishes).  The writer runs on its own
thread so the test keeps running while a big chunk is rendered and written.
"""

from __future__ import annotations

# Bound at import: a test that monkeypatches builtins must not reach the recorder.
from builtins import dict, int, isinstance, len, list, set, str, tuple, type  # noqa: A004

import functools
import itertools
import json
import os
import queue
import threading
from pathlib import Path
from typing import Any

import apsw

from . import keyframes, schema
from .config import pure_python_requested
from .flusher import FLUSHER
from .values import Renderer, _encode_json, detail_json

try:
    from ._hotpath import (EventLog as _EventLog, FilmTables as _CFilmTables, event_columns as _event_columns,
                           json_int_column as _json_int_column, json_text_column as _json_text_column)
except ImportError:  # built without a C compiler
    _EventLog = _CFilmTables = _event_columns = _json_int_column = _json_text_column = None

_STOP = object()

#: Scalars whose equal values always render alike, so a value seen before
#: needs no rendering (not float: 0.0 == -0.0; not complex, for the same).
_KEYED_BY_VALUE = frozenset({int, str, bool, bytes, type(None)})
#: how many distinct scalars the writer remembers to write each once: the
#: common ones come first; a test making millions of distinct values must
#: not grow this past a few megabytes (docs/performance.md, "Memory")
SCALAR_MEMO = 50_000


class _ChunkRows:
    """What one chunk adds beside the int tables: rendered values (text
    columns), new names, lines that ran for the first time."""

    __slots__ = ("val_rows", "new_names", "new_lines")

    def __init__(self) -> None:
        self.val_rows: list = []
        self.new_names: list = []
        self.new_lines: list = []


_ENDS = frozenset({schema.RETURN, schema.YIELD, schema.UNWIND})

#: How each packed table's columns are written (schema.pack_texts).
_FRAME_MODES = schema.column_modes("frames")
_ACT_MODES = schema.column_modes("activations")
_BINDING_MODES = schema.column_modes("bindings")
_VAL_MODES = schema.column_modes("vals")


class _FilmTables:
    """The int rows of the chunk being written (frames, activations,
    bindings, activation ends, the value of each event) and what the writer
    remembers from chunk to chunk (the file each open activation and each
    frame runs in).  ``_hotpath.FilmTables`` is this class in C, with the
    same methods; the two write byte-identical chunks.  The C class also
    renders the builtin scalars of the payloads it takes (it is handed
    the writer's ``scalar_vids``, ``max_size`` and memo bound); here every
    payload goes to ``RecordingWriter._payload``.

    An activation's row goes in when it opens, with no end; its end is
    filled in when it ends in the same chunk, else it becomes an
    ``act_ends`` row of the chunk where it ends.
    """

    def __init__(self, code_file: dict[int, int], scalar_vids: dict | None = None, max_size: int = 0,
                 memo: int = 0) -> None:
        self.code_file = code_file
        #: the id the next scalar the writer renders gets: even (the
        #: collector's are odd), shared by the C loop and _scalar_vid
        self.next_vid = 2
        self.act_file: dict[int, int | None] = {}
        self.frame_file: dict[int, int | None] = {}
        self.new_chunk()

    def new_chunk(self) -> None:
        self.pending: dict[int, list] = {}
        self.tables: dict[str, list] = {"frames": [], "activations": [], "bindings": [], "act_ends": [],
                                        "value_pairs": []}

    def open_activation(self, act: int, frame: int, parent: int | None, thread: int, task: int | None,
                        depth: int, step: int) -> None:
        row = [act, frame, parent, thread, task, depth, step, None]
        self.tables["activations"].append(row)
        self.pending[act] = row
        self.act_file[act] = self.frame_file.get(frame)

    def add_frame(self, frame: int, code: int, step: int) -> None:
        self.tables["frames"].append((frame, code, step))
        self.frame_file[frame] = self.code_file.get(code)

    def add_binding(self, frame: int, name_id: int, step: int, vid: int | None) -> None:
        self.tables["bindings"].append((frame, name_id, step, vid))

    def rows(self, name: str) -> list[tuple]:
        return [tuple(row) for row in self.tables[name]]

    def split(self, parts: tuple, base: int, payload: Any, by_value: dict, names: dict, new_names: list,
              val_rows: list, seen_lines: set, new_lines: list) -> tuple[list, list, list, list]:
        """The event loop of a chunk: each event's value, the lines that ran,
        the ends of activations; ``payload(step, value, payload)`` does the
        rest of an event that has one.  Returns the four event columns
        (kind, act, line, time); the compiled loop leaves them to
        ``_hotpath.event_columns``."""
        kinds: list = []
        acts: list = []
        lines: list = []
        times: list = []
        pairs = self.tables["value_pairs"]
        ends = self.tables["act_ends"]
        act_file = self.act_file
        step = base
        for ev in itertools.chain.from_iterable(p if type(p) is tuple else p.tolist() for p in parts):
            kind = ev[0]
            act = ev[1]
            kinds.append(kind)
            acts.append(act)
            lines.append(ev[2])
            times.append(ev[3])
            if len(ev) != 4:
                value = payload(step, ev[4], ev[5])
                if value is not None:
                    pairs.append((step - base, value))
            key = (act_file.get(act), ev[2])
            if key not in seen_lines:
                seen_lines.add(key)
                new_lines.append(key)
            if kind in _ENDS:
                row = self.pending.pop(act, None)
                if row is not None:
                    row[7] = step
                else:
                    ends.append((act, step))
                act_file.pop(act, None)
            step += 1
        return kinds, acts, lines, times

    def texts(self, base: int, frame_modes: tuple, act_modes: tuple, binding_modes: tuple) -> dict[str, Any]:
        """Each table with rows as its columns' JSON text (as the C class)."""
        out: dict[str, Any] = {}
        for name, modes in (("frames", frame_modes), ("activations", act_modes), ("bindings", binding_modes),
                            ("act_ends", schema.ACT_END_MODES)):
            rows = self.tables[name]
            if rows:
                out[name] = schema.column_texts(rows, modes, base, _encode_json, None)
        pairs = self.tables["value_pairs"]
        if pairs:
            out["value_pairs"] = _encode_json([x for pair in pairs for x in pair])
        return out


def _compiled_val_columns(rows: list, modes: tuple, base: int) -> list:
    """``int_column`` for the val rows (schema.column_texts): the int
    columns and the text columns (type, repr, detail) in C; a column both
    decline (None) is left to the JSON encoder."""
    texts = _json_int_column(rows, modes, base)
    for i, text in enumerate(texts):
        if text is None:
            texts[i] = _json_text_column(rows, i)
    return texts


def _sealed_logs(parts: tuple) -> tuple:
    """A chunk's parts as sealed EventLogs (what the compiled loop reads)."""
    if all(type(p) is _EventLog for p in parts):
        return parts
    out = []
    for part in parts:
        if type(part) is not tuple:
            part = tuple(part.tolist())
        log = _EventLog()
        for ev in part:
            log.append(ev)
        out.append(log.seal())
    return tuple(out)


def _groups(parts: tuple, size: int) -> list[tuple]:
    """Consecutive parts gathered until each group holds ``size`` events or
    more (one group, possibly empty, when there are few)."""
    groups: list[tuple] = []
    group: list = []
    count = 0
    for part in parts:
        group.append(part)
        count += len(part)
        if count >= size:
            groups.append(tuple(group))
            group, count = [], 0
    if group or not groups:
        groups.append(tuple(group))
    return groups


def create_private_file(path: Path) -> None:
    """Create ``path`` readable by its owner only, before SQLite opens it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)


class RecordingWriter:
    """Owns one recording file; every method is safe to call from the test
    thread, the real work happens on a daemon thread."""

    def __init__(self, path: Path, meta: dict[str, str], renderer: Renderer, max_events: int | None = None) -> None:
        self.path = path
        self.renderer = renderer
        self.max_events = max_events
        self.meta = dict(meta)
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.events_written = 0
        self.names: dict[str, int] = {}
        self.files_done: dict[int, Any] = {}
        self.scalar_vids: dict[tuple, int] = {}
        self.scalar_vids_by_value: dict[tuple, int] = {}
        self.code_file: dict[int, int] = {}
        self.seen_lines: set[tuple[int, int]] = set()
        self.lines_done: set[tuple[int, int]] = set()
        #: (file, line) pairs filmed but not yet in ``lines``: see _write_chunk
        self.pending_lines: list[tuple[int, int]] = []
        self.node_pks: dict[tuple[int, int], int] = {}
        self.db: apsw.Connection | None = None
        #: made when the writer starts, dropped once it ended (``_bury``)
        self._thread: threading.Thread | None = None
        self._started = False
        self.abandoned = False
        #: the Python event loop even when the compiled one exists (tests compare them)
        # the Python writer also when the extension was not built
        self.pure = pure_python_requested() or _json_int_column is None
        self._tables: Any = None  # made by the writer thread (``pure`` may change before)
        self.keyframes = keyframes.KeyFrames()

    # -- test-thread side -------------------------------------------------

    def put(self, chunk: dict[str, Any]) -> None:
        if self.error is not None:
            return
        if not self._started:
            self._start()
        self._enqueue(chunk)

    def _start(self) -> None:
        self._started = True
        self._thread = threading.Thread(target=self._run, name="escope-writer", daemon=True)
        self._thread.start()

    def _bury(self) -> None:
        """Drop the ended writer thread's object on the flusher thread: its
        death runs threading's Python code (a WeakSet callback), and a
        signal handler that CPython runs inside a weakref callback has its
        exception swallowed.  Freed later by the garbage collector, it could
        die in the middle of a test and swallow the test's ``Timeout``."""
        thread, self._thread = self._thread, None
        if thread is not None:
            FLUSHER.bury(thread)

    def _enqueue(self, item: Any) -> None:
        """``queue.put``, finished even when a signal handler raises while
        the test thread waits for the writer: the chunk is never lost, and
        the handler's exception is raised on once it is queued (it is the
        test's, ``interrupts.owned_by_test``)."""
        self._finish(functools.partial(self.queue.put, item))

    @staticmethod
    def _finish(wait: Any) -> None:
        """Run ``wait`` to its end, then raise what a signal handler raised
        while it waited (a blocking wait runs handlers in the main thread)."""
        pending: BaseException | None = None
        while True:
            try:
                wait()
                break
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                if pending is None:
                    pending = exc
        if pending is not None:
            try:
                raise pending
            finally:
                pending = None

    def close(self, final_meta: dict[str, str]) -> None:
        """Write the last facts and close the file; waits for the writer."""
        if not self._started:
            self._start()
        self._enqueue(("meta", final_meta))
        self._enqueue(_STOP)
        self._finish(self._thread.join)
        self._bury()

    def abandon(self) -> None:
        """Stop without writing what is still queued (the file is about to be
        deleted: a passing test under ``--escope-keep=failed``)."""
        self.abandoned = True
        if self._started and self._thread is not None:
            self.queue.put(_STOP)
            self._thread.join()
            self._bury()

    # -- writer thread -------------------------------------------------------

    def _open(self) -> apsw.Connection:
        create_private_file(self.path)
        db = apsw.Connection(str(self.path))
        db.setbusytimeout(5000)
        # 1 kB pages: a recording is some twenty tables of one page each plus
        # its chunks, and most tests film a few hundred steps
        db.execute("PRAGMA page_size=1024; PRAGMA journal_mode=DELETE; PRAGMA synchronous=OFF")
        with db:
            db.execute(schema.TABLES_SCHEMA)
            base_meta = {
                "format": schema.FORMAT_NAME,
                "schema_version": str(schema.SCHEMA_VERSION),
                "complete": "0",
            }
            base_meta.update(self.meta)
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(base_meta.items()))
        return db

    def _run(self) -> None:
        FLUSHER.recorder_thread(threading.get_ident(), True)
        try:
            self._serve()
        finally:
            FLUSHER.recorder_thread(threading.get_ident(), False)

    def _serve(self) -> None:
        while True:
            item = self.queue.get()
            if item is _STOP:
                break
            if self.error is not None or self.abandoned:
                continue
            try:
                if self.db is None:
                    self.db = self._open()
                if isinstance(item, tuple) and item[0] == "meta":
                    pending, self.pending_lines = self.pending_lines, []
                    with self.db:
                        self._write_lines(self.db, pending)
                        self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(item[1].items()))
                        for key, value in item[1].items():
                            if key.startswith("outcome_"):
                                self.db.execute("UPDATE phases SET outcome = ? WHERE phase = ?", (value, key[8:]))
                else:
                    self._write_chunk(self.db, item)
            except BaseException as exc:  # recorded as a fault, never raised into the test
                self.error = exc
        if self.db is not None:
            try:
                self.db.close()
            except Exception:
                pass

    def _name_id(self, db: apsw.Connection, name: str, new_names: list) -> int:
        nid = self.names.get(name)
        if nid is None:
            nid = self.names[name] = len(self.names) + 1
            new_names.append((nid, name))
        return nid

    def _write_chunk(self, db: apsw.Connection, chunk: dict[str, Any]) -> None:
        base = chunk["base"]
        for row in chunk.get("codes", ()):
            self.code_file[row[0]] = row[1]
        compiled = _CFilmTables is not None and not self.pure
        if self._tables is None:
            self._tables = (_CFilmTables if compiled else _FilmTables)(self.code_file, self.scalar_vids,
                                                                       self.renderer.max_size, SCALAR_MEMO)
        # one spill becomes chunks of about CHUNK_STEPS events: a replayer
        # decodes the one holding a step in milliseconds
        packed = []
        start = base
        for group in _groups(chunk["events"], schema.CHUNK_STEPS):
            count = sum(len(part) for part in group)
            packed.append((start, count, *self._pack(db, start, group, compiled)))
            start += count
        new_lines = [line for item in packed for line in item[4]]
        new_names = [name for item in packed for name in item[5]]
        with db:
            step = base + chunk["count"]
            for first, count, blob, index, _lines, _names in packed:
                if not count:  # a spill of phase rows only has no film
                    continue
                db.execute("INSERT INTO chunks (first_step, steps, data) VALUES (?, ?, ?)", (first, count, blob))
                db.execute("INSERT INTO keyframes VALUES (last_insert_rowid(), ?, ?, ?, ?, ?, ?, ?, ?)",
                           (first, count, *index))
            for file_id, sf in chunk.get("files", ()):
                if file_id in self.files_done:
                    continue
                self.files_done[file_id] = sf
                db.execute("INSERT INTO files VALUES (?, ?, ?, ?)",
                           (file_id, sf.relpath, sf.sha256, schema.encode_source(sf.source)))
            # which statement each line belongs to is written when the
            # recording is finished: a recording that is discarded (a passing
            # test under keep=failed) never pays for the node index
            self.pending_lines.extend(new_lines)
            if chunk.get("codes"):
                db.executemany("INSERT OR REPLACE INTO codes VALUES (?, ?, ?, ?, ?, ?)", chunk["codes"])
            if chunk.get("threads"):
                db.executemany("INSERT OR REPLACE INTO threads VALUES (?, ?, ?)", chunk["threads"])
            if chunk.get("tasks"):
                db.executemany("INSERT OR REPLACE INTO tasks VALUES (?, ?)", chunk["tasks"])
            if new_names:
                db.executemany("INSERT INTO names VALUES (?, ?)", new_names)
            for name, start_step, is_start, outcome, duration in chunk.get("phases", ()):
                if is_start:
                    db.execute("INSERT OR REPLACE INTO phases (phase, start_step) VALUES (?, ?)", (name, start_step))
                else:
                    db.execute("UPDATE phases SET end_step = ?, outcome = ?, duration_ns = ? WHERE phase = ?",
                               (start_step, outcome, duration, name))
            for message, count in chunk.get("faults", ()):
                db.execute("INSERT OR REPLACE INTO faults VALUES (?, ?)", (message, count))
            if self.max_events and step > self.max_events:
                self._drop_oldest(db, step - self.max_events)
        # counted once committed: a commit refused by a full disk leaves
        # none of this chunk in the file, and a recording with no event on
        # disk is removed (Recording.finish)
        self.events_written = step

    def _pack(self, db: apsw.Connection, base: int, parts: tuple, compiled: bool) -> tuple:
        """One chunk of ``parts`` (events from ``base`` on): its blob, its
        ``keyframes`` row, and the lines and names it ran for the first time."""
        tables = self._tables
        tables.new_chunk()
        rows = _ChunkRows()
        payload = functools.partial(self._payload, rows, db)
        if compiled:
            parts = _sealed_logs(parts)
            # the four event columns straight from the arrays, without the GIL
            columns = _event_columns(parts, base) if parts else ("[]",) * 4
            tables.split(parts, base, payload, self.scalar_vids_by_value, self.names, rows.new_names,
                         rows.val_rows, self.seen_lines, rows.new_lines)
            if columns is None:  # a difference beyond 64 bits: Python's ints write it
                events = [ev for p in parts for ev in p.tolist()]
                columns = [schema.column_text([ev[i] for ev in events], mode, base, _encode_json, None)
                           for i, mode in enumerate(schema.EVENT_MODES[:4])]
        else:
            lists = tables.split(parts, base, payload, self.scalar_vids_by_value, self.names, rows.new_names,
                                 rows.val_rows, self.seen_lines, rows.new_lines)
            columns = [schema.column_text(col, mode, base, _encode_json, None)
                       for col, mode in zip(lists, schema.EVENT_MODES)]
        texts = tables.texts(base, _FRAME_MODES, _ACT_MODES, _BINDING_MODES)
        for name, modes in (("frames", _FRAME_MODES), ("activations", _ACT_MODES), ("bindings", _BINDING_MODES),
                            ("act_ends", schema.ACT_END_MODES)):
            # a column the C writer declined (a None where a difference is due)
            if name in texts and None in texts[name]:
                texts[name] = schema.column_texts(tables.rows(name), modes, base, _encode_json, None)
        if rows.val_rows:
            texts["vals"] = schema.column_texts(rows.val_rows, _VAL_MODES, base, _encode_json,
                                                None if self.pure else _compiled_val_columns)
        blob = schema.pack_texts([*columns, texts.pop("value_pairs", "[]")], texts)
        keyframe = self.keyframes.keyframe()
        frames, acts, ends = tables.rows("frames"), tables.rows("activations"), tables.rows("act_ends")
        self.keyframes.absorb(frames, acts, ends, tables.rows("bindings"), rows.val_rows)
        index = keyframes.index_row(frames, acts, ends, rows.val_rows, keyframe)
        return blob, index, rows.new_lines, rows.new_names

    def _payload(self, rows: _ChunkRows, db: apsw.Connection, step: int, value: Any, payload: Any) -> Any:
        """The rows an event's payload adds; returns the event's value (a
        ``vals.value`` id, or None)."""
        if not payload:
            return value
        remap = None
        for item in payload:
            tag = item[0]
            if tag == "b":
                vid = item[3]
                if remap is not None and vid in remap:
                    vid = remap[vid]
                self._tables.add_binding(item[1], self._name_id(db, item[2], rows.new_names), step, vid)
            elif tag == "s" or tag == "R":
                vid = self._scalar_vid(rows, step, item[-1])
                if tag == "s":
                    self._tables.add_binding(item[1], self._name_id(db, item[2], rows.new_names), step, vid)
                else:
                    value = vid
            elif tag == "r":
                tname, text, detail, flags = self.renderer.render_scalar(item[2])
                key = (tname, text, flags)
                known = self.scalar_vids.get(key) if detail is None else None
                if known is not None:
                    if remap is None:
                        remap = {}
                    remap[item[1]] = known
                else:
                    if detail is None and len(self.scalar_vids) < SCALAR_MEMO:
                        self.scalar_vids[key] = item[1]
                    rows.val_rows.append((item[1], None, step, tname, text, detail, flags))
            elif tag == "v":
                detail = item[5]
                if detail is not None and type(detail) is not str:
                    detail = detail_json(detail)
                rows.val_rows.append((item[1], item[2], step, item[3], item[4], detail, item[6]))
            elif tag == "A":
                self._tables.open_activation(item[1], item[2], item[3], item[4], item[5], item[6], step)
            elif tag == "F":
                self._tables.add_frame(item[1], item[2], step)
        if remap is not None and value in remap:
            value = remap[value]
        return value

    def _scalar_vid(self, rows: _ChunkRows, step: int, scalar: Any) -> int:
        """The value id of a scalar kept by reference: rendered once, deduplicated."""
        cls = type(scalar)
        by_value = self.scalar_vids_by_value
        vkey = (cls, scalar) if cls in _KEYED_BY_VALUE else None
        vid = by_value.get(vkey) if vkey is not None else None
        if vid is not None:
            return vid
        tname, text, detail, flags = self.renderer.render_scalar(scalar)
        key = (tname, text, flags)
        scalars = self.scalar_vids
        vid = scalars.get(key)
        if vid is None:
            tables = self._tables
            vid = tables.next_vid
            tables.next_vid = vid + 2
            if len(scalars) < SCALAR_MEMO:
                scalars[key] = vid
            rows.val_rows.append((vid, None, step, tname, text, detail, flags))
        if vkey is not None and len(by_value) < SCALAR_MEMO:
            by_value[vkey] = vid
        return vid

    def _write_lines(self, db: apsw.Connection, new_lines: list) -> None:
        """Rows of ``lines`` and ``nodes`` for the lines that ran."""
        line_rows = []
        node_rows = []
        done = self.lines_done
        for file_id, line in new_lines:
            if file_id is None or (file_id, line) in done:
                continue
            done.add((file_id, line))
            sf = self.files_done.get(file_id)
            if sf is None:
                continue
            index = sf.index
            i = index.line_node.get(line)
            if i is None:
                continue
            node_key = (file_id, i)
            node_pk = self.node_pks.get(node_key)
            if node_pk is None:
                node_pk = self.node_pks[node_key] = len(self.node_pks) + 1
                n = index.nodes[i]
                node_rows.append((node_pk, file_id, n.first_line, n.last_line, n.kind, n.qualname, n.node_id, n.anchor))
            line_rows.append((file_id, line, node_pk))
        if node_rows:
            db.executemany("INSERT INTO nodes VALUES (?, ?, ?, ?, ?, ?, ?, ?)", node_rows)
        if line_rows:
            db.executemany("INSERT INTO lines VALUES (?, ?, ?)", line_rows)

    def _drop_oldest(self, db: apsw.Connection, cut: int) -> None:
        """Keep the newest events; older bindings and snapshots shrink to the
        last one per name and per object, so the first kept step still has
        its full state.  The chunks are unpacked into the tables first: the
        cut falls inside one, and the rules below are about single rows."""
        schema.unpack_chunks(db)
        db.execute("DELETE FROM keyframes")  # the film is read from the tables now
        db.execute("DELETE FROM events WHERE step < ?", (cut,))
        db.execute(
            "DELETE FROM bindings WHERE step < ? AND rowid NOT IN "
            "(SELECT max(rowid) FROM bindings WHERE step < ? GROUP BY frame, name)", (cut, cut))
        db.execute(
            "DELETE FROM vals WHERE step < ? AND obj IS NOT NULL AND value NOT IN "
            "(SELECT max(value) FROM vals WHERE step < ? AND obj IS NOT NULL GROUP BY obj) "
            "AND value NOT IN (SELECT value FROM bindings WHERE value IS NOT NULL)", (cut, cut))
        db.execute(
            "DELETE FROM vals WHERE step < ? AND obj IS NULL AND value NOT IN (SELECT value FROM bindings WHERE value IS NOT NULL) "
            "AND value NOT IN (SELECT value FROM events WHERE value IS NOT NULL)",
            (cut,))
        db.execute("INSERT OR REPLACE INTO meta VALUES ('first_step', ?)", (str(cut),))
        db.execute("INSERT OR REPLACE INTO meta VALUES ('dropped_events', ?)", (str(cut),))
