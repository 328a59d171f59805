"""Reconstructing the program state at one step.

The state at step N (docs/replay.md, "What a state is") is rebuilt from
indexed lookups only (described here as the rows' indexes; a recording read
from its chunks answers the same lookups from the chunk holding N and its
key frame, ``film_store``):

* the stack is the step's activation and its parent chain (a parent stays
  fixed while its child lives); an outer frame's current line is the line
  of its latest event at or before N (``events_act``);
* a frame's locals are, per name, its latest binding at or before N
  (``bindings_frame``); a binding to a mutable object shows that object's
  latest snapshot at or before N (``vals_obj``), which is how aliases stay
  consistent and in-place mutation shows up in every frame;
* the exception in flight is the one being raised or unwound at N: walking
  back over N's thread, only EXCEPTION and UNWIND events may lie between
  its raise and N, plus HANDLED events of an activation that then unwound
  anyway (sys.monitoring reports the implicit cleanup handlers of
  ``finally``, ``except ... as`` and ``with``, which re-raise).  Any other
  HANDLED event, or any line, call or return on that thread, means
  something caught it (possibly code out of scope, like ``pytest.raises``).  Under sys.monitoring a propagating exception is
  reported again in each caller (RAISE fires per frame); those repeats of
  the same object are folded into the first raise.  A frame that raises an
  exception again after handling it (a bare ``raise``, a ``finally``) has
  an EXCEPTION event there, right before its UNWIND: the walk back stops at
  it, and the exception is in flight from that step on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..recorder import schema
from .values import Value

if TYPE_CHECKING:
    from .recording import Act, Recording

#: Version of the JSON shapes of docs/json.md (its history is there).
JSON_SCHEMA_VERSION = 2

# INDEXED BY: left to itself SQLite takes bindings_name for the latest
# binding and walks back through the same name's bindings in every other
# frame (8.7 ms instead of 0.2 ms at the end of a million-event film).
LOCALS_SQL = """
WITH RECURSIVE nm(name) AS (
    SELECT (SELECT min(name) FROM bindings WHERE frame = ?1)
    UNION ALL
    SELECT (SELECT min(name) FROM bindings WHERE frame = ?1 AND name > nm.name) FROM nm WHERE nm.name IS NOT NULL
)
SELECT nm.name,
       (SELECT coalesce(b.value, 0) FROM bindings b INDEXED BY bindings_frame
        WHERE b.frame = ?1 AND b.name = nm.name AND b.step <= ?2
        ORDER BY b.step DESC LIMIT 1),
       (SELECT min(b.step) FROM bindings b WHERE b.frame = ?1 AND b.name = nm.name)
FROM nm WHERE nm.name IS NOT NULL
"""


@dataclass
class Frame:
    """One frame of the stack at a step."""

    function: str
    file: str
    line: int
    node: str | None
    locals: dict[str, Value]
    frame: int
    act: int
    code: int

    def to_json(self) -> dict[str, Any]:
        return {"function": self.function, "file": self.file, "line": self.line, "node": self.node,
                "frame": self.frame, "locals": {k: v.to_json() for k, v in self.locals.items()}}


@dataclass
class Exc:
    """The exception in flight: its value and the step that raised it."""

    step: int
    value: Value

    def to_json(self) -> dict[str, Any]:
        out = self.value.to_json()
        out["step"] = self.step
        return out


@dataclass
class State:
    """The program state at one step; ``stack`` is innermost last."""

    test: str
    step: int
    time_ns: int
    kind: str
    thread: str
    task: str | None
    node: str | None
    stack: list[Frame]
    exception: Exc | None
    value: Value | None = None  # return value at a return/yield step, payload of a checkpoint
    last_step: int = 0

    @property
    def frame(self) -> Frame:
        return self.stack[-1]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema_version": JSON_SCHEMA_VERSION, "test": self.test, "step": self.step, "time_ns": self.time_ns,
            "kind": self.kind, "thread": self.thread, "task": self.task, "node": self.node,
            "stack": [f.to_json() for f in self.stack],
            "exception": self.exception.to_json() if self.exception else None,
        }
        if self.value is not None:
            out["value"] = self.value.to_json()
        return out


@dataclass
class Failure:
    """Where and how the test failed."""

    step: int
    outcome: str
    message: str
    exact: bool  # False when the recorder could not tie the failure to a raise
    phases: dict[str, str | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "outcome": self.outcome, "message": self.message, "exact": self.exact,
                "phases": self.phases}


def frame_locals(rec: "Recording", frame: int, step: int) -> dict[str, Value]:
    """Locals of ``frame`` as of ``step``, in the order they were first bound."""
    rows = [r for r in rec.binding_rows(frame, step) if r[1]]  # None: bound only later; 0: unbound (del)
    rows.sort(key=lambda r: (r[2], r[0]))
    out: dict[str, Value] = {}
    for name, vid, _first in rows:
        value = rec.value(vid, step)
        if value is not None:
            out[rec.name_text(name)] = value
    return out


def frame_values(rec: "Recording", frame: int, step: int, names: frozenset[str]) -> dict[str, Value]:
    """Only ``names`` of ``frame``'s locals as of ``step`` (the unbound ones
    left out): what a breakpoint condition reads at each candidate step,
    one indexed lookup per name instead of the whole frame."""
    ids = rec.name_ids()
    out: dict[str, Value] = {}
    for name in names:
        nid = ids.get(name)
        if nid is None:
            continue
        vid = rec.binding(frame, nid, step)
        if vid:
            value = rec.value(vid, step)
            if value is not None:
                out[name] = value
    return out


def frame_line(rec: "Recording", act: "Act", step: int) -> int:
    if rec.store is not None:
        found = rec.act_step(act.act, step + 1, False)
        return rec.store.event(found)[2] if found is not None else 0
    row = rec.q1("SELECT line FROM events WHERE act = ? AND step <= ? ORDER BY step DESC LIMIT 1", (act.act, step))
    return row[0] if row else 0


def exception_in_flight(rec: "Recording", step: int, thread: int) -> Exc | None:
    """See the module docstring for the rule."""
    found: tuple[int, int] | None = None  # (step, value id) of the earliest raise of this exception
    found_obj: Any = None
    unwound: set[int] = set()  # activations seen unwinding on the way back
    for s, kind, act, _line, vid in rec.walk(step, False):
        if rec.act(act).thread != thread:
            continue
        if kind == schema.UNWIND:
            unwound.add(act)
            continue
        if kind == schema.HANDLED and act in unwound:
            continue  # a cleanup handler (finally, except-as, with) that re-raised
        if kind == schema.EXCEPTION:
            obj = _obj_of(rec, vid)
            if found is None:
                found, found_obj = (s, vid), obj
                continue
            if vid == found[1] or (obj is not None and obj == found_obj):
                found = (s, vid)
                continue
        break
    if found is None:
        return None
    value = rec.value(found[1], step)
    return Exc(found[0], value or Value("?", "<unknown exception>"))


def _obj_of(rec: "Recording", vid: int | None) -> int | None:
    return rec.obj_of(vid)


def build_state(rec: "Recording", step: int) -> State:
    kind, act_id, line, time_ns, vid = rec.event_row(step)
    chain = rec.chain(act_id, step)
    stack = []
    for a in chain:
        code = a.code
        here = line if a.act == act_id else frame_line(rec, a, step)
        stack.append(Frame(
            function=rec.function(code), file=rec.file_of(code), line=here, node=rec.node(code, here),
            locals=frame_locals(rec, a.frame, step), frame=a.frame, act=a.act, code=code))
    inner = chain[-1]
    value = rec.value(vid, step) if vid is not None and kind != schema.EXCEPTION else None
    return State(
        test=rec.test_id, step=step, time_ns=time_ns, kind=rec.kind_name(kind),
        thread=rec.thread_name(inner.thread),
        task=rec.tasks.get(inner.task) if inner.task is not None else None,
        node=stack[-1].node, stack=stack, exception=exception_in_flight(rec, step, inner.thread),
        value=value, last_step=rec.last_step)


def failure(rec: "Recording") -> Failure | None:
    """The failure step: meta's ``failure_step`` when the recorder tied the
    failing exception to its raise; else the last exception raised; else
    the last step (a crash, or a failure raised outside recorded code)."""
    outcome = rec.outcome
    if outcome in ("passed", "skipped"):
        return None
    phases = {p: rec.meta.get(f"outcome_{p}") for p in ("setup", "call", "teardown")}
    message = rec.meta.get("failure", "") or ("the process died before the test finished"
                                               if outcome == "crashed" else "")
    text = rec.meta.get("failure_step", "")
    if text.isdigit() and rec.first_step <= int(text) <= rec.last_step:
        return Failure(int(text), outcome, message, True, phases)
    if rec.store is not None:
        found = next((s for s, kind, *_rest in rec.walk(rec.last_step, False) if kind == schema.EXCEPTION), None)
        row = (found,) if found is not None else None
    else:
        row = rec.q1("SELECT step FROM events WHERE kind = ? AND step >= ? ORDER BY step DESC LIMIT 1",
                     (schema.EXCEPTION, rec.first_step))
    step = row[0] if row else max(rec.last_step, rec.first_step)
    return Failure(step, outcome, message, False, phases)
