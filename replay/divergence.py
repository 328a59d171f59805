"""Where two films of one test part: aligning them by what ran.

Each thread's events of film A are walked in lockstep with the events of
the same thread (matched by name) of film B.  Two events match when they
are the same kind of event at the same line of the same code (file,
qualified name) at the same call depth; step numbers are never compared,
since threads interleave differently from run to run.

* A **control** divergence: the events do not match — the runs executed
  different statements from the same place.
* A **value** divergence: they match but a value seen there differs — a
  local or argument bound at that step, a mutable object changed at that
  step, the return value, the exception or a checkpoint's payload.

Values are compared by ``steady.form_key``: their recorded forms without
what differs on every run (addresses, thread ids, a set's printing order);
wall-clock times and addresses held as numbers are shown when they explain
a branch, never counted on their own.

After a control divergence the walk re-synchronises inside the deepest
frame both runs are still in, on the nearest statement both runs reach
next in that frame (fewest events skipped; its return counts), else in its
caller, and so on down the stack.  That is what lets the later divergences
be counted and placed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from ..recorder import schema
from .film_prefix import common_prefix, common_rows
from .film_reader import FilmReader
from .steady import every_run, form_key, form_key_of_form, value_form

#: Events that close a frame's activation.
_END_KINDS = frozenset({schema.RETURN, schema.UNWIND, schema.YIELD})
#: How many events of one thread a re-synchronisation looks ahead.
RESYNC_WINDOW = 20_000
#: Names of the values an event carries, by kind.
_EVENT_VALUE = {schema.RETURN: "<return>", schema.YIELD: "<yield>", schema.EXCEPTION: "<exception>",
                schema.UNWIND: "<exception>", schema.HANDLED: "<exception>", schema.CHECKPOINT: "<checkpoint>"}


@dataclass
class Place:
    """One side of a divergence: the step and the statement."""

    step: int
    node: str | None
    function: str
    file: str
    line: int
    source: str = ""
    thread: str = ""
    stack: list[tuple[str, str, int]] = field(default_factory=list)  # (function, file, line), outermost first

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "node": self.node, "function": self.function, "file": self.file,
                "line": self.line}


@dataclass
class Divergence:
    """The first place two films part, as the command reports it."""

    kind: str  # "control" or "value"
    a: Place | None
    b: Place | None
    names: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"a": form, "b": form}
    volatile: list[str] = field(default_factory=list)  # names whose difference is a time or address only


@dataclass
class Later:
    """Later divergences grouped by where they happened (film A's side)."""

    kind: str
    function: str
    file: str
    line: int
    count: int


@dataclass
class DiffResult:
    """What ``diff`` found: the first divergence, how many in all, where the
    later ones are."""

    first: Divergence | None
    total: int
    later: list[Later]
    agreed_steps: int  # steps both films share before the walk began (skipped unread)


class _Film:
    """One film from the step the walk starts at: columns, per-thread lists
    of steps, and the bindings and snapshots of each step."""

    def __init__(self, reader: FilmReader, start: int, codes: dict[tuple, int]) -> None:
        self.r = reader
        self.first, self.kinds, self.acts, self.lines, self.values = reader.columns_from(start)
        self.start = max(start, self.first)
        end = self.first + len(self.kinds)
        thread_of: dict[int, int] = {}
        self.sig_of: dict[int, tuple[int, int]] = {}  # act -> (canonical code, depth)
        self.threads: dict[int, list[int]] = {}
        acts = self.acts
        lo = self.start - self.first
        for act in set(acts[lo:]):
            info = reader.act(act)
            thread_of[act] = info[2] if info else -1
            code = reader.code_of_act(act)
            c = reader.codes.get(code)
            key = (reader.files.get(c[0]), c[2], c[3]) if c else ("?", act)
            self.sig_of[act] = (codes.setdefault(key, len(codes)), info[3] if info else -1)
        if len(set(thread_of.values())) <= 1:
            if thread_of:
                self.threads[next(iter(thread_of.values()))] = list(range(self.start, end))
        else:
            for i in range(lo, len(acts)):
                t = thread_of[acts[i]]
                lst = self.threads.get(t)
                if lst is None:
                    lst = self.threads[t] = []
                lst.append(self.first + i)
        self.bindings: dict[int, list[tuple[int, int, int | None]]] = {}
        for frame, name, step, vid in reader.bindings_between(self.start, end):
            self.bindings.setdefault(step, []).append((frame, name, vid))
        self.snapshots: dict[int, list[tuple[int, int]]] = {}
        for step, obj, vid in reader.snapshots_between(self.start, end):
            self.snapshots.setdefault(step, []).append((obj, vid))
        self._keys: dict[int, Any] = {}
        # the value ids of the chunks being walked; None: every chunk is walked
        self.decoded: set[int] | None = None
        if start > reader.first_step:
            self.decoded = set()
            for c in reader.chunks:
                if c.base + c.steps > self.start and c.text is not None:
                    self.decoded.update(reader.vals_of(c))

    def sig(self, step: int) -> tuple:
        i = step - self.first
        act = self.acts[i]
        return (self.kinds[i], self.lines[i]) + self.sig_of[act]

    def key(self, vid: int | None) -> Any:
        """What a value is compared by.  A value whose row lies in the chunks
        both films share (``common_prefix``) is the same row in both under
        the same id, so its id stands for it without decoding that chunk."""
        if vid is None:
            return None
        k = self._keys.get(vid, self)
        if k is self:
            if self.decoded is not None and vid not in self.decoded:
                k = ("shared", vid)
            else:
                k = form_key(self.r.value(vid))
            self._keys[vid] = k
        return k

    def full_key(self, vid: int | None) -> Any:
        """The compared form itself, decoding whatever chunk holds it."""
        k = self.key(vid)
        if type(k) is tuple and len(k) == 2 and k[0] == "shared":
            k = self._keys[vid] = form_key(self.r.value(vid))
        return k

    def act(self, step: int) -> int:
        return self.acts[step - self.first]

    def kind(self, step: int) -> int:
        return self.kinds[step - self.first]

    def items(self, step: int) -> Iterator[tuple[str, Any, Any]]:
        """``(label, value id, identity)`` of the values seen at ``step``:
        the event's own value, the bindings, the changed objects."""
        i = step - self.first
        vid = self.values[i]
        if vid is not None:
            yield _EVENT_VALUE.get(self.kinds[i], "<value>"), vid, None
        for _frame, name, vid in self.bindings.get(step, ()):
            yield self.r.names.get(name, f"?{name}"), vid, None
        for obj, vid in self.snapshots.get(step, ()):
            yield "", vid, obj

    def chain(self, act: int) -> list[int]:
        """The activation and its callers, innermost first."""
        out: list[int] = []
        seen: set[int] = set()
        a: int | None = act
        while a is not None and a not in seen:
            info = self.r.act(a)
            if info is None:
                break
            seen.add(a)
            out.append(a)
            a = info[1]
        return out


class _Walk:
    """The lockstep walk of two films, thread by thread."""

    def __init__(self, a: FilmReader, b: FilmReader) -> None:
        self.ra, self.rb = a, b
        self.agreed = common_rows(a, b, common_prefix(a, b))
        codes: dict[tuple, int] = {}
        self.a = _Film(a, self.agreed, codes)
        self.b = _Film(b, self.agreed, codes)
        # (kind, step in A or None, step in B or None, differing items)
        self.found: list[tuple[str, int | None, int | None, list]] = []

    def run(self) -> None:
        for ta, tb in self._thread_pairs():
            la = self.a.threads.get(ta, []) if ta is not None else []
            lb = self.b.threads.get(tb, []) if tb is not None else []
            self._align(la, lb)

    def _thread_pairs(self) -> list[tuple[int | None, int | None]]:
        """Threads matched by name, in the order they first ran; a thread
        only one film has is paired with nothing."""
        def by_name(film: _Film) -> dict[str, list[int]]:
            out: dict[str, list[int]] = {}
            for t, steps in sorted(film.threads.items(), key=lambda kv: kv[1][0]):
                out.setdefault(film.r.threads.get(t, f"thread-{t}"), []).append(t)
            return out
        na, nb = by_name(self.a), by_name(self.b)
        pairs: list[tuple[int | None, int | None]] = []
        for name in list(na) + [n for n in nb if n not in na]:
            xs, ys = na.get(name, []), nb.get(name, [])
            for k in range(max(len(xs), len(ys))):
                pairs.append((xs[k] if k < len(xs) else None, ys[k] if k < len(ys) else None))
        return pairs

    def _align(self, la: list[int], lb: list[int]) -> None:
        a, b = self.a, self.b
        i = j = 0
        na, nb = len(la), len(lb)
        while i < na and j < nb:
            sa, sb = la[i], lb[j]
            if a.sig(sa) == b.sig(sb):
                diff = self._values(sa, sb)
                if diff:
                    self.found.append(("value", sa, sb, diff))
                i += 1
                j += 1
                continue
            self.found.append(("control", sa, sb, []))
            nxt = self._resync(la, i, lb, j)
            if nxt is None:
                return
            i, j = nxt
        if i < na or j < nb:
            # one run's thread went on after the other's ended
            self.found.append(("control", la[i] if i < na else (la[-1] if la else None),
                               lb[j] if j < nb else (lb[-1] if lb else None), []))

    def _values(self, sa: int, sb: int) -> list[tuple[str, Any, Any, Any, Any]]:
        """The values that differ at two matched steps: ``(label, vid A, vid B,
        obj A, obj B)``; times of the run are left out."""
        a, b = self.a, self.b
        if a.values[sa - a.first] is None and b.values[sb - b.first] is None \
                and sa not in a.bindings and sb not in b.bindings \
                and sa not in a.snapshots and sb not in b.snapshots:
            return []
        # the common case first: the same values in the same order
        ka = [(label, a.key(vid)) for label, vid, _obj in a.items(sa)]
        kb = [(label, b.key(vid)) for label, vid, _obj in b.items(sb)]
        if ka == kb:
            return []
        ia: dict[str, list] = {}
        for label, vid, obj in a.items(sa):
            ia.setdefault(label, []).append((vid, obj))
        ib: dict[str, list] = {}
        for label, vid, obj in b.items(sb):
            ib.setdefault(label, []).append((vid, obj))
        out = []
        for label in list(ia) + [k for k in ib if k not in ia]:
            xs, ys = ia.get(label, []), ib.get(label, [])
            if label == "":
                # changed objects: compared as a multiset of forms, named later
                kx = sorted(map(repr, (a.full_key(v) for v, _ in xs)))
                ky = sorted(map(repr, (b.full_key(v) for v, _ in ys)))
                if kx != ky:
                    out.append(("", xs, ys, None, None))
                continue
            va = xs[-1][0] if xs else None
            vb = ys[-1][0] if ys else None
            ka, kb = a.key(va), b.key(vb)
            if ka == kb or (type(ka) is not type(kb) or len(ka or ()) == 2 or len(kb or ()) == 2) \
                    and a.full_key(va) == b.full_key(vb):
                continue
            if every_run(self.ra.value(va), self.ra.started_s, self.rb.value(vb), self.rb.started_s):
                continue
            out.append((label, va, vb, None, None))
        return out

    def _resync(self, la: list[int], i: int, lb: list[int], j: int) -> tuple[int, int] | None:
        """Where the walk goes on after a control divergence at ``(i, j)``."""
        a, b = self.a, self.b
        ca, cb = a.chain(a.act(la[i])), b.chain(b.act(lb[j]))
        # the deepest frame both runs are in: same depth, same code
        fa = {a.sig_of[x][1]: x for x in ca}
        fb = {b.sig_of[x][1]: x for x in cb}
        depths = sorted((d for d in fa if d in fb and a.sig_of[fa[d]][0] == b.sig_of[fb[d]][0]), reverse=True)
        for d in depths:
            found = self._meet(la, i, fa[d], lb, j, fb[d])
            if found is not None:
                return found
        return None

    def _meet(self, la: list[int], i: int, act_a: int, lb: list[int], j: int,
              act_b: int) -> tuple[int, int] | None:
        """The nearest pair of positions from which both runs execute the same
        statement of the frames ``act_a``/``act_b`` again.  Both sides are
        read one own event at a time, in turn, so the cost is the distance
        to the meeting point, not the length of the frame."""
        a, b = self.a, self.b
        own_a, own_b = self._own(a, la, i, act_a), self._own(b, lb, j, act_b)
        seen_a: dict[tuple, int] = {}
        seen_b: dict[tuple, int] = {}
        more_a = more_b = True
        while more_a or more_b:
            if more_a:
                p = next(own_a, None)
                if p is None:
                    more_a = False
                else:
                    sig = a.sig(la[p])
                    q = seen_b.get(sig)
                    if q is not None:
                        return p, q
                    seen_a.setdefault(sig, p)
            if more_b:
                q = next(own_b, None)
                if q is None:
                    more_b = False
                else:
                    sig = b.sig(lb[q])
                    p = seen_a.get(sig)
                    if p is not None:
                        return p, q
                    seen_b.setdefault(sig, q)
        return None

    @staticmethod
    def _own(film: _Film, lst: list[int], i: int, act: int) -> Iterator[int]:
        """Positions in ``lst`` from ``i`` on of the events of ``act`` itself,
        up to its end (or ``RESYNC_WINDOW`` events on)."""
        first, acts, kinds = film.first, film.acts, film.kinds
        for p in range(i, min(len(lst), i + RESYNC_WINDOW)):
            k = lst[p] - first
            if acts[k] == act:
                yield p
                if kinds[k] in _END_KINDS:
                    return

    # -- the report ----------------------------------------------------------------

    def place(self, film: _Film, step: int | None, produced: bool) -> Place | None:
        """Where a divergence is on one side; ``produced``: the statement that
        produced the values seen at ``step`` (the frame's previous event)."""
        if step is None:
            return None
        r = film.r
        act = film.act(step)
        code = r.code_of_act(act)
        line = film.lines[step - film.first]
        if produced and film.kind(step) == schema.LINE:
            prev = r.last_event_of(act, step)
            if prev is not None:
                line = prev[1]
        info = r.act(act)
        return Place(step, r.node(code, line), r.qualname(code), r.file_of(code), line, r.source_line(code, line),
                     r.threads.get(info[2], "") if info else "", self._stack(film, act, line))

    @staticmethod
    def _stack(film: _Film, act: int, line: int) -> list[tuple[str, str, int]]:
        r = film.r
        out = []
        child_start = None
        for x in film.chain(act):
            code = r.code_of_act(x)
            if child_start is None:
                ln = line
            else:
                prev = r.last_event_of(x, child_start + 1)
                ln = prev[1] if prev else 0
            out.append((r.qualname(code), r.file_of(code), ln))
            child_start = (r.act(x) or [0, 0, 0, 0, 0])[4]
        out.reverse()
        return out

    def names(self, kind: str, sa: int | None, sb: int | None, diff: list) -> tuple[dict, list[str]]:
        """The names whose values differ, as value forms; for a control
        divergence, the locals of the shared frame that differ there."""
        a, b = self.a, self.b
        out: dict[str, dict[str, Any]] = {}
        volatile: list[str] = []
        if kind == "value":
            for label, va, vb, _x, _y in diff:
                if label == "":
                    for name, x, y in self._objects(sa, sb, va, vb):
                        out[name] = {"a": x, "b": y}
                else:
                    out[label] = {"a": value_form(self.ra.value(va)), "b": value_form(self.rb.value(vb))}
            return out, volatile
        if sa is None or sb is None:
            return out, volatile
        ca, cb = a.chain(a.act(sa)), b.chain(b.act(sb))
        fa = {a.sig_of[x][1]: x for x in ca}
        fb = {b.sig_of[x][1]: x for x in cb}
        shared = [d for d in fa if d in fb and a.sig_of[fa[d]][0] == b.sig_of[fb[d]][0]]
        if not shared:
            return out, volatile
        d = max(shared)
        la = self.ra.frame_locals((self.ra.act(fa[d]) or [0])[0], sa)
        lb = self.rb.frame_locals((self.rb.act(fb[d]) or [0])[0], sb)
        for name in list(la) + [n for n in lb if n not in la]:
            ra, rb = self.ra.value(la.get(name)), self.rb.value(lb.get(name))
            if form_key(ra) == form_key(rb):
                continue
            out[name] = {"a": value_form(ra), "b": value_form(rb)}
            if every_run(ra, self.ra.started_s, rb, self.rb.started_s):
                volatile.append(name)
        return out, volatile

    def _objects(self, sa: int | None, sb: int | None, xs: list, ys: list) -> Iterator[tuple[str, Any, Any]]:
        """Changed objects named after the locals of the frame that hold them."""
        def named(film: _Film, reader: FilmReader, step: int | None, items: list) -> dict[str, Any]:
            out: dict[str, Any] = {}
            if step is None:
                return out
            frame = (reader.act(film.act(step)) or [None])[0]
            local = reader.frame_locals(frame, step) if frame is not None else {}
            holder = {}
            for name, vid in local.items():
                row = reader.value(vid)
                if row is not None and row[0] is not None:
                    holder.setdefault(row[0], name)
            for n, (vid, obj) in enumerate(items):
                row = reader.value(vid)
                label = holder.get(obj) or f"<{row[2] if row else 'object'} #{n + 1}>"
                out[label] = value_form(row)
            return out
        na = named(self.a, self.ra, sa, xs)
        nb = named(self.b, self.rb, sb, ys)
        for name in list(na) + [n for n in nb if n not in na]:
            if form_key_of_form(na.get(name)) != form_key_of_form(nb.get(name)):
                yield name, na.get(name), nb.get(name)

    def result(self) -> DiffResult:
        if not self.found:
            return DiffResult(None, 0, [], self.agreed)
        self.found.sort(key=lambda f: (f[1] if f[1] is not None else 1 << 62, f[2] or 0))
        kind, sa, sb, diff = self.found[0]
        first = Divergence(kind, self.place(self.a, sa, kind == "value"), self.place(self.b, sb, kind == "value"))
        first.names, first.volatile = self.names(kind, sa, sb, diff)
        groups: dict[tuple, int] = {}
        for k, s, _sb, _d in self.found[1:]:
            if s is None:
                continue
            film = self.a
            act = film.act(s)
            code = self.ra.code_of_act(act)
            line = film.lines[s - film.first]
            if k == "value" and film.kind(s) == schema.LINE:
                prev = _previous_line(film, s)
                line = prev if prev is not None else line
            where = (k, self.ra.qualname(code), self.ra.file_of(code), line)
            groups[where] = groups.get(where, 0) + 1
        later = [Later(k, fn, f, ln, n) for (k, fn, f, ln), n in groups.items()]
        later.sort(key=lambda g: -g.count)
        return DiffResult(first, len(self.found), later, self.agreed)


def _previous_line(film: _Film, step: int) -> int | None:
    """The line of the previous event of the same activation, looked for
    among the decoded events only (cheap: used to place later divergences)."""
    act = film.act(step)
    i = step - film.first - 1
    stop = max(0, i - 10_000)
    while i >= stop:
        if film.acts[i] == act:
            return film.lines[i]
        i -= 1
    return None


def diff(a: FilmReader, b: FilmReader) -> DiffResult:
    """The first divergence of two films, and where the later ones are."""
    walk = _Walk(a, b)
    walk.run()
    return walk.result()
