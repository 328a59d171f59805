"""The rows of a film read from its chunks, for the questions over a whole
film: a variable's history, the events, the call flow and statistics.

A recording of schema 3 keeps its film in chunks (``film_store``); these
questions once ran as SQL over an unpacked, indexed copy (seconds and
fifteen times the file's bytes for a million events).  Here each question
decodes only the sections of the chunks it reads (``bindings`` of one name,
``vals`` of the objects it follows, ``events`` of the steps it shows) and
gives the rows the SQL gave, in the same order, so ``history.py`` and
``queries.py`` run one algorithm over either source.

A binding's row id is its chunk's position and its place in the chunk:
the order in which unpacking inserts it, so ties at one step fall as they
did in the unpacked copy.  Rows of a step live in the chunk holding that
step (the writer cuts chunks between events), so a span of steps reads the
chunks of that span.
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter, OrderedDict
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar

from ..recorder import schema
from .film_store import _ints, _sums

if TYPE_CHECKING:
    from .film_store import FilmStore
    from .recording import Act, Recording

#: Names whose per-chunk bindings are kept (each a few tuples per binding).
_CACHED_NAMES = 8
_ROWID_SHIFT = 32
_CALL = schema.CALL
_YIELD = schema.YIELD

_F = TypeVar("_F", bound=Callable[..., Any])


def _checked(method: _F) -> _F:
    """A crafted film (a step outside its chunk, an id that is nowhere)
    makes one "corrupt" error, never a traceback."""
    @functools.wraps(method)
    def run(self: "FilmRows", *args: Any) -> Any:
        try:
            return method(self, *args)
        except (ValueError, TypeError, IndexError, KeyError, RecursionError) as exc:
            raise self.store.corrupt(f"{type(exc).__name__}: {exc}") from None
    return run  # type: ignore[return-value]


class FilmRows:
    """Rows of one recording's film, answered from its chunks."""

    def __init__(self, rec: "Recording") -> None:
        assert rec.store is not None
        self.rec = rec
        self.store: "FilmStore" = rec.store
        #: name -> chunk position -> [(step, rowid, frame, value id)] in row order
        self._named: OrderedDict[int, dict[int, list[tuple]]] = OrderedDict()
        self._frame_ends: dict[int, int] = {}

    # -- decoding ---------------------------------------------------------------

    def _binding_columns(self, i: int) -> tuple[list, list, list, list]:
        cols = self.store.piece(i).section("bindings", 4)
        if cols is None:
            return [], [], [], []
        n = len(cols[0])
        frames, steps = _sums(cols[0]), _sums(cols[2])
        names, vids = _ints(cols[1], n), _ints(cols[3], n, True)
        if len(frames) != n or len(steps) != n:
            raise ValueError("binding columns of different lengths")
        return frames, names, steps, vids

    def named(self, i: int, nid: int) -> list[tuple]:
        """``(step, rowid, frame, value id)`` of chunk ``i``'s bindings of ``nid``."""
        per = self._named.get(nid)
        if per is None:
            per = self._named[nid] = {}
            if len(self._named) > _CACHED_NAMES:
                self._named.popitem(last=False)
        else:
            self._named.move_to_end(nid)
        got = per.get(i)
        if got is None:
            frames, names, steps, vids = self.store._guarded(self._binding_columns, i)
            base = (i << _ROWID_SHIFT) + 1
            got = per[i] = [(steps[k], base + k, frames[k], vids[k]) for k, n in enumerate(names) if n == nid]
        return got

    def chunks(self, lo: int, hi: int) -> range:
        """Positions of the chunks holding steps [lo, hi)."""
        st = self.store
        if hi <= lo or st.last_step < st.first_step:
            return range(0)
        lo = max(lo, st.first_step)
        hi = min(hi, st.last_step + 1)
        if hi <= lo:
            return range(0)
        return range(st.chunk_of(lo), st.chunk_of(hi - 1) + 1)

    def val(self, vid: int | None, step: int) -> tuple | None:
        """The ``vals`` row of ``vid`` (None: none)."""
        return self.store.val(vid, step) if vid is not None else None

    # -- where a change was made -------------------------------------------------------

    def where(self, step: int) -> tuple[int, int, int | None, int, "Act"]:
        """The event at ``step``: kind, line, the line before it in its
        activation (None for a call), its code, and its activation."""
        rec = self.rec
        kind, act, line, _t, _v = self.store.event(step)
        a = rec.act(act, step)
        prev = None
        if kind != _CALL:
            p = rec.act_step(act, step, False)
            prev = self.store.event(p)[2] if p is not None else None
        return kind, line, prev, a.code, a

    def act_holds(self, a: "Act") -> int | None:
        """One past the last step a binding made in activation ``a`` holds
        when no later binding ends it: the activation's end unless it is a
        yield (a suspended generator keeps its locals: None, ask frame_end)."""
        if a.end is None:
            return self.store.last_step + 1
        if a.end > self.store.last_step:
            return a.end + 1
        return None if self.store.event(a.end)[0] == _YIELD else a.end + 1

    @_checked
    def frame_end(self, frame: int) -> int:
        """One past the last step ``frame`` is alive (its last activation's end)."""
        end = self._frame_ends.get(frame)
        if end is not None:
            return end
        st = self.store
        made = st.frame_row(frame)
        last: tuple | None = None
        start = st.chunk_of(made[1]) if made and made[1] >= st.first_step else 0
        for i in range(start, len(st.bases)):
            for row in st._guarded(st.piece(i).acts).values():
                if row[1] == frame and (last is None or row[6] > last[6]):
                    last = row
        if last is None:
            end = st.last_step + 1
        else:
            a_end = last[7] if last[7] is not None else st.late_end(last[0])
            if a_end is None or a_end > st.last_step:
                end = st.last_step + 1 if a_end is None else a_end + 1
            else:
                end = st.last_step + 1 if st.event(a_end)[0] == _YIELD else a_end + 1
        self._frame_ends[frame] = end
        return end

    # -- history ---------------------------------------------------------------------

    @_checked
    def bindings(self, nid: int, lo: int, limit: int, frame: int | None, end: int) -> list[tuple]:
        """The rows of history's ``_BINDINGS``: ``nid``'s bindings from step
        ``lo`` (before ``end``), the first ``limit`` by step and row id.

        ``holds`` is the activation's end (``act_holds``), not the frame's
        next binding of the name: the walk ends a binding at the next one
        as it meets it (``_Walk._end_rebound``), never reading ahead."""
        found: list[tuple] = []
        for i in self.chunks(lo, end):
            for row in self.named(i, nid):
                if lo <= row[0] < end and (frame is None or row[2] == frame):
                    found.append(row)
            if len(found) >= limit:
                break
        found.sort(key=lambda r: (r[0], r[1]))
        del found[limit:]
        out = []
        for step, rowid, fr, vid in found:
            v = self.val(vid, step)
            obj = v[0] if v is not None else None
            kind, line, prev, code, a = self.where(step)
            owner = code if a.frame == fr else self.rec.frame_code(fr)
            if v is None:
                cols: tuple = (None, None, None, None, None)
            else:
                cols = (obj, v[2], v[3], v[4], v[5])
            out.append((step, rowid if obj is not None else None, fr,
                        vid if obj is not None else (0 if vid is not None else None), *cols,
                        self.act_holds(a) if obj is not None else None, kind, line, prev, code, owner))
        return out

    @_checked
    def snapshots(self, obj: int, lo: int, hi: int, cap: int) -> list[tuple]:
        """``_SNAPSHOTS``: snapshots of ``obj`` in [lo, hi), by step and id."""
        st = self.store
        found: list[tuple[int, int]] = []
        for i in self.chunks(lo, hi):
            piece = st.piece(i)
            st._guarded(piece.vals)
            found.extend((s, vid) for s, vid in (piece._snaps or {}).get(obj, ()) if lo <= s < hi)
            if len(found) >= cap:
                break
        found.sort()
        del found[cap:]
        out = []
        for s, vid in found:
            v = st._guarded(st.piece(st.chunk_of(s)).vals)[vid]
            kind, line, prev, code, _a = self.where(s)
            out.append((s, vid, v[2], v[3], v[4], v[5], kind, line, prev, code))
        return out

    @_checked
    def before(self, obj: int, step: int) -> tuple | None:
        """``_BEFORE``: the newest snapshot of ``obj`` before ``step``; a key
        frame that knows the object ends the search."""
        st = self.store
        if step <= st.first_step:
            return None
        i = st.chunk_of(min(step - 1, st.last_step))
        while i >= 0:
            piece = st.piece(i)
            vals = st._guarded(piece.vals)
            best = max(((s, vid) for s, vid in (piece._snaps or {}).get(obj, ()) if s < step), default=None)
            if best is not None:
                v = vals[best[1]]
                return (best[0], best[1], v[2], v[3], v[4], v[5])
            known = st.keyframe(i).objs.get(obj)
            if known is not None:
                v = st.val(known)
                if v is not None:
                    return (v[1], known, v[2], v[3], v[4], v[5])
            i -= 1
        return None

    def _latest(self, nid: int, since: int, frame: int | None) -> dict[int, tuple]:
        """frame -> its latest binding of ``nid`` before ``since``:
        ``(step, rowid, value id)``; every frame of the film (or ``frame``)."""
        latest: dict[int, tuple] = {}
        for i in self.chunks(self.store.first_step, since):
            for step, rowid, fr, vid in self.named(i, nid):
                if step < since and (frame is None or fr == frame):
                    known = latest.get(fr)
                    if known is None or (step, rowid) > (known[0], known[1]):
                        latest[fr] = (step, rowid, vid)
        return latest

    @_checked
    def held(self, nid: int, since: int, frame: int | None) -> list[tuple]:
        """``_HELD``: ``(step, rowid, frame, obj, holds)`` of the bindings to
        mutable objects that hold past ``since``.  Only a frame's latest
        binding before ``since`` can: an earlier one ends at the next.  A
        frame whose activation returned before ``since`` is left out chunk
        by chunk, from the chunk's own events and activations, before any
        value is looked at."""
        st = self.store
        by_chunk: dict[int, list[tuple]] = {}
        for fr, (step, rowid, vid) in self._latest(nid, since, frame).items():
            by_chunk.setdefault(st.chunk_of(step), []).append((step, rowid, fr, vid))
        out = []
        for i in sorted(by_chunk):
            piece = st.piece(i)
            _kinds, acts, _lines, _times, _values = st._guarded(piece.events)
            opened = st._guarded(piece.acts)
            base = st.bases[i]
            for step, rowid, fr, vid in by_chunk[i]:
                act = acts[step - base]
                row = opened.get(act)
                if row is not None:
                    end = row[7] if row[7] is not None else st.late_end(act)
                    if end is not None and end + 1 <= since and st.event(end)[0] != _YIELD:
                        continue  # returned before since: its bindings hold no more
                a = self.rec.act(act, step)
                holds = self.act_holds(a)
                if holds is not None and holds <= since:
                    continue
                v = self.val(vid, step)
                if v is None or v[0] is None:
                    continue
                out.append((step, rowid, fr, v[0], holds))
        out.sort(key=lambda r: (r[0], r[1]))
        return out

    @_checked
    def latest(self, frame: int, nid: int, since: int) -> tuple | None:
        """``_LATEST``: ``frame``'s latest binding of ``nid`` before ``since``:
        step, value id, obj, type, repr, detail, flags, holds."""
        st = self.store
        if since <= st.first_step:
            return None
        found = st.bindings(frame, min(since - 1, st.last_step), frozenset((nid,))).get(nid)
        if found is None:
            return None
        _first, step, vid = found
        v = self.val(vid, step)
        if v is None:
            return (step, vid, None, None, None, None, None, None)
        holds = self.act_holds(self.rec.act(st.event(step)[1], step)) if v[0] is not None else None
        return (step, vid, v[0], v[2], v[3], v[4], v[5], holds)

    @_checked
    def first_steps(self, frames: list[int]) -> list[tuple[int, int]]:
        out = []
        for f in frames:
            row = self.store.frame_row(f)
            if row is not None:
                out.append((f, row[1]))
        return out

    @_checked
    def frame_codes(self, frames: list[int]) -> list[tuple[int, int]]:
        out = []
        for f in frames:
            row = self.store.frame_row(f)
            if row is not None:
                out.append((f, row[0]))
        return out

    @_checked
    def count_bindings(self, nid: int, since: int, frame: int | None) -> int:
        """How often ``nid`` was bound from ``since`` on (in ``frame``).  A
        chunk wholly after ``since`` is counted from its names column alone,
        as bytes (a JSON list of plain integers), without decoding it."""
        st = self.store
        token = str(nid).encode()
        n = 0
        for i in self.chunks(since, st.last_step + 1):
            if frame is None and st.bases[i] >= since:
                piece = st.piece(i)
                span = piece.offsets.get("bindings")
                text = piece.chunk.text
                if span is None or text is None:
                    continue
                start = text.index(b"],[", span[0]) + 3
                names = text[start:text.index(b"]", start)]
                n += names.split(b",").count(token)
            else:
                n += sum(1 for r in self.named(i, nid) if r[0] >= since and (frame is None or r[2] == frame))
        return n

    # -- whole-film passes ---------------------------------------------------------------

    def pieces(self) -> Iterator[Any]:
        st = self.store
        for i in range(len(st.bases)):
            yield st.piece(i)

    @_checked
    def call_args(self, frame: int, step: int) -> list[tuple[int, int | None]]:
        """``(name, value id)`` of the bindings ``frame`` made at ``step``, in row order."""
        st = self.store
        if not st.first_step <= step <= st.last_step:
            return []
        rows = st._guarded(st.piece(st.chunk_of(step)).bindings).get(frame, ())
        return [(name, vid) for name, s, vid in rows if s == step]

    def _act_codes(self) -> Iterator[tuple[Any, dict[int, int]]]:
        """Each chunk's piece with the code of every activation opened so
        far (act -> code), filled chunk by chunk."""
        st = self.store
        frame_codes: dict[int, int] = {}
        act_codes: dict[int, int] = {}
        for i in range(len(st.bases)):
            piece = st.piece(i)
            for frame, (code, _first) in st._guarded(piece.frames).items():
                frame_codes[frame] = code
            for act, row in st._guarded(piece.acts).items():
                code = frame_codes.get(row[1])
                if code is None:
                    found = st.frame_row(row[1])
                    code = found[0] if found else None
                if code is not None:
                    act_codes[act] = code
            yield piece, act_codes

    @_checked
    def flow(self) -> tuple[list[tuple], list[tuple], list[tuple]]:
        """flow's rows: ``(caller code, callee code, calls, resumes)`` by
        first start; ``(thread, activations, first start)``; the same per task."""
        st = self.store
        firsts: dict[int, int] = {}
        edges: dict[tuple, list[int]] = {}
        threads: dict[int, list[int]] = {}
        tasks: dict[int, list[int]] = {}
        for piece, act_codes in self._act_codes():
            for frame, (_code, first) in piece.frames().items():
                firsts[frame] = first
            for act, row in piece.acts().items():
                _a, frame, parent, thread, task, _depth, start, _end = row
                for table, key in ((threads, thread), (tasks, task)):
                    if key is None:
                        continue
                    got = table.get(key)
                    if got is None:
                        table[key] = [1, start]
                    else:
                        got[0] += 1
                        got[1] = min(got[1], start)
                code = act_codes.get(act)
                if code is None:
                    continue  # no frame row: the join leaves it out
                first = firsts.get(frame)
                if first is None:
                    found = st.frame_row(frame)
                    first = found[1] if found else None
                key2 = (act_codes.get(parent) if parent is not None else None, code)
                got = edges.get(key2)
                if got is None:
                    got = edges[key2] = [0, 0, start]
                got[0 if start == first else 1] += 1
                got[2] = min(got[2], start)
        out = sorted(((c, d, n, r, s) for (c, d), (n, r, s) in edges.items()), key=lambda e: e[4])
        return ([e[:4] for e in out], sorted(((t, n, s) for t, (n, s) in threads.items()), key=lambda r: r[2]),
                sorted(((t, n, s) for t, (n, s) in tasks.items()), key=lambda r: r[2]))

    @_checked
    def stats(self) -> tuple[dict[int, int], dict[tuple[int, int], int], dict[str, int]]:
        """stats' rows: events per kind; line events per (code, line); how
        many frames, activations, values and bindings the film holds.
        Counted with ``Counter`` over the decoded columns (C loops: a
        million events in tenths of a second); the ``vals`` and
        ``bindings`` sections are counted from their first column."""
        st = self.store
        kinds: Counter[int] = Counter()
        lines: dict[tuple[int, int], int] = {}
        counts = {"frames": 0, "activations": 0, "values": 0, "bindings": 0}
        line_kind = schema.LINE
        for piece, act_codes in self._act_codes():
            ks, acts, ls, _times, _values = st._guarded(piece.events)
            kinds.update(ks)
            mask = [k == line_kind for k in ks]
            per = Counter(zip(itertools.compress(acts, mask), itertools.compress(ls, mask)))
            for (act, line), n in per.items():
                code = act_codes.get(act)
                if code is not None:
                    lines[(code, line)] = lines.get((code, line), 0) + n
            counts["frames"] += len(piece.frames())
            counts["activations"] += len(piece.acts())
            counts["values"] += len(set(piece.chunk.value_ids(piece.offsets)))
            cols = piece.section("bindings", 4)
            counts["bindings"] += len(cols[0]) if cols is not None else 0
        return dict(sorted(kinds.items())), lines, counts

    # -- the HTML film's window (film.py) -------------------------------------------

    @_checked
    def window_acts(self, lo: int, hi: int) -> list[tuple]:
        """``(act, frame, parent, thread, depth, code, start)`` of the
        activations alive in steps [lo, hi], by act: those on the stack when
        the chunk of ``lo`` starts (its key frame) and those opened since."""
        st = self.store
        found: dict[int, tuple] = {}
        if lo > hi or st.last_step < st.first_step:
            return []
        first = st.chunk_of(max(lo, st.first_step))
        for act, row in st.keyframe(first).acts.items():
            end = st.late_end(act)
            if row[6] <= hi and (hi if end is None else end) >= lo:
                found[act] = (act, row[1], row[2], row[3], row[5], row[7], row[6])
        for i in self.chunks(lo, hi + 1):
            for act, row in st._guarded(st.piece(i).acts).items():
                end = row[7] if row[7] is not None else st.late_end(act)
                if row[6] <= hi and (hi if end is None else end) >= lo:
                    made = st.frame_row(row[1])
                    if made is not None:
                        found[act] = (act, row[1], row[2], row[3], row[5], made[0], row[6])
        return [found[a] for a in sorted(found)]

    @_checked
    def line_before(self, act: int, step: int) -> int | None:
        """The line of activation ``act``'s last event before ``step``."""
        p = self.rec.act_step(act, step, False)
        return self.store.event(p)[2] if p is not None else None

    @_checked
    def window_bindings(self, lo: int, hi: int) -> list[tuple[int, int, int, int | None]]:
        """``(frame, name, step, value)`` of every binding in steps [lo, hi], in row order."""
        out = []
        for i in self.chunks(lo, hi + 1):
            frames, names, steps, vids = self.store._guarded(self._binding_columns, i)
            out.extend(r for r in zip(frames, names, steps, vids) if lo <= r[2] <= hi)
        return out

    @_checked
    def latest_bindings(self, frame: int, step: int) -> list[tuple[int, int, int, int | None]]:
        """``(frame, name, step, value)``: ``frame``'s newest binding of each name before ``step``."""
        st = self.store
        if step <= st.first_step:
            return []
        return [(frame, name, s, vid) for name, (_first, s, vid) in
                st.bindings(frame, min(step - 1, st.last_step)).items()]

    @_checked
    def frame_first(self, frame: int) -> int | None:
        row = self.store.frame_row(frame)
        return row[1] if row else None

    @_checked
    def val_row(self, vid: int) -> tuple | None:
        """``(value, obj, step, type, repr, flags)`` of ``vid``."""
        v = self.store.val(vid)
        return (vid, v[0], v[1], v[2], v[3], v[5]) if v is not None else None

    @_checked
    def window_snapshots(self, obj: int, lo: int, hi: int) -> list[tuple]:
        """``(value, obj, step, type, repr, flags)`` of ``obj``'s snapshots in [lo, hi]."""
        st = self.store
        out = []
        for i in self.chunks(lo, hi + 1):
            piece = st.piece(i)
            vals = st._guarded(piece.vals)
            for s, vid in (piece._snaps or {}).get(obj, ()):
                if lo <= s <= hi:
                    v = vals[vid]
                    out.append((vid, obj, s, v[2], v[3], v[5]))
        return out

    @_checked
    def snapshot_before(self, obj: int, step: int) -> tuple | None:
        """``(value, obj, step, type, repr, flags)`` of ``obj``'s newest snapshot before ``step``."""
        found = self.before(obj, step)
        return (found[1], obj, found[0], found[2], found[3], found[5]) if found is not None else None
