"""``escope export TEST --html``: one self-contained HTML page, the film of a test.

The page needs no server and no network: its script, style and data are
inline.  The data is a compact JSON document in a ``<script
type="application/json">`` block, column-oriented so the browser parses it
fast, and the page's script rebuilds any state from it the way
``replay.state`` does from SQLite:

* ``steps``: per step of the window its kind, activation and line (and the
  value of return, exception and checkpoint steps) -- the scrubber, the
  call stack and the current line come from this table alone;
* ``acts``: each activation's frame, parent, code, thread and depth;
* ``bindings``: (frame, name, step, value) sorted by frame, name and step,
  so the locals of a frame at a step are one binary search per name;
* ``vals``: type, text, object id and step of each value row, so a mutable
  object shows its newest snapshot at or before the step (aliases agree).

A long film does not fit in one page, so the page holds a *window* of at
most ``max_steps`` steps around the failure (three quarters before it),
plus, for frames alive when the window opens, their bindings from before
it (only the newest per name).  Value texts longer than ``max_repr`` are
cut.  When the page would still be larger than ``max_bytes`` the window is
halved.  docs/performance.md ("HTML film") has the measured limits.

Recorded texts are untrusted: the page puts them into the DOM with
``textContent`` only, and the JSON escapes ``<``, ``>`` and ``&`` so no
text can end the script block.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..recorder import schema
from .recording import Recording
from .runs import TestEntry

if TYPE_CHECKING:
    from .cli import Context

FILM_DATA_VERSION = 1
MAX_STEPS = 100_000
MAX_REPR = 300
MAX_BYTES = 24 << 20


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


class _Dense:
    """Maps sparse ids (SQLite rowids) to 0..n-1 in first-seen order."""

    def __init__(self) -> None:
        self.index: dict[Any, int] = {}

    def __call__(self, key: Any) -> int:
        i = self.index.get(key)
        if i is None:
            i = self.index[key] = len(self.index)
        return i


def window(rec: Recording, max_steps: int) -> tuple[int, int]:
    """The steps the page holds: everything, or ``max_steps`` around the failure."""
    lo, hi = rec.first_step, rec.last_step
    if hi - lo + 1 <= max_steps:
        return lo, hi
    fail = rec.failure()
    centre = fail.step if fail else hi
    start = max(lo, centre - (max_steps * 3) // 4)
    end = min(hi, start + max_steps - 1)
    start = max(lo, end - max_steps + 1)
    return start, end


def film_data(rec: Recording, max_steps: int = MAX_STEPS, max_repr: int = MAX_REPR) -> dict[str, Any]:
    """The page's data for the window of ``max_steps`` steps (see module doc)."""
    lo, hi = window(rec, max_steps)
    fail = rec.failure()
    # a schema-3 film is read where it lies (film_rows), an older one as rows
    film = rec.film_rows()
    # activations alive in the window (this includes every ancestor of one)
    acts = film.window_acts(lo, hi) if film is not None else rec.q("SELECT a.act, a.frame, a.parent, a.thread, a.depth, f.code, a.start_step FROM activations a "
                 "JOIN frames f ON f.frame = a.frame WHERE a.start_step <= ? AND coalesce(a.end_step, ?) >= ? "
                 "ORDER BY a.act", (hi, hi, lo))
    act_ix, frame_ix, code_ix, file_ix, thread_ix, name_ix, val_ix = (_Dense() for _ in range(7))
    acts_out: dict[str, list[int]] = {"frame": [], "parent": [], "code": [], "thread": [], "depth": [], "line0": []}
    act_rows = {r[0]: r for r in acts}
    for r in acts:
        act_ix(r[0])
    for r in acts:
        act, frame, parent, thread, depth, code, start = r
        acts_out["frame"].append(frame_ix(frame))
        acts_out["parent"].append(act_ix.index.get(parent, -1) if parent is not None else -1)
        acts_out["code"].append(code_ix(code))
        acts_out["thread"].append(thread_ix(thread))
        acts_out["depth"].append(depth)
        line0 = 0
        if start < lo:  # its line when the window opens, for frames below the window's first step
            if film is not None:
                line0 = film.line_before(act, lo) or 0
            else:
                row = rec.q1("SELECT line FROM events WHERE act = ? AND step < ? ORDER BY step DESC LIMIT 1",
                             (act, lo))
                line0 = row[0] if row else 0
        acts_out["line0"].append(line0)
    steps: dict[str, list[int]] = {"kind": [], "act": [], "line": []}
    step_vals: list[list[int]] = []
    pending_vals: list[tuple[list[int], int]] = []
    events = (itertools.takewhile(lambda e: e[0] <= hi, rec.walk(lo, True)) if film is not None and lo <= hi
              else rec.iterate("SELECT step, kind, act, line, value FROM events WHERE step BETWEEN ? AND ? "
                               "ORDER BY step", (lo, hi)))
    for step, kind, act, line, vid in events:
        if act not in act_rows:  # cannot happen in a sound recording; keep the table dense anyway
            act = next(iter(act_rows)) if act_rows else act
        steps["kind"].append(kind)
        steps["act"].append(act_ix.index.get(act, 0))
        steps["line"].append(line)
        if vid is not None:
            row = [step - lo, vid]
            step_vals.append(row)
            pending_vals.append((row, 1))
    # bindings: everything in the window, plus the newest before it per name
    # for frames that were already alive when the window opens
    frames = set(frame_ix.index)
    binds: list[tuple[int, int, int, int | None]] = []
    if film is not None:
        binds = [b for b in film.window_bindings(rec.first_step if lo == rec.first_step else lo, hi)
                 if b[0] in frames]
        if lo != rec.first_step:
            for f in sorted(frames, key=_k):
                first = film.frame_first(f)
                if first is not None and first < lo:
                    binds.extend(film.latest_bindings(f, lo))
    elif lo == rec.first_step:
        binds = [b for b in rec.q("SELECT frame, name, step, value FROM bindings WHERE step <= ?", (hi,))
                 if b[0] in frames]
    else:
        binds = [b for b in rec.q("SELECT frame, name, step, value FROM bindings WHERE step BETWEEN ? AND ?",
                                  (lo, hi)) if b[0] in frames]
        older = [f for f, in rec.q("SELECT frame FROM frames WHERE first_step < ?", (lo,)) if f in frames]
        for f in older:
            for name, in rec.q("SELECT DISTINCT name FROM bindings WHERE frame = ?", (f,)):
                row = rec.q1("SELECT frame, name, step, value FROM bindings WHERE frame = ? AND name = ? "
                             "AND step < ? ORDER BY step DESC LIMIT 1", (f, name, lo))
                if row is not None:
                    binds.append(row)
    binds.sort(key=lambda b: (frame_ix.index[b[0]], _k(b[1]), _k(b[2])))
    b_out: dict[str, list[int]] = {"frame": [], "name": [], "step": [], "value": []}
    vids: set[int] = {v for _, v in step_vals}
    for f, name, step, vid in binds:
        b_out["frame"].append(frame_ix.index[f])
        b_out["name"].append(name_ix(name))
        b_out["step"].append(step)
        b_out["value"].append(vid if vid is not None else -1)
        if vid is not None:
            vids.add(vid)
    # values: the rows referenced, and the snapshots of their objects up to hi
    rows: dict[int, tuple] = {}
    objs: set[int] = set()
    for vid in sorted(vids, key=_k):
        r = (film.val_row(vid) if film is not None
             else rec.q1("SELECT value, obj, step, type, repr, flags FROM vals WHERE value = ?", (vid,)))
        if r is not None:
            rows[vid] = r
            if r[1] is not None:
                objs.add(r[1])
    for obj in sorted(objs, key=_k):
        if film is not None:
            for r in film.window_snapshots(obj, lo, hi):
                rows.setdefault(r[0], r)
            r = film.snapshot_before(obj, lo)
        else:
            for r in rec.q("SELECT value, obj, step, type, repr, flags FROM vals WHERE obj = ? AND step BETWEEN ? "
                           "AND ?", (obj, lo, hi)):
                rows.setdefault(r[0], r)
            r = rec.q1("SELECT value, obj, step, type, repr, flags FROM vals WHERE obj = ? AND step < ? "
                       "ORDER BY step DESC, value DESC LIMIT 1", (obj, lo))
        if r is not None:
            rows.setdefault(r[0], r)
    obj_ix = _Dense()
    type_ix = _Dense()
    v_out: dict[str, list[Any]] = {"type": [], "repr": [], "obj": [], "step": [], "flags": []}
    for vid in sorted(rows, key=_k):
        _, obj, step, tname, text, flags = rows[vid]
        val_ix(vid)
        v_out["type"].append(type_ix(tname))
        v_out["repr"].append(_cut(text, max_repr))
        v_out["obj"].append(obj_ix(obj) if obj is not None else -1)
        v_out["step"].append(step)
        v_out["flags"].append(flags or 0)
    b_out["value"] = [val_ix.index.get(v, -1) if v >= 0 else -1 for v in b_out["value"]]
    for row in step_vals:
        row[1] = val_ix.index.get(row[1], -1)
    # code objects, files (with their embedded sources) and the node of each line
    codes_out = []
    for code in code_ix.index:
        c = rec.codes.get(code)
        file = c[0] if c else -1
        codes_out.append([file_ix(file), c[2] if c else "?"])
    files_out = []
    for file in file_ix.index:
        code_of_file = next((k for k, c in rec.codes.items() if c[0] == file), None)
        lines = rec.source_lines(code_of_file) if code_of_file is not None else []
        nodes = {str(line): node for line, node in rec.q(
            "SELECT l.line, n.node_id FROM lines l JOIN nodes n ON n.node = l.node WHERE l.file = ?", (file,))}
        files_out.append({"path": rec.files.get(file, "?"), "source": "\n".join(lines) if lines else None,
                          "nodes": nodes})
    names = {n: t for n, t in rec.q("SELECT name, text FROM names")}
    threads_out = [rec.thread_name(t) for t in thread_ix.index]
    return {
        "version": FILM_DATA_VERSION, "test": rec.test_id, "outcome": rec.outcome,
        "failure": fail.to_json() if fail else None,
        "first": rec.first_step, "last": rec.last_step, "lo": lo, "hi": hi, "dropped": rec.dropped,
        "kinds": {str(k): v for k, v in schema.KIND_NAMES.items()},
        "files": files_out, "codes": codes_out, "threads": threads_out,
        "names": [names.get(n, f"?{n}") for n in name_ix.index],
        "types": list(type_ix.index),
        "acts": acts_out, "steps": steps, "step_values": step_vals,
        "bindings": b_out, "vals": v_out, "max_repr": max_repr,
    }


def _k(value: Any) -> tuple:
    """A sort key for a column value of any type: a crafted recording can
    mix text, blobs and numbers in one column, which plain ``sorted`` refuses."""
    if isinstance(value, (int, float)):
        return (0, value, "")
    return (1, 0, str(value))


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _json_for_script(data: dict[str, Any]) -> str:
    """JSON that cannot end (or confuse) the ``<script>`` block it sits in."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), default=_jsonable)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(data: dict[str, Any]) -> str:
    from html import escape
    from .film_page import PAGE
    return (PAGE.replace("{{TITLE}}", escape(f"escope film: {data['test']}"))
                .replace("{{DATA}}", _json_for_script(data)))


def export_html(path_or_test: str | os.PathLike[str] | None, out: Path, *, run: str | None = None,
                escope_dir: str | None = None, entry: TestEntry | None = None,
                max_steps: int = MAX_STEPS, max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """Write the film of one test to ``out``; returns facts for the caller to print."""
    with Recording.open(path_or_test, run=run, escope_dir=escope_dir) as rec:
        if entry is not None and rec.entry is None:
            rec.entry = entry
        steps = max_steps
        while True:
            data = film_data(rec, steps)
            page = render_html(data)
            if len(page) <= max_bytes or steps <= 1000:
                break
            steps //= 2
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".escope-film-", suffix=".part", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(page)
        os.chmod(tmp, 0o600)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {"path": str(out), "bytes": len(page.encode("utf-8")), "test": data["test"],
            "lo": data["lo"], "hi": data["hi"], "first": data["first"], "last": data["last"]}


def cmd_export(ctx: "Context") -> int:
    a = ctx.args
    if not a.html:
        from .errors import UsageError
        raise UsageError("export writes HTML only for now", fix="add --html: escope export TEST --html -o FILE")
    out = Path(a.output) if a.output else None
    if out is None:
        with ctx.open(a.test) as rec:
            out = Path(rec.path.stem + ".html")
    facts = export_html(a.test, out, run=getattr(a, "run", None), escope_dir=getattr(a, "escope_dir", None),
                        max_steps=a.max_steps)
    from .render import size_text
    span = f"steps {facts['lo']}-{facts['hi']}"
    if (facts["lo"], facts["hi"]) != (facts["first"], facts["last"]):
        span += f" of {facts['first']}-{facts['last']} (a window around the failure)"
    ctx.say(f"wrote {facts['path']} ({size_text(facts['bytes'])}, {span})")
    opener = {"darwin": "open", "win32": "start"}.get(sys.platform, "xdg-open")
    ctx.hint("open it in any browser (it needs no network)", f"{opener} {shlex.quote(str(facts['path']))}")
    return 0


def add_export(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from .cli import _common, _int
    p = sub.add_parser("export", help="a self-contained HTML page: the film of a test")
    _common(p, json_opt=False)
    p.add_argument("--html", action="store_true", help="write HTML (the only format so far)")
    p.add_argument("-o", "--output", metavar="FILE", help="output file (default: <recording name>.html)")
    p.add_argument("--max-steps", type=_int, default=MAX_STEPS, metavar="N",
                   help=f"steps the page holds, a window around the failure (default {MAX_STEPS})")
    return p
