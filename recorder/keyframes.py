"""Key frames: the live state at the start of each chunk, for the replayer.

A state at step S (a stack, each frame's locals, each local's newest
snapshot) depends on rows written anywhere before S.  So that a replayer
can rebuild it from the chunk holding S alone, the writer thread keeps the
live state as it packs chunks and writes it, once per chunk, into the
``keyframes`` table beside the chunk (docs/recording-format.md,
"keyframes"): the activations on the stack, every binding of their
frames, the newest snapshot of each object those bindings point at, and
where the ids first used in the chunk start (so an activation, a frame or
a value is found by bisection, never by a scan).

Everything here reads rows the writer has already made for the chunk: it
runs on the writer thread, never on the test's.
"""

from __future__ import annotations

import json
import zlib
from typing import Any


class KeyFrames:
    """The live state carried from chunk to chunk, and the row each chunk adds.

    Memory stays bounded by what is live: the bindings of the frames on the
    stack, the rows of their values, and one value id per object seen.
    """

    def __init__(self) -> None:
        #: open activation -> its frame
        self.live_acts: dict[int, int] = {}
        #: open activation -> its row: act, frame, parent, thread, task,
        #: depth, start step, and the code its frame runs
        self.act_rows: dict[int, list] = {}
        #: frame -> code, for the frames made while their activation is open
        self.frame_codes: dict[int, int] = {}
        #: frame -> name -> [first bound step, latest step, value id], for
        #: the frames made while they have stayed on the stack since
        self.bindings: dict[int, dict[int, list]] = {}
        #: object -> its newest snapshot's value id
        self.newest: dict[int, int] = {}
        #: value id -> object, for the values live bindings point at
        self.obj_of: dict[int, int] = {}
        #: value id -> its ``vals`` row, for the values live bindings point
        #: at and the newest snapshots of their objects
        self.rows: dict[int, tuple] = {}

    def keyframe(self) -> dict[str, Any]:
        """The state at the start of the next chunk, as JSON-ready lists."""
        acts = [self.act_rows[act] for act in sorted(self.live_acts) if act in self.act_rows]
        carried = sorted(set(self.live_acts.values()) & self.bindings.keys())
        binding_rows: list[list] = []
        objs: dict[int, int] = {}
        for frame in carried:
            for name, (first, step, vid) in self.bindings.get(frame, {}).items():
                binding_rows.append([frame, name, first, step, vid])
                obj = self.obj_of.get(vid) if vid is not None else None
                if obj is not None and obj in self.newest:
                    objs[obj] = self.newest[obj]
        wanted = {row[4] for row in binding_rows} | set(objs.values())
        vals = [_json_ready(self.rows[vid]) for vid in sorted(v for v in wanted if v in self.rows)]
        return {"acts": acts, "frames": carried, "bindings": binding_rows, "objs": sorted(objs.items()),
                "vals": vals}

    def absorb(self, frames: list[tuple], acts: list[tuple], ends: list[tuple], bindings: list[tuple],
               vals: list[tuple]) -> None:
        """Take one chunk's rows (table column order) into the live state."""
        rows = self.rows
        for row in vals:
            rows[row[0]] = row
            obj = row[1]
            if obj is not None:
                self.newest[obj] = row[0]
                self.obj_of[row[0]] = obj
        for row in frames:
            self.bindings[row[0]] = {}
            self.frame_codes[row[0]] = row[1]
        for act, frame, parent, thread, task, depth, start, end in acts:
            if end is None:
                self.live_acts[act] = frame
                code = self.frame_codes.get(frame)
                if code is not None:
                    self.act_rows[act] = [act, frame, parent, thread, task, depth, start, code]
        for act, _end in ends:
            self.live_acts.pop(act, None)
            self.act_rows.pop(act, None)
        for frame, name, step, vid in bindings:
            names = self.bindings.get(frame)
            if names is None:
                continue  # a frame that left the stack: not carried any more
            known = names.get(name)
            if known is None:
                names[name] = [step, step, vid]
            else:
                known[1] = step
                known[2] = vid
        # only frames on the stack are carried: a generator's frame, once
        # suspended, is read from the chunks that bound its names
        live_frames = set(self.live_acts.values())
        for frame in [f for f in self.bindings if f not in live_frames]:
            del self.bindings[frame]
        for frame in [f for f in self.frame_codes if f not in live_frames]:
            del self.frame_codes[frame]
        bound = {b[2] for names in self.bindings.values() for b in names.values()}
        self.obj_of = {vid: obj for vid, obj in self.obj_of.items() if vid in bound}
        keep = bound | {self.newest[obj] for obj in self.obj_of.values() if obj in self.newest}
        self.rows = {vid: row for vid, row in rows.items() if vid in keep}


def _json_ready(row: tuple) -> list:
    """A ``vals`` row with its detail as JSON text, as the chunk holds it."""
    out = list(row)
    if out[5] is not None and type(out[5]) is not str:
        out[5] = json.dumps(out[5], separators=(",", ":"), ensure_ascii=False)
    return out


def index_row(frames: list[tuple], acts: list[tuple], ends: list[tuple], vals: list[tuple],
              keyframe: dict[str, Any]) -> tuple:
    """``keyframes`` columns after ``chunk``: first_act, first_frame,
    first_odd_value, first_even_value, act_ends, data."""
    odd = [row[0] for row in vals if row[0] % 2]
    even = [row[0] for row in vals if not row[0] % 2]
    return (min((r[0] for r in acts), default=None), min((r[0] for r in frames), default=None),
            min(odd, default=None), min(even, default=None),
            json.dumps([[r[0], r[1]] for r in ends], separators=(",", ":")),
            zlib.compress(json.dumps(keyframe, separators=(",", ":")).encode(), 1))
