"""``escope diff A B``: the first moment two recordings of one test part.

What the user names is turned into two recording files here (the forms of
docs/replay.md, "escope diff"); ``divergence`` aligns the films and this
module prints the result, as text that fits the terminal and ends with the
two ``escope replay ... --step N`` commands that open each side at the
divergence, or as the JSON of docs/json.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import apsw

from .divergence import DiffResult, Place, diff
from .errors import AmbiguousTestError, UnknownTestError, UsageError
from .film_reader import FilmReader
from .opening import connect_readonly
from .render import value_text
from .runs import NOT_PASSED, Run, TestEntry, find_escope_dir, match_tests, resolve_run, resolve_test
from .state import JSON_SCHEMA_VERSION

if TYPE_CHECKING:
    from .cli import Context

__all__ = ["add_diff", "cmd_diff", "Side", "resolve_sides"]

_FORMS = "escope diff TEST --run R1 --run R2, escope diff A.sqlite B.sqlite, or escope diff TEST (a flaky test)"
#: Later divergences listed by place in text output.
PLACES_SHOWN = 8


@dataclass
class Side:
    """One recording to compare, and how to name it in a replay command."""

    path: Path
    entry: TestEntry | None
    ref: str  # what goes after ``escope replay`` (test or path, and --run)


def _shown_path(path: Path) -> str:
    """A path as short as it stays usable from here."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return rel if not rel.startswith(os.pardir) else str(path.resolve())


def _by_path(path: Path) -> Side:
    return Side(path, None, shlex.quote(_shown_path(path)))


def _attempts(run: Run, test_id: str) -> dict[str, int]:
    """Recording (relative path) -> attempt, from the run index's ``attempt``
    column; an index without the column is attempt 0 everywhere.  The index
    was checked by ``read_run`` before; it is read the same defensive way."""
    index = run.path / "index.sqlite"
    for immutable in (False, True):  # a live run keeps its index in WAL mode
        try:
            conn = connect_readonly(index, immutable=immutable)
            try:
                columns = {r[1] for r in conn.execute("PRAGMA table_info(tests)")}
                if "attempt" not in columns:
                    return {}
                rows = conn.execute("SELECT recording, attempt FROM tests WHERE test_id = ? "
                                    "AND recording IS NOT NULL", (test_id,)).fetchall()
            finally:
                conn.close()
        except apsw.Error:
            continue
        return {str(r[0]): r[1] for r in rows if type(r[1]) is int}
    return {}


def _flaky(test: str, run_spec: str | None, base: Path | None, carry: str) -> tuple[Side, Side]:
    """A single test id: its first failing recorded run against its last
    passing one, among the rows of that test in one run (the session's own
    run and its recorded reruns)."""
    run = resolve_run(run_spec, base)
    listing = "escope list" + (f" --run {shlex.quote(run_spec)}" if run_spec else "") + carry
    # not resolve_test: the session's own row of a rerun test has no recording
    matches = match_tests(run, test)
    if not matches:
        raise UnknownTestError(f"no test matching {test!r} in run {run.run_id}", fix=f"see the tests with: {listing}")
    if len(matches) > 1:
        raise AmbiguousTestError(f"{test!r} matches {len(matches)} tests in run {run.run_id}",
                                 [t.test_id for t in matches], fix="name one of them")
    entry = matches[0]
    attempts = _attempts(run, entry.test_id)

    def attempt(t: TestEntry) -> int:
        if t.recording is None:
            return 0
        try:
            key = str(t.recording.relative_to(run.path))
        except ValueError:
            key = str(t.recording)
        return attempts.get(key, 0)

    rows = sorted((t for t in run.tests if t.test_id == entry.test_id and t.recording is not None), key=attempt)
    failing = [t for t in rows if t.outcome in NOT_PASSED]
    passing = [t for t in rows if t.outcome == "passed"]
    if not failing or not passing:
        have = ", ".join(sorted({t.outcome for t in rows})) or "none"
        raise UsageError(
            f"test {entry.test_id} has no failing and passing recording side by side in run {run.run_id} "
            f"(recorded outcomes: {have})",
            fix=f"compare two runs: escope diff {shlex.quote(entry.test_id)} --run R1 --run R2 (runs: {listing})")
    a, b = failing[0], passing[-1]
    assert a.recording is not None and b.recording is not None
    return Side(a.recording, a, shlex.quote(_shown_path(a.recording))), \
        Side(b.recording, b, shlex.quote(_shown_path(b.recording)))


def resolve_sides(tests: list[str], runs: list[str], escope_dir: str | None) -> tuple[Side, Side]:
    """The two recordings the command line names (see ``_FORMS``)."""
    if not tests or len(tests) > 2:
        raise UsageError("diff takes one or two tests or recordings", fix=f"e.g. {_FORMS}")
    if len(runs) > 2:
        raise UsageError("diff takes at most two --run", fix="one run per side: --run R1 --run R2")
    base = find_escope_dir(escope_dir) if escope_dir else None
    carry = f" --escope-dir {shlex.quote(escope_dir)}" if escope_dir else ""
    if len(runs) == 2:
        ta, tb = (tests[0], tests[0]) if len(tests) == 1 else (tests[0], tests[1])
        sides = []
        for label, t, r in (("A", ta, runs[0]), ("B", tb, runs[1])):
            if Path(t).suffix == ".sqlite" and Path(t).is_file():
                raise UsageError(f"{t} is a recording file, and --run names a run",
                                 fix="pass a test id with --run R1 --run R2, or two .sqlite files without --run")
            try:
                sides.append(_side(t, r, base, carry))
            except UnknownTestError as exc:
                exc.problem = f"{label}: {exc.problem}"
                raise
        return sides[0], sides[1]
    run = runs[0] if runs else None
    if len(tests) == 2:
        return _side(tests[0], run, base, carry), _side(tests[1], run, base, carry)
    path = Path(tests[0])
    if path.is_file():
        raise UsageError(f"only one recording given ({tests[0]})", fix=f"give two: {_FORMS}")
    return _flaky(tests[0], run, base, carry)


def _side(test: str, run: str | None, base: Path | None, carry: str) -> Side:
    path, entry = resolve_test(test, run, base)
    if entry is None:
        return _by_path(path)
    return Side(path, entry, shlex.quote(entry.test_id) + (f" --run {shlex.quote(run)}" if run else "") + carry)


def _open_pair(a: Side, b: Side) -> tuple[FilmReader, FilmReader]:
    fa = FilmReader(a.path)
    try:
        fb = FilmReader(b.path)
    except BaseException:
        fa.close()
        raise
    if fa.test_id != fb.test_id:
        fa.close()
        fb.close()
        raise UsageError(f"A is a recording of {fa.test_id} and B of {fb.test_id}; diff compares two "
                         f"recordings of one test", fix="name the same test on both sides, e.g. "
                                                        "escope diff TEST --run R1 --run R2")
    return fa, fb


# -- output --------------------------------------------------------------------------

def to_json(fa: FilmReader, fb: FilmReader, a: Side, b: Side, result: DiffResult) -> dict[str, Any]:
    first = result.first
    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "a": {"recording": str(a.path), "outcome": fa.outcome},
        "b": {"recording": str(b.path), "outcome": fb.outcome},
        "first_divergence": {
            "kind": first.kind if first else "none",
            "a": first.a.to_json() if first and first.a else None,
            "b": first.b.to_json() if first and first.b else None,
            "names": first.names if first else {},
        },
        "divergences": result.total,
    }


def _place_line(p: Place) -> str:
    return f"{p.file}:{p.line} in {p.function}" + (f": {p.source}" if p.source else "")


def _parted_after(film: FilmReader, place: Place | None) -> str:
    """The statement both runs ran last before a control divergence (the
    previous event of the frame A went on in), as ``file:line: source``."""
    if place is None:
        return ""
    event = film.event(place.step)
    if event is None:
        return ""
    act = event[1]
    prev = film.last_event_of(act, place.step)
    if prev is None:
        return ""
    code = film.code_of_act(act)
    source = film.source_line(code, prev[1])
    return f"{place.file}:{prev[1]}" + (f": {source}" if source else "")


def _stack_text(p: Place) -> str:
    # line 0: the caller's line lies in steps --escope-max-events dropped
    return " > ".join(f"{fn} ({Path(f).name}:{ln})" if ln else f"{fn} ({Path(f).name})" for fn, f, ln in p.stack)


def text_lines(ctx: "Context", fa: FilmReader, fb: FilmReader, a: Side, b: Side, result: DiffResult) -> list[str]:
    st = ctx.st
    first = result.first
    out = []
    for label, film, side, place in (("A", fa, a, first.a if first else None),
                                     ("B", fb, b, first.b if first else None)):
        where = f", step {place.step}" if place else ""
        head = f"{label}: {film.outcome}{where}: "
        out.append(f"{label}: {st(film.outcome, 'green' if film.outcome == 'passed' else 'red')}{where}: "
                   + st.cut(side.ref, max(20, st.width - len(head))))
    if first is None:
        out.append(st.cut(f"no divergence: the two films of {fa.test_id} ran the same statements with the same values"))
        return out
    out.append(st(st.cut(f"first divergence ({'control flow' if first.kind == 'control' else 'value'}) in "
                         f"{fa.test_id}" + (f", thread {first.a.thread}" if first.a and first.a.thread else "")),
                  "bold"))
    if first.kind == "value" and first.a is not None:
        out.append(st.cut(f"  at {_place_line(first.a)}"))
    else:
        parted = _parted_after(fa, first.a)
        if parted:
            out.append(st.cut(f"  both ran {parted}, then"))
        for label, p in (("A", first.a), ("B", first.b)):
            out.append(st.cut(f"  {label} ran {_place_line(p)}" if p else f"  {label} ended here"))
    if first.names:
        label = "  values that differ:" if first.kind == "value" else "  locals that differ in the shared frame:"
        out.append(label)
        width = max(len(n) for n in first.names)
        for name, pair in first.names.items():
            note = " (differs on every run)" if name in first.volatile else ""
            out.append(st.cut(f"    {name:<{width}}  A {value_text(pair['a']) if pair['a'] else '<unbound>'}{note}"))
            out.append(st.cut(f"    {'':<{width}}  B {value_text(pair['b']) if pair['b'] else '<unbound>'}"))
    for label, p in (("A", first.a), ("B", first.b)):
        if p is not None and p.stack:
            out.append(st(st.cut(f"  stack {label}: {_stack_text(p)}"), "dim"))
    later = result.total - 1
    if later:
        places = ", by place (film A):" if result.later else "."
        out.append(st.cut(f"then {later} more divergence{'s' if later != 1 else ''}{places}"))
        for g in result.later[:PLACES_SHOWN]:
            out.append(st.cut(f"  {g.count:>6}  {g.kind:<7} {g.file}:{g.line} in {g.function}"))
        rest = len(result.later) - PLACES_SHOWN
        if rest > 0:
            out.append(st.cut(f"  and {rest} more place{'s' if rest != 1 else ''}"))
    else:
        out.append("no later divergence")
    return out


def cmd_diff(ctx: "Context") -> int:
    args = ctx.args
    runs = list(getattr(args, "runs", None) or [])
    if not runs and getattr(args, "run", None):
        runs = [args.run]
    tests = [args.a] + ([args.b] if args.b is not None else [])
    a, b = resolve_sides(tests, runs, getattr(args, "escope_dir", None))
    fa, fb = _open_pair(a, b)
    try:
        result = diff(fa, fb)
        if args.json:
            ctx.json(to_json(fa, fb, a, b, result))
            return 0
        ctx.say(*text_lines(ctx, fa, fb, a, b, result))
        first = result.first
        for label, side, place in (("A", a, first.a if first else None), ("B", b, first.b if first else None)):
            step = f" --step {place.step}" if place else ""
            ctx.hint(f"open {label}" + (" there" if place else ""), f"escope replay {side.ref}{step}")
    finally:
        fa.close()
        fb.close()
    return 0


def add_diff(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("diff", help="the first divergence of two recordings of one test (flaky tests)")
    p.add_argument("a", metavar="A", help="a recording (.sqlite) or a test id (with --run R1 --run R2: that "
                                         "test in both runs; alone: a flaky test's failing and passing recordings)")
    p.add_argument("b", nargs="?", metavar="B", help="the other recording or test id")
    p.add_argument("--run", dest="runs", action="append", default=argparse.SUPPRESS, metavar="RUN",
                   help="run id, run directory or archive; give it twice, once per side")
    p.add_argument("--escope-dir", default=argparse.SUPPRESS, metavar="DIR", help="escope directory")
    p.add_argument("--json", action="store_true", help="print JSON (see: escope help json)")
    p.add_argument("--no-color", action="store_true", default=argparse.SUPPRESS, help="never use colour")
    return p
