"""A film read where it lies: the chunks of the recording, never unpacked.

A recording of schema 3 keeps, beside each chunk of about
``schema.CHUNK_STEPS`` events, a row of ``keyframes``: the live state at
the chunk's start and the first ids the chunk uses.  So the state at step
S needs the chunk holding S (found by bisection over the chunks' first
steps), its key frame, and now and then the chunk where an old value was
written; each is decoded a section at a time (``film_reader._Chunk``) and
kept in a small least-recently-used set.  Opening reads the chunk
directory only (a few hundred small rows for ten million events).

Ids grow as the film runs (activations, frames, and the collector's odd and
the writer's even value ids), so the chunk holding an id is found by
bisection on the first id of each chunk; a file where that guess misses is
searched chunk by chunk, slower and with the same answers.

Everything read from the file is checked as it is decoded: a malformed
chunk or key frame is a ``RecordingError`` ("the recording is corrupt"),
never a traceback.
"""

from __future__ import annotations

import bisect
import itertools
import json
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator

import apsw

from ..recorder import schema
from .errors import RecordingError
from .film_reader import _Chunk, _decode

_FIX = "copy it again or re-run the test"

#: Decoded chunks kept in memory (each a few megabytes at most).
CACHED_CHUNKS = 24
#: Decoded key frames kept in memory (each a few kilobytes).
CACHED_KEYFRAMES = 256

#: Row of an activation: act, frame, parent, thread, task, depth, start, end, code.
ActRow = tuple
#: Row of ``vals``: obj, step, type, repr, detail, flags.
ValRow = tuple


def _sums(column: Any) -> list:
    if type(column) is not list or not set(map(type, column)) <= {int}:
        raise ValueError("a difference column that is not all integers")
    return list(itertools.accumulate(column))


def _ints(column: Any, n: int | None = None, nullable: bool = False) -> list:
    allowed = {int, type(None)} if nullable else {int}
    if type(column) is not list or not set(map(type, column)) <= allowed:
        raise ValueError("a column that is not all integers")
    if n is not None and len(column) != n:
        raise ValueError("columns of different lengths")
    return column


class _Piece:
    """One chunk, decoded section by section when first asked for."""

    __slots__ = ("chunk", "raw", "offsets", "_events", "_frames", "_acts", "_bindings", "_vals", "_snaps")

    def __init__(self, base: int, steps: int, text: bytes) -> None:
        self.chunk = _Chunk(base, steps, text)
        self.offsets = self.chunk._offsets()
        self._events: tuple[list, list, list, list, dict[int, int]] | None = None
        self._frames: dict[int, tuple[int, int]] | None = None
        self._acts: dict[int, list] | None = None
        self._bindings: dict[int, list[tuple[int, int, int | None]]] | None = None
        self._vals: dict[int, ValRow] | None = None
        self._snaps: dict[int, list[tuple[int, int]]] | None = None

    @property
    def base(self) -> int:
        return self.chunk.base

    def section(self, key: str, width: int) -> list[list] | None:
        cols = self.chunk.section(key, self.offsets)
        if cols is None:
            return None
        if type(cols) is not list or len(cols) != width or any(type(c) is not list for c in cols):
            raise ValueError(f"a malformed {key!r} section")
        return cols

    def events(self) -> tuple[list, list, list, list, dict[int, int]]:
        if self._events is None:
            cols = self.section("events", 5)
            if cols is None:
                raise ValueError("a chunk without events")
            n = self.chunk.steps
            kinds, lines = _ints(cols[0], n), _ints(cols[2], n)
            acts, times = _sums(cols[1]), [t * 1000 for t in _sums(cols[3])]
            if len(acts) != n or len(times) != n:
                raise ValueError("event columns of different lengths")
            pairs = _ints(cols[4], nullable=False)
            if len(pairs) % 2:
                raise ValueError("an odd list of event values")
            values = {pairs[i]: pairs[i + 1] for i in range(0, len(pairs), 2)}
            self._events = (kinds, acts, lines, times, values)
        return self._events

    def frames(self) -> dict[int, tuple[int, int]]:
        if self._frames is None:
            cols = self.section("frames", 3)
            self._frames = {}
            if cols is not None:
                ids, codes, firsts = _sums(cols[0]), _ints(cols[1], len(cols[0])), _sums(cols[2])
                self._frames = {f: (c, s) for f, c, s in zip(ids, codes, firsts)}
        return self._frames

    def acts(self) -> dict[int, list]:
        """act -> [act, frame, parent, thread, task, depth, start, end]."""
        if self._acts is None:
            cols = self.section("activations", 8)
            self._acts = {}
            if cols is not None:
                n = len(cols[0])
                ids, starts = _sums(cols[0]), _sums(cols[6])
                frames, parents = _ints(cols[1], n), _ints(cols[2], n, True)
                threads, tasks, depths = _ints(cols[3], n), _ints(cols[4], n, True), _ints(cols[5], n)
                ends = [None if e is None else e + self.base for e in _ints(cols[7], n, True)]
                for row in zip(ids, frames, parents, threads, tasks, depths, starts, ends):
                    self._acts[row[0]] = list(row)
        return self._acts

    def bindings(self) -> dict[int, list[tuple[int, int, int | None]]]:
        """frame -> [(name, step, value id)] in step order."""
        if self._bindings is None:
            cols = self.section("bindings", 4)
            self._bindings = {}
            if cols is not None:
                n = len(cols[0])
                frames, steps = _sums(cols[0]), _sums(cols[2])
                names, vids = _ints(cols[1], n), _ints(cols[3], n, True)
                if len(frames) != n or len(steps) != n:
                    raise ValueError("binding columns of different lengths")
                for frame, name, step, vid in zip(frames, names, steps, vids):
                    self._bindings.setdefault(frame, []).append((name, step, vid))
        return self._bindings

    def vals(self) -> dict[int, ValRow]:
        if self._vals is None:
            cols = self.section("vals", 7)
            self._vals, self._snaps = {}, {}
            if cols is not None:
                n = len(cols[0])
                ids, steps = _sums(cols[0]), _sums(cols[2])
                objs, flags = _ints(cols[1], n, True), _ints(cols[6], n)
                types, reprs, details = cols[3], cols[4], cols[5]
                if len(types) != n or len(reprs) != n or len(details) != n:
                    raise ValueError("value columns of different lengths")
                for vid, obj, step, tname, text, detail, flag in zip(ids, objs, steps, types, reprs, details, flags):
                    if type(tname) is not str or type(text) is not str or not (detail is None or type(detail) is str):
                        raise ValueError("a value that is not text")
                    self._vals[vid] = (obj, step, tname, text, detail, flag)
                    if obj is not None:
                        self._snaps.setdefault(obj, []).append((step, vid))
        return self._vals

    def snapshot(self, obj: int, step: int) -> int | None:
        """The newest snapshot of ``obj`` in this chunk at or before ``step``."""
        self.vals()
        assert self._snaps is not None
        best: tuple[int, int] | None = None
        for s, vid in self._snaps.get(obj, ()):
            if s <= step and (best is None or (s, vid) > best):
                best = (s, vid)
        return best[1] if best else None


class _KeyFrame:
    """The live state at a chunk's start (recorder/keyframes.py)."""

    __slots__ = ("acts", "frames", "bindings", "objs", "vals")

    def __init__(self, doc: Any) -> None:
        if type(doc) is not dict:
            raise ValueError("a key frame that is not a JSON object")
        #: act -> (act, frame, parent, thread, task, depth, start, code)
        self.acts: dict[int, tuple] = {}
        for row in doc.get("acts", []):
            if type(row) is not list or len(row) != 8:
                raise ValueError("a key frame activation of the wrong shape")
            _ints(row, 8, nullable=True)
            if any(type(row[i]) is not int for i in (0, 1, 3, 5, 6, 7)):
                raise ValueError("a key frame activation of the wrong types")
            self.acts[row[0]] = tuple(row)
        self.frames = set(_ints(doc.get("frames", [])))
        self.bindings: dict[int, dict[int, tuple[int, int, int | None]]] = {}
        for row in doc.get("bindings", []):
            frame, name, first, step, vid = _ints(row, 5, nullable=True)
            if type(frame) is not int or type(name) is not int or type(first) is not int or type(step) is not int:
                raise ValueError("a key frame binding that is not integers")
            self.bindings.setdefault(frame, {})[name] = (first, step, vid)
        self.objs = {}
        for row in doc.get("objs", []):
            obj, vid = _ints(row, 2)
            self.objs[obj] = vid
        self.vals: dict[int, ValRow] = {}
        for row in doc.get("vals", []):
            if type(row) is not list or len(row) != 7:
                raise ValueError("a key frame value of the wrong shape")
            vid, obj, step, tname, text, detail, flags = row
            if (type(vid) is not int or (obj is not None and type(obj) is not int) or type(step) is not int
                    or type(tname) is not str or type(text) is not str
                    or (detail is not None and type(detail) is not str) or type(flags) is not int):
                raise ValueError("a key frame value of the wrong types")
            self.vals[vid] = (obj, step, tname, text, detail, flags)


class FilmStore:
    """The film of one schema-3 recording, read from its chunks."""

    def __init__(self, conn: apsw.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self._pieces: OrderedDict[int, _Piece] = OrderedDict()
        self._keyframes: OrderedDict[int, _KeyFrame] = OrderedDict()
        self._acts: dict[int, ActRow] = {}
        try:
            rows = conn.execute(
                "SELECT chunk, first_step, steps, first_act, first_frame, first_odd_value, first_even_value, "
                "act_ends FROM keyframes ORDER BY chunk").fetchall()
            self.ids = [r[0] for r in rows]
            self.bases = [r[1] for r in rows]
            steps = [r[2] for r in rows]
            for i, (base, n) in enumerate(zip(self.bases, steps)):
                if type(base) is not int or type(n) is not int or n < 0:
                    raise ValueError("a chunk without its steps")
                if i and base != self.bases[i - 1] + steps[i - 1]:
                    raise ValueError("chunks that do not follow each other")
            self.first_step = self.bases[0] if rows else 0
            self.last_step = self.bases[-1] + steps[-1] - 1 if rows else -1
            self.steps = steps
            self._firsts = {key: self._first_ids([r[col] for r in rows]) for key, col in
                            (("act", 3), ("frame", 4), ("odd", 5), ("even", 6))}
            self._ends_texts = [r[7] for r in rows if r[7] != "[]"]
            if any(type(t) is not str or not t.startswith("[") for t in self._ends_texts):
                raise ValueError("a key frame without its act_ends")
            self._late_ends: dict[int, int] | None = None
        except apsw.Error as exc:
            raise self.corrupt(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        except (ValueError, TypeError, IndexError, RecursionError) as exc:
            raise self.corrupt(str(exc)) from None

    @staticmethod
    def _first_ids(column: list) -> tuple[list[int], list[int]]:
        """(first ids, chunk positions) of the chunks that use such ids."""
        if not set(map(type, column)) <= {int, type(None)}:
            raise ValueError("a key frame id that is not an integer")
        positions = [i for i, value in enumerate(column) if value is not None]
        return [column[i] for i in positions], positions

    def late_end(self, act: int) -> int | None:
        """The end step of an activation that ends in a later chunk than
        the one it opens in (None: still open when the film ends)."""
        if self._late_ends is None:
            ends: dict[int, int] = {}
            try:
                for chunk_ends in json.loads("[" + ",".join(self._ends_texts) + "]"):
                    if type(chunk_ends) is not list:
                        raise ValueError("a key frame with malformed act_ends")
                    for pair in chunk_ends:
                        if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not int \
                                or type(pair[1]) is not int:
                            raise ValueError("a key frame with malformed act_ends")
                        ends[pair[0]] = pair[1]
            except (ValueError, TypeError, RecursionError) as exc:
                raise self.corrupt(str(exc)) from None
            self._late_ends = ends
        return self._late_ends.get(act)

    def corrupt(self, why: str) -> RecordingError:
        return RecordingError(f"the recording is corrupt ({why[:100]})", path=self.path, fix=_FIX)

    # -- chunks and key frames ------------------------------------------------

    def chunk_of(self, step: int) -> int:
        """Position of the chunk holding ``step`` (which must be in the film)."""
        return bisect.bisect_right(self.bases, step) - 1

    def piece(self, i: int) -> _Piece:
        piece = self._pieces.get(i)
        if piece is not None:
            self._pieces.move_to_end(i)
            return piece
        try:
            row = self.conn.execute("SELECT data FROM chunks WHERE chunk = ?", (self.ids[i],)).fetchone()
            piece = _Piece(self.bases[i], self.steps[i], _decode(row[0] if row else None, self.path))
        except apsw.Error as exc:
            raise self.corrupt(str(exc).splitlines()[0]) from None
        except (ValueError, TypeError, IndexError) as exc:
            raise self.corrupt(f"chunk {self.ids[i]}: {exc}") from None
        self._pieces[i] = piece
        if len(self._pieces) > CACHED_CHUNKS:
            self._pieces.popitem(last=False)
        return piece

    def keyframe(self, i: int) -> _KeyFrame:
        kf = self._keyframes.get(i)
        if kf is not None:
            return kf
        try:
            row = self.conn.execute("SELECT data FROM keyframes WHERE chunk = ?", (self.ids[i],)).fetchone()
            if row is None or not isinstance(row[0], bytes):
                raise ValueError("a key frame that is not a blob")
            d = zlib.decompressobj()
            raw = d.decompress(row[0], schema.CHUNK_LIMIT)
            if d.unconsumed_tail:
                raise ValueError("a key frame larger than allowed")
            kf = _KeyFrame(json.loads(raw))
        except apsw.Error as exc:
            raise self.corrupt(str(exc).splitlines()[0]) from None
        except (ValueError, TypeError, zlib.error, RecursionError) as exc:
            raise self.corrupt(f"key frame {self.ids[i]}: {exc}") from None
        self._keyframes[i] = kf
        if len(self._keyframes) > CACHED_KEYFRAMES:
            self._keyframes.popitem(last=False)
        return kf

    def _guarded(self, what: Any, *args: Any) -> Any:
        try:
            return what(*args)
        except (ValueError, TypeError, IndexError, KeyError, RecursionError) as exc:
            raise self.corrupt(str(exc)) from None

    def _candidates(self, key: str, ident: int) -> Iterator[int]:
        """Chunk positions to look in for id ``ident``: the bisection's
        guess first, then every other chunk (a file whose ids do not grow)."""
        firsts, positions = self._firsts[key]
        at = bisect.bisect_right(firsts, ident) - 1
        guess = positions[at] if at >= 0 else None
        if guess is not None:
            yield guess
        for i in range(len(self.bases) - 1, -1, -1):
            if i != guess:
                yield i

    # -- rows ------------------------------------------------------------------------

    def event(self, step: int) -> tuple[int, int, int, int, int | None]:
        """``(kind, act, line, time_ns, value)`` of a step in the film."""
        i = self.chunk_of(step)
        kinds, acts, lines, times, values = self._guarded(self.piece(i).events)
        pos = step - self.bases[i]
        return kinds[pos], acts[pos], lines[pos], times[pos], values.get(pos)

    def act(self, act: int, step: int | None = None) -> ActRow | None:
        """An activation's row; ``step`` (where it is on the stack) lets the
        key frame of that step's chunk answer without decoding."""
        row = self._acts.get(act)
        if row is None and step is not None and self.first_step <= step <= self.last_step:
            live = self.keyframe(self.chunk_of(step)).acts.get(act)
            if live is not None:
                row = self._acts[act] = (*live[:7], self.late_end(act), live[7])
        if row is None:
            for i in self._candidates("act", act):
                found = self._guarded(self.piece(i).acts).get(act)
                if found is not None:
                    end = found[7] if found[7] is not None else self.late_end(act)
                    code = self.frame_code(found[1])
                    row = self._acts[act] = (*found[:7], end, code)
                    break
        return row

    def frame_row(self, frame: int) -> tuple[int, int] | None:
        """``(code, first_step)`` of a frame."""
        for i in self._candidates("frame", frame):
            found = self._guarded(self.piece(i).frames).get(frame)
            if found is not None:
                return found
        return None

    def frame_code(self, frame: int) -> int:
        row = self.frame_row(frame)
        return row[0] if row else 0

    def val(self, vid: int, step: int | None = None) -> ValRow | None:
        """The ``vals`` row ``vid``; ``step`` (where it is looked at) lets
        the key frame of that step's chunk answer without decoding."""
        if step is not None and self.first_step <= step <= self.last_step:
            i = self.chunk_of(step)
            found = self.keyframe(i).vals.get(vid)
            if found is None and self._pieces.get(i) is not None:
                found = self._guarded(self._pieces[i].vals).get(vid)
            if found is not None:
                return found
        for i in self._candidates("odd" if vid % 2 else "even", vid):
            found = self._guarded(self.piece(i).vals).get(vid)
            if found is not None:
                return found
        return None

    def snapshot(self, obj: int, since: int, step: int) -> int | None:
        """The newest snapshot of ``obj`` at or before ``step``, knowing one
        was taken at step ``since``: the chunks from ``step`` back to
        ``since`` are searched, a key frame that knows the object ending
        the search."""
        if step > self.last_step:
            step = self.last_step
        i = self.chunk_of(step)
        low = self.chunk_of(max(since, self.first_step))
        while i >= low:
            found = self._guarded(self.piece(i).snapshot, obj, step)
            if found is not None:
                return found
            kf = self.keyframe(i)
            if obj in kf.objs:
                return kf.objs[obj]
            i -= 1
        return None

    # -- bindings ---------------------------------------------------------------------

    def bindings(self, frame: int, step: int, names: frozenset[int] | None = None
                 ) -> dict[int, tuple[int, int, int | None]]:
        """name -> (first bound step, latest step, value id) of ``frame``'s
        bindings at or before ``step`` (only ``names`` when given)."""
        out: dict[int, tuple[int, int, int | None]] = {}
        i = self.chunk_of(step)
        low: int | None = None
        while low is None or i >= low:
            rows = self._guarded(self.piece(i).bindings).get(frame, ())
            for name, s, vid in rows:
                if s > step or (names is not None and name not in names):
                    continue
                known = out.get(name)
                if known is None:
                    out[name] = (s, s, vid)
                elif s >= known[1]:
                    out[name] = (known[0], s, vid)
                else:
                    out[name] = (min(known[0], s), known[1], known[2])
            kf = self.keyframe(i)
            if frame in kf.frames:
                for name, (first, s, vid) in kf.bindings.get(frame, {}).items():
                    if names is not None and name not in names:
                        continue
                    known = out.get(name)
                    out[name] = (first, s, vid) if known is None else (first, known[1], known[2])
                break
            if low is None:
                # not carried: read back to the chunk that made the frame
                made = self.frame_row(frame)
                low = self.chunk_of(made[1]) if made and made[1] >= self.first_step else 0
            i -= 1
        return out

    def binding_steps(self, frame: int, name: int, step: int, forward: bool) -> int | None:
        """The next (previous) step at which ``frame`` binds ``name``, after
        (before) ``step``."""
        if self.last_step < self.first_step:
            return None
        at = self.chunk_of(max(min(step, self.last_step), self.first_step))
        if forward:
            i, stop, inc = at, len(self.bases), 1
        else:
            made = self.frame_row(frame)
            i = at
            stop = (self.chunk_of(made[1]) if made and made[1] >= self.first_step else 0) - 1
            inc = -1
        while i != stop:
            rows = self._guarded(self.piece(i).bindings).get(frame, ())
            steps = [s for n, s, _ in rows if n == name and (s > step if forward else s < step)]
            if steps:
                return min(steps) if forward else max(steps)
            i += inc
        return None

    def snapshot_step(self, obj: int, step: int, forward: bool) -> int | None:
        """The step of the next (previous) snapshot of ``obj`` after (before) ``step``."""
        i = self.chunk_of(min(max(step, self.first_step), self.last_step))
        inc = 1 if forward else -1
        while 0 <= i < len(self.bases):
            piece = self.piece(i)
            self._guarded(piece.vals)
            steps = [s for s, _ in (piece._snaps or {}).get(obj, ()) if (s > step if forward else s < step)]
            if steps:
                return min(steps) if forward else max(steps)
            i += inc
        return None

    # -- walking the film -----------------------------------------------------------

    def walk(self, step: int, forward: bool) -> Iterator[tuple[int, int, int, int, int | None]]:
        """``(step, kind, act, line, value)`` from ``step`` (included) on, or back."""
        if self.last_step < self.first_step:
            return
        step = max(min(step, self.last_step), self.first_step)
        i = self.chunk_of(step)
        while 0 <= i < len(self.bases):
            kinds, acts, lines, _times, values = self._guarded(self.piece(i).events)
            base = self.bases[i]
            positions = range(step - base, len(kinds)) if forward else range(step - base, -1, -1)
            for pos in positions:
                yield base + pos, kinds[pos], acts[pos], lines[pos], values.get(pos)
            if forward:
                i += 1
                step = self.bases[i] if i < len(self.bases) else 0
            else:
                i -= 1
                step = self.bases[i] + self.steps[i] - 1 if i >= 0 else 0
