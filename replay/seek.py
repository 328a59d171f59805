"""Finding a step by something other than its number: a statement, a time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..recorder import schema
from .errors import BadStepError, UnknownNameError
from .queries import resolve_node

if TYPE_CHECKING:
    from .recording import Recording


def first_step_at_node(rec: "Recording", text: str) -> int:
    """The first line step at the statement ``text`` (a node id or a unique part)."""
    node_id, file, lines = resolve_node(rec, text)
    codes = {c for c, v in rec.codes.items() if v[0] == file}
    if lines and codes:
        sql = (f"SELECT step, act FROM events WHERE kind = ? AND line IN ({','.join('?' * len(lines))}) "
               "ORDER BY step")
        for step, act in rec.iterate(sql, (schema.LINE, *lines)):
            if rec.act(act).code in codes:
                return step
    raise UnknownNameError(f"the statement {node_id} never ran in this recording",
                           fix="see the statements that ran with: escope events TEST --kind line")


def step_at_time(rec: "Recording", ns: int) -> int:
    """The last step recorded at or before ``ns`` nanoseconds after the start.

    Steps are appended in the order they happen, each stamped when it is
    recorded, so time grows with the step and a binary search finds it.
    """
    lo, hi = rec.first_step, rec.last_step
    if hi < lo:
        raise BadStepError("the recording holds no events", path=rec.path)
    # A call's time stamp can be later than the line step after it (the
    # recorder stamps a call once its frame is set up), so the film starts
    # at the earlier of its first two stamps.
    first = min(rec.event_row(s)[3] for s in range(lo, min(lo + 1, hi) + 1))
    if ns < first:
        raise BadStepError(f"the recording starts at {first} ns, after {ns} ns", path=rec.path,
                           fix=f"pick a time from {first} to {rec.event_row(hi)[3]} ns")
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if rec.event_row(mid)[3] <= ns:
            lo = mid
        else:
            hi = mid - 1
    return lo
