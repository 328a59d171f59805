"""A recording's film read straight from its chunks, for ``escope diff``.

``Recording`` answers questions through the indexed rows of an unpacked
copy; making that copy costs seconds for a million events (docs/
performance.md, "Replay"), and a diff reads two films from one end to
the other once.  So this reader decompresses the chunks itself and decodes
only what the diff looks at: the small ``frames`` and ``activations``
columns of every chunk, and the events, bindings and values of the chunks
the two films disagree on.  Two chunks that hold the same text (the event
times aside, and object addresses in reprs) hold the same events, so
``common_prefix`` skips them without parsing their JSON.

A recording the writer did not leave as chunks only (schema 1, rows kept in
the tables by ``--escope-max-events``, a hot journal of a process that
died) is read through ``opening.open_recording`` and its tables instead:
slower, the same answers.
"""

from __future__ import annotations

import bisect
import itertools
import json
import re
import zlib
from pathlib import Path
from typing import Any, Iterator

import apsw

from ..recorder import schema
from .errors import RecordingError
from .opening import _hot_journal, check_header, connect_readonly, open_recording
from .schema_check import check_schema

_FIX = "copy it again or re-run the test"

#: Row of ``vals``: (obj, step, type, repr, detail, flags).
ValRow = tuple


class _Chunk:
    """One chunk: its raw JSON text, decoded a section at a time."""

    __slots__ = ("base", "steps", "text", "events", "bindings", "vals", "spans")

    def __init__(self, base: int, steps: int, text: bytes | None) -> None:
        self.base = base
        self.steps = steps
        self.text = text
        self.events: tuple[list, list, list, list] | None = None
        self.bindings: list[tuple[int, int, int, int | None]] | None = None
        self.vals: dict[int, ValRow] | None = None
        self.spans: dict[str, tuple[int, int]] = {}

    def _offsets(self) -> dict[str, tuple[int, int]]:
        """Where each section's JSON list lies in the text.  Sections come in
        a fixed order and no key can appear inside a JSON string (its
        quotes would be escaped), so plain searches find them; ``act_ends``
        is looked for from the end, past the long ``vals`` strings."""
        text = self.text
        assert text is not None
        found: list[tuple[str, int]] = [("events", len(b'{"events":'))]
        pos = found[0][1]
        for key in ("frames", "activations", "bindings", "vals"):
            marker = b',"' + key.encode() + b'":['
            at = text.find(marker, pos)
            if at >= 0:
                found.append((key, at))
                pos = at + len(marker)
        at = text.rfind(b',"act_ends":[')
        if at >= pos:
            found.append(("act_ends", at))
        out: dict[str, tuple[int, int]] = {}
        for n, (key, at) in enumerate(found):
            start = at if key == "events" else at + len(key) + 4
            end = found[n + 1][1] if n + 1 < len(found) else len(text) - 1
            out[key] = (start, end)
        return out

    def section(self, key: str, offsets: dict[str, tuple[int, int]] | None = None) -> Any:
        """The JSON list under ``key`` (None when the chunk has none)."""
        span = (offsets or self._offsets()).get(key)
        if span is None:
            return None
        assert self.text is not None
        return json.loads(self.text[span[0]:span[1]])

    def value_ids(self, offsets: dict[str, tuple[int, int]]) -> list[int]:
        """The ``vals.value`` column alone: its first list holds numbers only."""
        span = offsets.get("vals")
        if span is None:
            return []
        assert self.text is not None
        end = self.text.index(b"]", span[0] + 2)
        return _sums(json.loads(self.text[span[0] + 1:end + 1]))

    def comparable(self) -> tuple[bytes, bytes]:
        """The text without the event-time column (always different)."""
        text = self.text
        assert text is not None
        pos = len(b'{"events":[')
        for _ in range(3):
            pos = text.index(b"],[", pos) + 3
        end = text.index(b"]", pos)
        return text[:pos], text[end:]


def _decode(data: Any, path: Path) -> bytes:
    if not isinstance(data, (bytes, memoryview)):
        raise RecordingError("the recording is corrupt (a chunk is not a blob)", path=path, fix=_FIX)
    d = zlib.decompressobj()
    try:
        raw = d.decompress(bytes(data), schema.CHUNK_LIMIT)
    except zlib.error as exc:
        raise RecordingError(f"the recording is corrupt (a chunk does not decompress: {exc})", path=path,
                             fix=_FIX) from None
    if d.unconsumed_tail or not raw.startswith(b'{"events":[['):
        raise RecordingError("the recording is corrupt (a chunk is not escope's)", path=path, fix=_FIX)
    return raw


def _sums(column: list) -> list:
    if not set(map(type, column)) <= {int}:
        raise ValueError("a difference column that is not all integers")
    return list(itertools.accumulate(column))


def _absolute(column: list, base: int) -> list:
    return [None if s is None else s + base for s in column]


class FilmReader:
    """The film of one recording: events, activations, bindings and values
    by id, decoded when first asked for."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.conn, self.meta, direct = self._connect()
        try:
            self.files: dict[int, str] = dict(self.conn.execute("SELECT file, path FROM files").fetchall())
            self.codes: dict[int, tuple] = {r[0]: r[1:] for r in self.conn.execute(
                "SELECT code, file, name, qualname, first_line FROM codes")}
            self.threads: dict[int, str] = dict(self.conn.execute("SELECT thread, name FROM threads").fetchall())
            self.names: dict[int, str] = dict(self.conn.execute("SELECT name, text FROM names").fetchall())
            self.frames: dict[int, tuple[int, int]] = {}
            self.acts: dict[int, list] = {}
            self._late_ends: dict[int, int | None] = {}  # act -> end step written by a later chunk
            self._act_firsts: list[int | None] = []
            self._frame_firsts: list[int | None] = []
            self.chunks: list[_Chunk] = []
            # value ids per chunk, read when a value is looked for: ids are
            # not in chunk order (scalars and snapshots are numbered apart)
            self._vid_sets: dict[int, set[int]] = {}
            if direct:
                self._load_chunks()
            else:
                self._load_tables()
        except apsw.Error as exc:
            raise RecordingError(f"the recording is corrupt ({str(exc).splitlines()[0][:100]})",
                                 path=self.path, fix=_FIX) from None
        except (ValueError, TypeError, IndexError, KeyError, RecursionError) as exc:
            raise RecordingError(f"the recording is corrupt ({type(exc).__name__}: {str(exc)[:80]})",
                                 path=self.path, fix=_FIX) from None
        self._bases = [c.base for c in self.chunks]
        self._sources: dict[int, list[str]] = {}

    # -- opening -------------------------------------------------------------

    def _connect(self) -> tuple[apsw.Connection, dict[str, str], bool]:
        """A connection to the file itself when its film is all in chunks,
        else to the unpacked copy ``open_recording`` makes."""
        check_header(self.path)
        if _hot_journal(self.path) is None:
            try:
                conn = connect_readonly(self.path)
                kinds = dict(conn.execute("SELECT name, type FROM sqlite_schema").fetchall())
                if kinds.get("meta") == "table" and kinds.get("chunks") == "table":
                    check_schema(conn, self.path)
                    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                    if (meta.get("format") == schema.FORMAT_NAME and meta.get("schema_version") in ("2", "3")
                            and conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
                            and not conn.execute("SELECT count(*) FROM events").fetchone()[0]):
                        return conn, meta, True
                conn.close()
            except apsw.Error:
                pass  # open_recording says what is wrong, in its words
        conn, meta = open_recording(self.path)
        return conn, meta, False

    def _load_chunks(self) -> None:
        from concurrent.futures import ThreadPoolExecutor  # for escope diff alone: not at every start
        rows = self.conn.execute("SELECT first_step, steps, data FROM chunks ORDER BY chunk").fetchall()
        # zlib lets go of the GIL while it inflates: two threads halve the
        # wait on a film of many chunks
        with ThreadPoolExecutor(max_workers=2) as pool:
            texts = list(pool.map(lambda row: _decode(row[2], self.path), rows))
        for (base, steps, _data), text in zip(rows, texts):
            if type(base) is not int or type(steps) is not int:
                raise ValueError("a chunk without its steps")
            chunk = _Chunk(base, steps, text)
            self.chunks.append(chunk)
            spans = chunk.spans = chunk._offsets()
            ends = chunk.section("act_ends", spans)
            if ends:
                for act, end in zip(ends[0], _absolute(ends[1], base)):
                    self._late_ends[act] = end
        self.chunks.sort(key=lambda c: c.base)
        self._act_firsts = [_first_number(c, "activations") for c in self.chunks]
        self._frame_firsts = [_first_number(c, "frames") for c in self.chunks]

    def _load_tables(self) -> None:
        q = self.conn.execute
        self.frames = {r[0]: (r[1], r[2]) for r in q("SELECT frame, code, first_step FROM frames")}
        self.acts = {r[0]: list(r[1:]) for r in q(
            "SELECT act, frame, parent, thread, depth, start_step, end_step FROM activations")}
        rows = q("SELECT step, kind, act, line, value FROM events ORDER BY step").fetchall()
        base = rows[0][0] if rows else 0
        chunk = _Chunk(base, len(rows), None)
        chunk.events = ([r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows], [r[4] for r in rows])
        chunk.bindings = q("SELECT frame, name, step, value FROM bindings ORDER BY step").fetchall()
        chunk.vals = {r[0]: r[1:] for r in q("SELECT value, obj, step, type, repr, detail, flags FROM vals")}
        self.chunks = [chunk]

    def act(self, act: int) -> list | None:
        """``[frame, parent, thread, depth, start_step, end_step]`` of an
        activation.  Ids are handed out in call order, so the chunk that
        holds an activation is the last one whose first id is not above it."""
        row = self.acts.get(act)
        if row is None and self._act_firsts:
            n = _holder(self._act_firsts, act)
            if n is not None:
                self._decode_acts(n)
                row = self.acts.get(act)
        return row

    def frame(self, frame: int) -> tuple[int, int] | None:
        """``(code, first_step)`` of a frame."""
        row = self.frames.get(frame)
        if row is None and self._frame_firsts:
            n = _holder(self._frame_firsts, frame)
            if n is not None:
                self._decode_frames(n)
                row = self.frames.get(frame)
        return row

    def _decode_acts(self, n: int) -> None:
        c = self.chunks[n]
        try:
            cols = c.section("activations", c.spans)
            ids, frame, parent, thread, _task, depth = cols[0:6]
            starts, ends = _sums(cols[6]), _absolute(cols[7], c.base)
            for row in zip(_sums(ids), frame, parent, thread, depth, starts, ends):
                end = self._late_ends.get(row[0], row[6])
                self.acts[row[0]] = [row[1], row[2], row[3], row[4], row[5], end]
        except (ValueError, TypeError, IndexError, RecursionError) as exc:
            raise self._corrupt(exc) from None
        self._act_firsts[n] = None  # decoded: never again

    def _decode_frames(self, n: int) -> None:
        c = self.chunks[n]
        try:
            cols = c.section("frames", c.spans)
            self.frames.update(zip(_sums(cols[0]), zip(cols[1], _sums(cols[2]))))
        except (ValueError, TypeError, IndexError, RecursionError) as exc:
            raise self._corrupt(exc) from None
        self._frame_firsts[n] = None

    def close(self) -> None:
        self.conn.close()

    # -- facts ---------------------------------------------------------------

    @property
    def test_id(self) -> str:
        return self.meta.get("test_id", self.path.name)

    @property
    def outcome(self) -> str:
        return self.meta.get("outcome", "") if self.meta.get("complete") == "1" else "crashed"

    @property
    def started_s(self) -> float | None:
        try:
            return int(self.meta.get("started_unix_ns", "")) / 1e9
        except ValueError:
            return None

    @property
    def first_step(self) -> int:
        return self.chunks[0].base if self.chunks else 0

    @property
    def end_step(self) -> int:
        """One past the last step."""
        return self.chunks[-1].base + self.chunks[-1].steps if self.chunks else 0

    # -- decoding on demand -----------------------------------------------------

    def chunk_at(self, step: int) -> _Chunk | None:
        """The chunk holding ``step`` (None outside the film)."""
        i = bisect.bisect_right(self._bases, step) - 1
        if i < 0:
            return None
        c = self.chunks[i]
        return c if step < c.base + max(c.steps, len(c.events[0]) if c.events else 0) else None

    def events_of(self, c: _Chunk) -> tuple[list, list, list, list]:
        """The chunk's events as columns: kind, act, line, value (decoded once)."""
        if c.events is None:
            try:
                kinds, acts, lines, deltas, pairs = self._guard(c.section, "events", c.spans)
                if not len(kinds) == len(acts) == len(lines) == len(deltas) == c.steps or len(pairs) % 2 \
                        or not set(map(type, kinds)) | set(map(type, lines)) <= {int}:
                    raise ValueError("event columns of the wrong shape")
                values: list = [None] * len(kinds)
                for i in range(0, len(pairs), 2):
                    values[pairs[i]] = pairs[i + 1]
                c.events = (kinds, _sums(acts), lines, values)
                del deltas
            except (ValueError, TypeError, IndexError) as exc:
                raise self._corrupt(exc) from None
        return c.events

    def bindings_of(self, c: _Chunk) -> list[tuple[int, int, int, int | None]]:
        """The chunk's bindings: (frame, name, step, value), in writing order."""
        if c.bindings is None:
            try:
                cols = self._guard(c.section, "bindings", c.spans)
                c.bindings = list(zip(_sums(cols[0]), cols[1], _sums(cols[2]), cols[3])) if cols else []
            except (ValueError, TypeError, IndexError) as exc:
                raise self._corrupt(exc) from None
        return c.bindings

    def vals_of(self, c: _Chunk) -> dict[int, ValRow]:
        """The chunk's value rows by id, in writing order."""
        if c.vals is None:
            try:
                cols = self._guard(c.section, "vals", c.spans)
                c.vals = {r[0]: r[1:] for r in zip(_sums(cols[0]), cols[1], _sums(cols[2]), *cols[3:])} \
                    if cols else {}
            except (ValueError, TypeError, IndexError) as exc:
                raise self._corrupt(exc) from None
        return c.vals

    def _guard(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except (ValueError, RecursionError) as exc:
            raise self._corrupt(exc) from None

    def _corrupt(self, exc: BaseException) -> RecordingError:
        return RecordingError(f"the recording is corrupt (a chunk does not decode: {str(exc)[:80]})",
                              path=self.path, fix=_FIX)

    def columns_from(self, step: int) -> tuple[int, list, list, list, list]:
        """``(first, kinds, acts, lines, values)`` of every step from the
        start of the chunk holding ``step`` to the end of the film."""
        i = max(0, bisect.bisect_right(self._bases, step) - 1)
        kinds: list = []
        acts: list = []
        lines: list = []
        values: list = []
        first = self.chunks[i].base if self.chunks else 0
        for c in self.chunks[i:]:
            k, a, ln, v = self.events_of(c)
            kinds += k
            acts += a
            lines += ln
            values += v
        return first, kinds, acts, lines, values

    def event(self, step: int) -> tuple[int, int, int, int | None] | None:
        """``(kind, act, line, value)`` of one step."""
        c = self.chunk_at(step)
        if c is None:
            return None
        k, a, ln, v = self.events_of(c)
        i = step - c.base
        return (k[i], a[i], ln[i], v[i]) if 0 <= i < len(k) else None

    def last_event_of(self, act: int, before: int) -> tuple[int, int] | None:
        """``(step, line)`` of the latest event of ``act`` before step ``before``."""
        start = (self.act(act) or [0, 0, 0, 0, 0])[4] or 0
        step = before - 1
        while step >= max(start, self.first_step):
            c = self.chunk_at(step)
            if c is None:
                return None
            _k, a, ln, _v = self.events_of(c)
            for i in range(step - c.base, -1, -1):
                if a[i] == act:
                    return c.base + i, ln[i]
            step = c.base - 1
        return None

    def bindings_between(self, lo: int, hi: int) -> Iterator[tuple[int, int, int, int | None]]:
        """Binding rows whose step lies in ``[lo, hi)`` (the writer files a
        binding, like a snapshot, with the chunk that holds its step)."""
        i = max(0, bisect.bisect_right(self._bases, lo) - 1)
        for c in self.chunks[i:]:
            if c.base >= hi:
                break
            for row in self.bindings_of(c):
                if lo <= row[2] < hi:
                    yield row

    def snapshots_between(self, lo: int, hi: int) -> Iterator[tuple[int, int, int]]:
        """``(step, obj, value)`` of every snapshot of a mutable object taken
        at a step in ``[lo, hi)``."""
        i = max(0, bisect.bisect_right(self._bases, lo) - 1)
        for c in self.chunks[i:]:
            if c.base >= hi:
                break
            for vid, row in self.vals_of(c).items():
                if row[0] is not None and type(row[1]) is int and lo <= row[1] < hi:
                    yield row[1], row[0], vid

    def value(self, vid: int | None) -> ValRow | None:
        """The ``vals`` row ``vid``: (obj, step, type, repr, detail, flags)."""
        if vid is None:
            return None
        for c in self.chunks:
            if c.vals is not None and vid in c.vals:
                return c.vals[vid]
        if len(self.chunks) == 1:
            return self.vals_of(self.chunks[0]).get(vid)
        for n, c in enumerate(self.chunks):
            ids = self._vid_sets.get(n)
            if ids is None:
                try:
                    ids = self._vid_sets[n] = set(c.value_ids(c.spans))
                except (ValueError, TypeError, RecursionError) as exc:
                    raise self._corrupt(exc) from None
            if vid in ids:
                return self.vals_of(c).get(vid)
        return None

    def decoded_value(self, vid: int) -> bool:
        """Whether ``vid``'s row is in a chunk whose values are decoded."""
        return any(c.vals is not None and vid in c.vals for c in self.chunks)

    def frame_locals(self, frame: int, step: int) -> dict[str, int | None]:
        """Name -> value id of ``frame``'s locals at ``step`` (latest binding at
        or before it)."""
        start = (self.frame(frame) or (0, self.first_step))[1] or self.first_step
        out: dict[str, int | None] = {}
        for f, name, s, vid in self.bindings_between(start, step + 1):
            if f == frame:
                out[self.names.get(name, f"?{name}")] = vid
        return {k: v for k, v in out.items() if v is not None}

    # -- code and source ----------------------------------------------------------

    def code_of_act(self, act: int) -> int:
        a = self.act(act)
        return (self.frame(a[0]) or (0, 0))[0] if a else 0

    def function(self, code: int) -> str:
        c = self.codes.get(code)
        return c[1] if c else "?"

    def qualname(self, code: int) -> str:
        c = self.codes.get(code)
        return c[2] if c else "?"

    def file_of(self, code: int) -> str:
        c = self.codes.get(code)
        return self.files.get(c[0], "?") if c else "?"

    def node(self, code: int, line: int) -> str | None:
        c = self.codes.get(code)
        if c is None:
            return None
        row = self.conn.execute("SELECT n.node_id FROM lines l JOIN nodes n ON n.node = l.node "
                                "WHERE l.file = ? AND l.line = ?", (c[0], line)).fetchone()
        return row[0] if row else None

    def source_line(self, code: int, line: int) -> str:
        c = self.codes.get(code)
        if c is None:
            return ""
        lines = self._sources.get(c[0])
        if lines is None:
            row = self.conn.execute("SELECT source FROM files WHERE file = ?", (c[0],)).fetchone()
            try:
                text = schema.decode_source(row[0]) if row else None
            except Exception:  # a damaged blob: show no source rather than fail the diff
                text = None
            lines = self._sources[c[0]] = text.splitlines() if text else []
        return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def _first_number(c: _Chunk, key: str) -> int | None:
    """The first id of a section (its first column starts with it)."""
    span = c.spans.get(key)
    if span is None or c.text is None:
        return None
    m = re.match(rb"\[\[(-?\d+)", c.text[span[0]:span[0] + 32])
    return int(m.group(1)) if m else None


def _holder(firsts: list[int | None], ident: int) -> int | None:
    """The chunk whose section holds ``ident``: the last chunk, not yet
    decoded, whose first id is at most ``ident``."""
    best = None
    for n, first in enumerate(firsts):
        if first is not None and first <= ident:
            best = n
    return best
