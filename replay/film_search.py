"""Breakpoint searches over a film read from its chunks, a chunk at a time.

A search for ``c`` / ``rc`` (and ``escope dap``'s ``continue``) may cross
the whole film, a million events.  Walking it event by event in Python
costs most of a second, so a search here works on whole chunks:

* a chunk's ``lines`` column is read as text first, inflating only the
  chunk's first bytes (``film_columns``): a chunk whose column does not
  hold the breakpoint's line number is passed over, nothing decoded;
* in a chunk that holds it, the kinds, acts and lines columns are searched
  with ``list.index`` (C speed), and only those positions are checked
  (kind, code of the activation);
* the hits of each breakpoint, before its condition, are kept by chunk, so
  a second search, a hit count or ``gotoTargets`` over the same stretch
  reads nothing;
* a condition is a function of the values its names are bound to.  While
  every value bound to those names up to a chunk's end is immutable, the
  condition can only hold for some combination of them: when none makes it
  hold, no hit up to there can stop, and the chunk is passed over without
  reading a single local (``ConditionGate``).  Otherwise the names of all
  the chunk's hits are resolved at once from its bindings columns, each
  combination of immutable values evaluated once, and the hits where the
  condition holds are kept by chunk.

What cannot be read this way (a damaged chunk) falls back to
``FilmStore``'s own decoding, which says "the recording is corrupt" in one
line.
"""

from __future__ import annotations

import bisect
import itertools
import json
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..recorder import schema
from .film_columns import ChunkColumns, Unreadable as _Unreadable, act_codes_in, act_frames_in
from .state import frame_values
from .values import Value

if TYPE_CHECKING:
    from .conditions import Condition
    from .film_store import FilmStore
    from .navigation import Breakpoint
    from .recording import Recording

__all__ = ["FilmSearch", "search_for"]

#: Hits of a chunk whose condition is read one by one before the rest of
#: the chunk is read at once.
_ONE_BY_ONE = 8
#: Combinations of values kept with their condition's truth, per condition.
_MEMO = 1 << 16
#: Combinations of bound values a condition is tried on before a chunk is
#: searched hit by hit instead.
MAX_COMBINATIONS = 4096

def search_for(rec: "Recording") -> "FilmSearch":
    """The search state of ``rec`` (made on first use, kept on the recording)."""
    found = getattr(rec, "_film_search", None)
    if found is None:
        found = FilmSearch(rec)
        rec._film_search = found  # type: ignore[attr-defined]
    return found


class FilmSearch:
    """Per-recording caches of line columns, hits and bound values by chunk."""

    def __init__(self, rec: "Recording") -> None:
        assert rec.store is not None
        self.rec = rec
        self.store: "FilmStore" = rec.store
        self.columns = ChunkColumns(self.store)
        #: (codes, line or None for calls) -> chunk -> steps of hits
        self._hits: dict[tuple[frozenset[int], int | None], dict[int, list[int]]] = {}
        #: (chunk, name id) -> value ids bound to that name in the chunk
        self._bound: dict[tuple[int, int], frozenset[int | None]] = {}
        #: value id -> whether it is a snapshot of a mutable object
        self._mutable: dict[int, bool] = {}
        #: (condition text, breakpoint's codes, line, function, chunk) -> hits where it holds
        self._held: dict[tuple, frozenset[int]] = {}
        #: condition text -> {value ids of its names: whether it holds}
        self._memos: dict[str, dict[tuple, bool]] = {}
        #: condition text -> its gate
        self._gates: dict[str, ConditionGate] = {}

    # -- hits before conditions -------------------------------------------------------

    def _chunk_hits(self, i: int, codes: frozenset[int], line: int | None) -> list[int]:
        """Steps of chunk ``i`` where a line event at ``line`` (``None``: a
        call) of ``codes`` happens, in step order."""
        per = self._hits.setdefault((codes, line), {})
        found = per.get(i)
        if found is not None:
            return found
        rec, store = self.rec, self.store
        found = []
        if line is not None:
            text = self.columns.lines_text(i)
            if text is not None and (b",%d," % line) not in text:
                per[i] = found
                return found
        lean = self.columns.lean(i)
        if lean is not None:
            kinds, acts, lines, text = lean
        else:
            kinds, acts, lines, _times, _values = store._guarded(store.piece(i).events)
            text = None
        base = store.bases[i]
        want, column = (schema.LINE, lines) if line is not None else (schema.CALL, kinds)
        key = line if line is not None else schema.CALL
        positions = []
        pos = -1
        try:
            while True:
                pos = column.index(key, pos + 1)
                if kinds[pos] == want:
                    positions.append(pos)
        except ValueError:
            pass
        # many activations (a call per hit): their codes from the chunk's
        # own activations and frames at once, not one lookup each
        local: dict[int, int] = {}
        if len(positions) > 64:
            found_codes = act_codes_in(text) if text is not None else None
            local = found_codes if found_codes is not None else self._act_codes(i)
        wanted: dict[int, bool] = {}
        for pos in positions:
            act = acts[pos]
            ok = wanted.get(act)
            if ok is None:
                code = local.get(act)
                if code is None:
                    code = rec.act(act, base + pos).code
                ok = wanted[act] = code in codes
            if ok:
                found.append(base + pos)
        per[i] = found
        return found

    def _act_codes(self, i: int) -> dict[int, int]:
        """act -> code of the activations opened in chunk ``i`` whose frame
        was made there too."""
        store = self.store
        piece = store.piece(i)
        acts, frames = store._guarded(piece.acts), store._guarded(piece.frames)
        out = {}
        for act, row in acts.items():
            made = frames.get(row[1])
            if made is not None:
                out[act] = made[0]
        return out

    def hits(self, codes: frozenset[int], line: int | None, step: int, forward: bool,
             bound: int | None = None, chunk_ok: Callable[[int], bool] | None = None) -> Iterator[int]:
        """Hit steps after (before) ``step``, nearest first, not past ``bound``;
        a chunk for which ``chunk_ok`` says False is passed over unread."""
        store = self.store
        if store.last_step < store.first_step:
            return
        start = step + 1 if forward else step - 1
        if not store.first_step <= start <= store.last_step:
            return
        i = store.chunk_of(start)
        inc = 1 if forward else -1
        while 0 <= i < len(store.bases):
            if bound is not None and (store.bases[i] > bound if forward
                                      else store.bases[i] + store.steps[i] - 1 < bound):
                return
            if chunk_ok is not None and not chunk_ok(i):
                i += inc
                continue
            found = self._chunk_hits(i, codes, line)
            if found:
                if forward:
                    at = bisect.bisect_right(found, step)
                    for s in itertools.islice(found, at, None):
                        if bound is not None and s > bound:
                            return
                        yield s
                else:
                    at = bisect.bisect_left(found, step)
                    for s in reversed(found[:at]):
                        if bound is not None and s < bound:
                            return
                        yield s
            i += inc

    def matches(self, b: "Breakpoint", step: int, forward: bool, bound: int | None = None,
                use_also: bool = True) -> Iterator[int]:
        """Steps after (before) ``step``, nearest first, where ``b`` stops:
        it matches, its condition holds and (``use_also``) its extra test
        passes."""
        if use_also and b.window is not None:
            span = b.window()
            if span is None:
                return
            # and it never passes before the window either: start there
            if forward:
                bound = span[1] if bound is None else min(bound, span[1])
                step = max(step, span[0] - 1)
            else:
                bound = span[0] if bound is None else max(bound, span[0])
                step = min(step, span[1] + 1)
        cond = b.condition
        chunk_ok = self.gate(cond).may_hold if cond is not None else None
        first = True
        for i, run in self._runs(b, step, forward, bound, chunk_ok):
            for s in (self._holding(cond, b, i, run, first) if cond is not None else run):
                if use_also and b.also is not None and not b.also(s):
                    continue
                yield s
            first = False

    def _chunk_matches_all(self, b: "Breakpoint", i: int) -> list[int]:
        found: list[int] = []
        if b.line is not None:
            found = self._chunk_hits(i, b.codes, b.line)
        if b.function:
            found = sorted(found + self._chunk_hits(i, b.codes, None))
        return found

    def _runs(self, b: "Breakpoint", step: int, forward: bool, bound: int | None,
              chunk_ok: Callable[[int], bool] | None) -> Iterator[tuple[int, list[int]]]:
        """(chunk, its hits of ``b`` after (before) ``step`` not past
        ``bound``, nearest first), chunk after chunk."""
        store = self.store
        if store.last_step < store.first_step or (b.line is None and not b.function):
            return
        start = step + 1 if forward else step - 1
        if not store.first_step <= start <= store.last_step:
            return
        i = store.chunk_of(start)
        inc = 1 if forward else -1
        while 0 <= i < len(store.bases):
            if bound is not None and (store.bases[i] > bound if forward
                                      else store.bases[i] + store.steps[i] - 1 < bound):
                return
            if chunk_ok is None or chunk_ok(i):
                found = self._chunk_matches_all(b, i)
                if forward:
                    run = found[bisect.bisect_right(found, step):]
                    if bound is not None:
                        run = run[:bisect.bisect_right(run, bound)]
                else:
                    run = found[:bisect.bisect_left(found, step)]
                    if bound is not None:
                        run = run[bisect.bisect_left(run, bound):]
                    run.reverse()
                if run:
                    yield i, run
            i += inc

    def _holding(self, cond: "Condition", b: "Breakpoint", i: int, run: list[int], first: bool) -> Iterator[int]:
        """The steps of ``run`` (hits of ``b`` in chunk ``i``, in search
        order) where ``cond`` holds: in the search's ``first`` chunk the
        first few read one by one (a near stop reads little), else the whole
        chunk at once, kept."""
        key = (cond.text, b.codes, b.line, bool(b.function), i)
        held = self._held.get(key)
        if held is None:
            for s in run[:_ONE_BY_ONE if first else 0]:
                if self._holds(cond, s):
                    yield s
            if first and len(run) <= _ONE_BY_ONE:
                return
            held = self._held[key] = frozenset(self._bulk(cond, i, self._chunk_matches_all(b, i)))
            run = run[_ONE_BY_ONE:] if first else run
        for s in run:
            if s in held:
                yield s

    def _bulk(self, cond: "Condition", i: int, steps: list[int]) -> list[int]:
        """The steps (of chunk ``i``) where ``cond`` holds, what each reads
        found from the chunk's bindings at once; a combination of immutable
        values is evaluated once per search."""
        rec, store = self.rec, self.store
        ids = rec.name_ids()
        names = [(n, ids.get(n)) for n in sorted(cond.names)]
        base = store.bases[i]
        lean = self.columns.lean(i)
        act_frames: dict[int, int] = {}
        if lean is not None:
            acts = lean[1]
            act_frames = act_frames_in(lean[3]) or {}
        else:
            acts = store._guarded(store.piece(i).events)[1]
        table = self._chunk_bindings(i, frozenset(nid for _n, nid in names if nid is not None))
        memo = self._memos.setdefault(cond.text, {})
        if len(memo) > _MEMO:
            memo.clear()
        before: dict[tuple[int, int], int | None] = {}
        local: dict[int, Any] | None = None
        misses = 0
        out = []
        for s in steps:
            act = acts[s - base]
            frame = act_frames.get(act)
            if frame is None:
                frame = rec.act(act, s).frame
            key = []
            for _n, nid in names:
                vid = None
                if nid is not None:
                    row = table.get((frame, nid))
                    at = bisect.bisect_right(row[0], s) if row is not None else 0
                    if at:
                        vid = row[1][at - 1]  # type: ignore[index]
                    else:
                        # bound before the chunk, if at all: the same at every hit
                        k = (frame, nid)
                        if k not in before:
                            before[k] = rec.binding(frame, nid, s)
                        vid = before[k]
                key.append(vid)
            combo = tuple(key)
            ok = memo.get(combo)
            if ok is None:
                misses += 1
                if local is None and misses > _ONE_BY_ONE * 4:
                    # many new values: most were written in this chunk
                    local = store._guarded(store.piece(i).vals)
                env = {}
                mutable = False
                for (n, _nid), vid in zip(names, combo):
                    if vid:
                        vrow = local.get(vid) if local is not None else None
                        if vrow is None:
                            vrow = store.val(vid, s)
                        if vrow is not None and vrow[0] is None:
                            env[n] = Value(vrow[2], vrow[3], vrow[4], vrow[5])
                            continue
                        mutable = True
                        value = rec.value(vid, s)
                        if value is not None:
                            env[n] = value
                ok = cond.holds(env)
                if not mutable:
                    memo[combo] = ok
            if ok:
                out.append(s)
        return out

    def _chunk_bindings(self, i: int, nids: frozenset[int]) -> dict[tuple[int, int], tuple[list[int], list]]:
        """(frame, name id) -> (steps, value ids) of chunk ``i``'s bindings
        of ``nids``, in step order."""
        rows: list[tuple[int, int, int, int | None]] = []
        try:
            names_t, vids_t = self.columns.binding_texts(i)
            parts = self.columns.binding_parts(i)
            if names_t:
                frames = list(itertools.accumulate(json.loads(b"[" + parts[0] + b"]")))
                steps = list(itertools.accumulate(json.loads(b"[" + parts[2] + b"]")))
                if len(frames) != len(names_t) or len(steps) != len(names_t) \
                        or not set(map(type, frames)) | set(map(type, steps)) <= {int}:
                    raise _Unreadable()
                for nid in nids:
                    tok = b"%d" % nid
                    for pos in itertools.compress(range(len(names_t)), map(tok.__eq__, names_t)):
                        v = vids_t[pos]
                        rows.append((frames[pos], nid, steps[pos], None if v == b"null" else int(v)))
        except (_Unreadable, ValueError, TypeError, RecursionError):
            store = self.store
            rows = [(frame, n, st, vid) for frame, per in store._guarded(store.piece(i).bindings).items()
                    for n, st, vid in per if n in nids]
        rows.sort(key=lambda r: r[2])  # stable: at one step the later row stays the later
        table: dict[tuple[int, int], tuple[list[int], list]] = {}
        for frame, nid, st, vid in rows:
            entry = table.get((frame, nid))
            if entry is None:
                entry = table[(frame, nid)] = ([], [])
            entry[0].append(st)
            entry[1].append(vid)
        return table

    def _holds(self, cond: "Condition", step: int) -> bool:
        rec = self.rec
        return cond.holds(frame_values(rec, rec.act(self.store.event(step)[1], step).frame, step, cond.names))

    def chunk_matches(self, b: "Breakpoint", i: int) -> list[int]:
        """The steps of chunk ``i`` where ``b`` matches and its condition
        holds (its extra test left out), in step order."""
        cond = b.condition
        if cond is not None and not self.gate(cond).may_hold(i):
            return []
        found = self._chunk_matches_all(b, i)
        if cond is None or not found:
            return list(found)
        key = (cond.text, b.codes, b.line, bool(b.function), i)
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = frozenset(self._bulk(cond, i, found))
        return [s for s in found if s in held]

    def gate(self, cond: "Condition") -> "ConditionGate":
        found = self._gates.get(cond.text)
        if found is None:
            found = self._gates[cond.text] = ConditionGate(self, cond.names, cond.holds)
        return found

    # -- conditions -----------------------------------------------------------------

    def _bound_in(self, i: int, name: int) -> frozenset[int | None]:
        """Value ids bound to name id ``name`` (any frame) in chunk ``i``."""
        found = self._bound.get((i, name))
        if found is not None:
            return found
        vids: set[int | None] = set()
        try:
            names_t, vids_t = self.columns.binding_texts(i)
            tok = b"%d" % name
            vids = {None if v == b"null" else int(v)
                    for v in set(itertools.compress(vids_t, map(tok.__eq__, names_t)))}
        except (_Unreadable, ValueError):
            store = self.store
            rows = store._guarded(store.piece(i).bindings)
            vids = {vid for per_frame in rows.values() for n, _s, vid in per_frame if n == name}
        found = self._bound[(i, name)] = frozenset(vids)
        return found

    def _is_mutable(self, vid: int) -> bool:
        found = self._mutable.get(vid)
        if found is None:
            found = self._mutable[vid] = self.rec.obj_of(vid) is not None
        return found


class ConditionGate:
    """Whether a breakpoint's condition can hold anywhere up to a chunk's
    end, from the values its names were bound to (see the module doc)."""

    def __init__(self, search: FilmSearch, names: frozenset[str], holds: Callable[[dict[str, Any]], bool]) -> None:
        self.search = search
        ids = search.rec.name_ids()
        self.names = sorted(names)
        self.ids = [ids.get(n) for n in self.names]
        self.holds = holds
        #: chunk position up to which the union below is complete
        self._upto = -1
        self._seen: list[set[int | None]] = [set() for _ in self.names]
        self._mutable = False
        self._tried: set[tuple] = set()
        self._ever = False
        #: chunk -> whether the condition can hold at some step up to its end
        self._may: dict[int, bool] = {}
        self._first_kf = False

    def may_hold(self, i: int) -> bool:
        found = self._may.get(i)
        if found is not None:
            return found
        if any(nid is None for nid in self.ids):
            # a name never bound anywhere: the condition never holds
            self._may[i] = False
            return False
        search, rec = self.search, self.search.rec
        if not self._first_kf:
            self._first_kf = True
            kf = search.store._guarded(search.store.keyframe, 0) if search.store.bases else None
            if kf is not None:
                for per_frame in kf.bindings.values():
                    for k, nid in enumerate(self.ids):
                        row = per_frame.get(nid)  # type: ignore[arg-type]
                        if row is not None:
                            self._seen[k].add(row[2])
        while self._upto < i and not self._mutable and not self._ever:
            self._upto += 1
            for k, nid in enumerate(self.ids):
                self._seen[k].update(search._bound_in(self._upto, nid))  # type: ignore[arg-type]
            vids = [v for seen in self._seen for v in seen if v]
            if any(search._is_mutable(v) for v in vids):
                self._mutable = True
                break
            total = 1
            for seen in self._seen:
                total *= max(1, len(seen))
            if total > MAX_COMBINATIONS:
                self._mutable = True
                break
            for combo in itertools.product(*self._seen):
                if combo in self._tried:
                    continue
                self._tried.add(combo)
                if not all(combo):
                    continue  # an unbound name: the condition is false
                env = {n: rec.value(v) for n, v in zip(self.names, combo)}
                if self.holds(env):
                    self._ever = True
                    break
            if not self._ever:
                self._may[self._upto] = False
        result = self._may.get(i, True)
        return result
