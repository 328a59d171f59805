"""Text output for people: the terminal's width, colour only on a terminal.

Colour follows https://no-color.org: never when ``NO_COLOR`` is set (to
anything non-empty), never when the stream is not a TTY.  Every line is cut
to the width with an ellipsis rather than wrapped, so tables stay tables.
The width is the terminal's (``shutil.get_terminal_size``, which honours
``$COLUMNS``) and 80 when the output is not a terminal, so piped output and
logs read the same everywhere.
"""

from __future__ import annotations

import ast
import os
import shutil
import textwrap
from typing import IO, TYPE_CHECKING, Any, Iterable

from .errors import UnknownNameError
from .runs import NOT_PASSED
from .values import Value, note, parse_path, walk

if TYPE_CHECKING:
    from .queries import Event, HistoryEntry
    from .recording import Recording
    from .runs import Run
    from .state import Frame, State

#: Width of output that does not go to a terminal.
WIDTH = 80


def term_width(stream: IO[str]) -> int:
    """The terminal's width when ``stream`` is one, else ``WIDTH``."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if not tty:
        return WIDTH
    return max(40, shutil.get_terminal_size((WIDTH, 24)).columns)

_CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "blue": "34",
          "magenta": "35", "cyan": "36"}


def use_colour(stream: IO[str]) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Style:
    """Wraps text in ANSI colour codes when enabled, and cuts lines to width."""

    def __init__(self, colour: bool, width: int = WIDTH) -> None:
        self.colour = colour
        self.width = width

    def __call__(self, text: str, *styles: str) -> str:
        if not self.colour or not styles:
            return text
        codes = ";".join(_CODES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"

    def cut(self, text: str, width: int | None = None) -> str:
        width = width or self.width
        text = text.replace("\n", "\\n").replace("\t", "    ")
        return text if len(text) <= width else text[: width - 1] + "…"


def fit(text: str, width: int) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def value_text(value: Value | dict[str, Any] | None) -> str:
    if value is None:
        return "<unbound>"
    form = value.to_json() if isinstance(value, Value) else value
    return str(form.get("repr", "?")) + note(form)


# -- state -------------------------------------------------------------------------

def source_window(rec: "Recording", code: int, line: int, before: int, after: int, st: Style,
                  first: int | None = None, last: int | None = None) -> list[str]:
    lines = rec.source_lines(code)
    if not lines:
        return [st(f"   (no source recorded for {rec.file_of(code)})", "dim")]
    lo = max(1, line - before) if first is None else max(1, first)
    hi = min(len(lines), line + after) if last is None else min(len(lines), last)
    out = []
    for n in range(lo, hi + 1):
        mark = "->" if n == line else "  "
        text = st.cut(f"{mark} {n:>4}  {lines[n - 1]}")
        out.append(st(text, "bold") if n == line else text)
    return out


def header(state: "State", frame: "Frame", st: Style, innermost: bool = True) -> list[str]:
    where = f"{frame.file}:{frame.line}"
    first = f"step {state.step}/{state.last_step}  {frame.function}  {where}"
    # the step's kind (a return, a call) belongs to the innermost frame; an
    # outer frame selected with u sits at its line, as in pdb
    if innermost and state.kind not in ("line",):
        first += f"  [{state.kind}]"
    if state.thread != "MainThread":
        first += f"  thread {state.thread}"
    if state.task:
        first += f"  task {state.task}"
    out = [st(st.cut(first), "bold")]
    if frame.node:
        out.append(st(st.cut(f"node {frame.node}"), "dim"))
    return out


def stop_display(rec: "Recording", state: "State", st: Style, frame_index: int | None = None,
                 failure_step: int | None = None) -> list[str]:
    """What the interactive session prints at each stop."""
    idx = len(state.stack) - 1 if frame_index is None else frame_index
    frame = state.stack[idx]
    innermost = idx == len(state.stack) - 1
    out = header(state, frame, st, innermost)
    if not innermost:
        out.append(st(f"(frame {idx + 1} of {len(state.stack)}, selected with u/d)", "dim"))
    if state.exception is not None:
        exc = state.exception
        out.append(st(st.cut(f"exception {value_text(exc.value)}  (raised at step {exc.step})"), "red"))
    if innermost and state.value is not None and state.kind in ("return", "yield"):
        out.append(st.cut(f"{state.kind} value: {value_text(state.value)}"))
    if innermost and state.value is not None and state.kind == "checkpoint":
        out.append(st.cut(f"checkpoint: {value_text(state.value)}"))
    out += source_window(rec, frame.code, frame.line, 2, 2, st)
    if failure_step is not None and state.step == failure_step:
        out += assertion_operands(rec, frame, st)
    return out


def assertion_operands(rec: "Recording", frame: "Frame", st: Style) -> list[str]:
    """The operands of a failing ``assert``, read from recorded locals."""
    if not frame.node or not frame.node.endswith(":assert"):
        return []
    row = rec.q1("SELECT first_line, last_line FROM nodes WHERE node_id = ?", (frame.node,))
    lines = rec.source_lines(frame.code)
    if row is None or not lines:
        return []
    text = textwrap.dedent("\n".join(lines[row[0] - 1: row[1]]))
    try:
        stmt = ast.parse(text).body[0]
    except (SyntaxError, IndexError):
        return []
    if not isinstance(stmt, ast.Assert):
        return []
    test = stmt.test
    if isinstance(test, ast.Compare):
        parts = [test.left, *test.comparators]
    elif isinstance(test, ast.BoolOp):
        parts = list(test.values)
    elif isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        parts = [test.operand]
    else:
        parts = [test]
    out = [st("operands:", "bold")]
    for part in parts:
        src = ast.get_source_segment(text, part) or "?"
        out.append(st.cut(f"  {src} = {operand_value(rec, part, src, frame)}"))
    return out


def operand_value(rec: "Recording", part: ast.AST, src: str, frame: "Frame") -> str:
    if isinstance(part, ast.Constant):
        return repr(part.value)
    if isinstance(part, ast.Call):
        name = part.func.attr if isinstance(part.func, ast.Attribute) else getattr(part.func, "id", None)
        returned = _returned_by(rec, frame, name) if name else None
        if returned is not None:
            return f"{value_text(returned[1])}  (returned at step {returned[0]})"
        return "(a call out of scope; its result was not recorded)"
    try:
        return value_text(lookup(frame, src))
    except UnknownNameError:
        return "(computed, not recorded: replay evaluates names and paths only)"


def _returned_by(rec: "Recording", frame: "Frame", name: str) -> tuple[int, Value] | None:
    """The value the latest call of ``name`` made from this activation returned."""
    codes = [c for c, v in rec.codes.items() if v[1] == name]
    if not codes:
        return None
    row = rec.q1(
        f"""SELECT e.step, e.value FROM activations a JOIN frames f ON f.frame = a.frame
            JOIN events e ON e.step = a.end_step
            WHERE a.parent = ? AND f.code IN ({','.join('?' * len(codes))}) AND e.kind = 3
            ORDER BY a.start_step DESC LIMIT 1""", (frame.act, *codes))
    if row is None:
        return None
    value = rec.value(row[1], row[0])
    return (row[0], value) if value is not None else None


def lookup(frame: "Frame", text: str) -> dict[str, Any]:
    """``p``'s evaluation: a name path over the frame's recorded locals."""
    path = parse_path(text)
    value = frame.locals.get(path.root)
    if value is None:
        known = ", ".join(frame.locals) or "none"
        raise UnknownNameError(f"no local {path.root!r} in {frame.function} at this step (locals: {known})")
    return walk(value.to_json(), path)


def pretty(form: dict[str, Any], st: Style, indent: int = 0, label: str = "") -> list[str]:
    """``pp``: a value form as an indented tree."""
    pad = "  " * indent
    head = f"{pad}{label}{form.get('type', '?')}"
    out = []
    items = form.get("items")
    entries = form.get("entries")
    fields = form.get("fields")
    args = form.get("args")
    if not any(isinstance(x, (list, dict)) and x for x in (items, entries, fields, args)):
        return [st.cut(f"{pad}{label}{form.get('repr', '?')}{note(form)}")]
    size = form.get("len")
    out.append(st.cut(head + (f" (len {size})" if size is not None else "") + note(form)))
    if isinstance(items, list):
        for i, item in enumerate(items):
            out += pretty(item, st, indent + 1, f"[{i}] ")
        if size is not None and size > len(items):
            out.append(f"{pad}  … {size - len(items)} more not recorded")
    if isinstance(entries, list):
        for pair in entries:
            if isinstance(pair, list) and len(pair) == 2:
                out += pretty(pair[1], st, indent + 1, f"{pair[0].get('repr', '?')}: ")
        if size is not None and size > len(entries):
            out.append(f"{pad}  … {size - len(entries)} more not recorded")
    if isinstance(args, list):
        for i, a in enumerate(args):
            out += pretty(a, st, indent + 1, f"args[{i}] ")
    if isinstance(fields, dict):
        for k, v in fields.items():
            out += pretty(v, st, indent + 1, f".{k} = ")
    return out


def where(state: "State", selected: int, st: Style) -> list[str]:
    out = []
    for i, f in enumerate(state.stack):
        mark = ">" if i == selected else " "
        out.append(st.cut(f"{mark} {i + 1:>2} {f.function}  {f.file}:{f.line}"))
        if f.node:
            out.append(st(st.cut(f"       {f.node}"), "dim"))
    return out


def locals_lines(frame: "Frame", st: Style) -> list[str]:
    if not frame.locals:
        return [f"(no locals recorded in {frame.function} at this step)"]
    width = min(20, max(len(k) for k in frame.locals))
    return [st.cut(f"{k:<{width}} = {value_text(v)}") for k, v in frame.locals.items()]


# -- tables ----------------------------------------------------------------------------

def event_lines(events: Iterable["Event"], st: Style, current: int | None = None) -> list[str]:
    out = []
    for e in events:
        mark = "->" if e.step == current else "  "
        loc = f"{e.file.rsplit('/', 1)[-1]}:{e.line}"
        text = f"{mark}{e.step:>8} {e.kind:<10} {fit(e.function, 22):<22} {fit(loc, 20):<20}"
        extra = ""
        if e.args:
            extra = "(" + ", ".join(f"{k}={v.repr}" for k, v in e.args.items()) + ")"
        elif e.value is not None:
            extra = value_text(e.value)
        if e.thread != "MainThread":
            extra = f"[{e.thread}] " + extra
        line = st.cut((text + " " + extra).rstrip())
        colour = {"exception": ("red",), "unwind": ("red",), "call": ("cyan",), "return": ("green",)}.get(e.kind, ())
        out.append(st(line, *colour) if e.step != current else st(line, "bold"))
    return out


def history_lines(entries: list["HistoryEntry"], st: Style) -> list[str]:
    """Step, function and value, then where; a frame column when one function
    owns the name in several frames (recursion), so the values of each call
    can be told apart."""
    frames: dict[str, set[int]] = {}
    for h in entries:
        frames.setdefault(h.function, set()).add(h.frame)
    recursive = any(len(f) > 1 for f in frames.values())
    out = []
    for h in entries:
        where = h.node or "?"
        frame = f"{'frame ' + str(h.frame):<11}" if recursive else ""
        pad = " " * len(frame)
        out.append(st.cut(f"{h.step:>8}  {fit(h.function, 18):<18} {frame}{value_text(h.value)}"))
        out.append(st(st.cut(f"{'':>8}  {'':<18} {pad}at {where}"), "dim"))
    return out


def flow_lines(flow: dict[str, Any], st: Style) -> list[str]:
    out = [st("calls (caller -> callee)", "bold")]
    for e in flow["calls"]:
        caller = e["caller"] or "<start>"
        counts = f"{e['calls']}"
        if e["resumes"]:
            counts += f" +{e['resumes']} resumes"
        out.append(st.cut(f"  {fit(caller, 28):<28} -> {fit(e['callee'], 28):<28} {counts:>12}"))
    out.append(st("threads", "bold"))
    for t in flow["threads"]:
        out.append(st.cut(f"  {fit(t['thread'], 40):<40} {t['activations']:>8} activations from step {t['first_step']}"))
    if flow["tasks"]:
        out.append(st("tasks", "bold"))
        for t in flow["tasks"]:
            out.append(st.cut(f"  {fit(t['task'], 40):<40} {t['activations']:>8} activations from step {t['first_step']}"))
    return out


def stats_lines(s: dict[str, Any], st: Style) -> list[str]:
    out = [st(st.cut(f"{s['test']}"), "bold"),
           f"  outcome        {s['outcome']}{'' if s['complete'] else ' (recording incomplete)'}",
           f"  events         {s['events']} (steps {s['first_step']}-{s['last_step']}, "
           f"{s['dropped_events']} dropped)",
           "  per kind       " + ", ".join(f"{k} {n}" for k, n in s["kinds"].items()),
           f"  frames         {s['frames']} ({s['activations']} activations), threads {s['threads']}, "
           f"tasks {s['tasks']}",
           f"  values         {s['values']} snapshots, {s['bindings']} bindings",
           f"  size           {s['bytes']} bytes, {s['bytes_per_event'] or 0} bytes/event",
           f"  node share     {s['node_share'] * 100:.1f}% of {s['line_events']} line events have a node",
           f"  recorder       {s['backend']}{_callbacks_note(s.get('callbacks'))} on Python {s['python']}, "
           f"strategy {s['strategy']}, "
           f"{s['recorder_faults']} faults"]
    return [st.cut(x) for x in out]


def _callbacks_note(callbacks: Any) -> str:
    """``(compiled)`` or ``(python)``; nothing for a recording that predates the key."""
    return f" ({callbacks})" if callbacks in ("compiled", "python") else ""


def size_text(n: int) -> str:
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _rel(path: Any) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return rel if not rel.startswith("../..") else str(path)


def run_lines(run: "Run", st: Style, failed_only: bool = False) -> list[str]:
    facts = run.facts
    reruns = sum(1 for t in run.tests if t.attempt)
    counted = f"{len(run.tests) - reruns} tests" + (f", {reruns} recorded reruns" if reruns else "")
    out = [st(st.cut(f"run {run.run_id}  python {facts.get('python', '?')}  {counted}"), "bold"),
           st(st.cut(f"  {_rel(run.path)}"), "dim")]
    # "interrupted" is wider than the other outcomes: the test id gives way;
    # a terminal wider than 80 columns gives the test id the room
    wide = max([8] + [len(t.outcome) for t in run.tests]) - 8
    id_width = 46 - wide + max(0, st.width - WIDTH)
    for t in run.tests:
        if failed_only and t.outcome not in NOT_PASSED:
            continue
        colour = {"failed": "red", "error": "red", "crashed": "red", "passed": "green",
                  "skipped": "yellow", "interrupted": "yellow"}.get(t.outcome, "")
        # a recorded rerun (--escope-on-failure) is named after its test, with its number
        tag = f" rerun {t.attempt}" if t.attempt else ""
        shown = fit(t.test_id, id_width - len(tag)) + tag
        line = (f"  {t.outcome:<{8 + wide}} {shown:<{id_width}} {t.events:>9} ev "
                f"{size_text(t.bytes):>7}")
        out.append(st(st.cut(line), colour) if colour else st.cut(line))
        if t.recording:
            rel = os.path.relpath(t.recording, run.path) if str(t.recording).startswith(str(run.path)) \
                else _rel(t.recording)
            out.append(st(st.cut(f"           {rel}"), "dim"))
        elif facts.get("mode") == "on-failure":
            out.append(st("           (ran unrecorded)", "dim"))
        else:
            out.append(st("           (recording not kept)", "dim"))
    return out
