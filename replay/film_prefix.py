"""How far two films of one test are the same film, found without reading it.

``escope diff`` walks two films event by event only where they may
differ.  Before that, two cheap comparisons skip what they share: whole
chunks whose JSON text is the same (the event times aside, which always
differ, and object addresses in reprs), then, inside the first chunk that
differs, the rows that are still the same under the same ids.
"""

from __future__ import annotations

import re

from .film_reader import FilmReader

#: Object addresses in default reprs (``<Foo object at 0x7f3a...>``): they
#: differ on every run and say nothing about what the test did.
ADDRESS = re.compile(rb"0x[0-9a-fA-F]{6,16}")


def common_prefix(a: FilmReader, b: FilmReader) -> int:
    """The step up to which the two films hold the same chunks (their
    times and object addresses aside): the diff starts there."""
    agreed = min(a.first_step, b.first_step)
    if a.first_step != b.first_step:
        return agreed
    for ca, cb in zip(a.chunks, b.chunks):
        if ca.text is None or cb.text is None or ca.base != cb.base or ca.steps != cb.steps:
            break
        try:
            head_a, tail_a = ca.comparable()
            head_b, tail_b = cb.comparable()
        except ValueError:
            break
        if (head_a, tail_a) != (head_b, tail_b):
            if head_a != head_b or ADDRESS.sub(b"0x", tail_a) != ADDRESS.sub(b"0x", tail_b):
                break
        agreed = ca.base + ca.steps
    return agreed


def _first_difference(x: list, y: list) -> int:
    """The first index at which two lists differ (``min(len)`` if none)."""
    n = min(len(x), len(y))
    if x[:n] == y[:n]:
        return n
    lo, hi = 0, n  # the difference lies in x[lo:hi]; halve it with C-speed slice compares
    while hi - lo > 64:
        mid = (lo + hi) // 2
        if x[lo:mid] == y[lo:mid]:
            lo = mid
        else:
            hi = mid
    for i in range(lo, hi):
        if x[i] != y[i]:
            return i
    return hi


def common_rows(a: FilmReader, b: FilmReader, step: int) -> int:
    """From ``step`` (where ``common_prefix`` stopped, both films' chunks
    starting there), the step up to which the two films still hold the same
    rows: the same events, bindings and values under the same ids.  Ids are
    handed out in the order things happen, so until the first different row
    the two films are the same film."""
    ca, cb = a.chunk_at(step), b.chunk_at(step)
    if ca is None or cb is None or ca.text is None or cb.text is None or ca.base != step or cb.base != step:
        return step
    ea, eb = a.events_of(ca), b.events_of(cb)
    end = min(len(ea[0]), len(eb[0]))
    for x, y in zip(ea, eb):
        end = min(end, _first_difference(x, y))
    limit = step + end
    ba, bb = a.bindings_of(ca), b.bindings_of(cb)
    i = _first_difference(ba, bb)
    if i < min(len(ba), len(bb)):
        limit = min(limit, ba[i][2], bb[i][2])
    va, vb = list(a.vals_of(ca).items()), list(b.vals_of(cb).items())
    i = _first_difference(va, vb)
    if i < min(len(va), len(vb)):
        for row in (va[i][1], vb[i][1]):
            if type(row[1]) is int:
                limit = min(limit, row[1])
    return max(step, limit)
