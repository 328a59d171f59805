"""Breakpoint searches read a chunk at a time (replay/film_search.py) and
must stop exactly where a plain search, event by event from the film's
start, stops: several breakpoints at once, conditions that hold sometimes,
never, over two names or over a list the test mutates, hit conditions, both
directions, from the film's ends and from each side of every chunk
boundary."""

from __future__ import annotations

import bisect
import random
import shutil
import sqlite3
import zlib
from pathlib import Path
from typing import Any

import pytest

from pytest_escope.recorder import schema
from pytest_escope.replay import navigation as nav
from pytest_escope.replay.conditions import Condition
from pytest_escope.replay.dap_breakpoints import Breakpoints, HitCondition
from pytest_escope.replay.errors import RecordingError
from pytest_escope.replay.opening import open_recording
from pytest_escope.replay.recording import Recording
from pytest_escope.replay.state import frame_values

from conftest import Project
from reliability import quiet_env

PROGRAM = '''
def scale(items, k):
    out = []
    for v in items:
        w = v * k
        out.append(w)
    return out


def bump(box, i):
    box.append(i % 5)
    if len(box) > 4:
        box.clear()
    return len(box)


def test_search():
    box, start = [], 7
    total = 0
    for i in range({n}):
        rows = scale([i, i + 1, 2], i % 3)
        total += bump(box, i) + rows[0]
        flag = i % 11 == 0
    assert total < 0
'''

FILE = "test_search.py"
W_LINE, APPEND_LINE, RETURN_LINE = 4, 5, 6
BOX_LINE, IF_LINE, CLEAR_LINE = 10, 11, 12
ROWS_LINE, FLAG_LINE, ASSERT_LINE = 20, 22, 23


@pytest.fixture(scope="module")
def film(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A failing test of some 30,000 events over several chunks."""
    project = Project(tmp_path_factory.mktemp("search") / "proj")
    project.write(FILE, PROGRAM.replace("{n}", "900"))
    res = project.run("--escope", env=quiet_env())
    assert res.returncode == 1, res.out[-2000:]
    run = project.latest()
    return run.path / run.tests()[f"{FILE}::test_search"]["recording"]


@pytest.fixture(scope="module")
def rec(film: Path) -> Any:
    with Recording.open(film) as r:
        assert r.store is not None and len(r.store.bases) >= 4
        yield r


def _unpacked(path: Path) -> Recording:
    conn, meta = open_recording(path)
    return Recording(conn, meta, path)


class _Spec:
    """What the plain search needs to know of one breakpoint."""

    def __init__(self, codes: frozenset[int], line: int | None = None, function: bool = False,
                 condition: str | None = None, hit: str | None = None) -> None:
        self.codes, self.line, self.function = codes, line, function
        self.cond = Condition(condition) if condition else None
        self.hit = HitCondition(hit) if hit else None


def _plain_stops(rec: Recording, specs: list[_Spec]) -> list[tuple[int, int]]:
    """Every (step, index of the breakpoint reported) of the film, found
    event by event: each breakpoint counts its own hits, and at one step the
    first in the list is the one reported."""
    counts = [0] * len(specs)
    stops = []
    for s, kind, act, line, _value in rec.walk(rec.first_step, True):
        a = rec.act(act)
        first = None
        for k, sp in enumerate(specs):
            if a.code not in sp.codes:
                continue
            if not ((sp.function and kind == schema.CALL)
                    or (sp.line is not None and kind == schema.LINE and line == sp.line)):
                continue
            if sp.cond is not None and not sp.cond.holds(frame_values(rec, a.frame, s, sp.cond.names)):
                continue
            counts[k] += 1
            if sp.hit is not None and not sp.hit.accepts(counts[k]):
                continue
            if first is None:
                first = k
        if first is not None:
            stops.append((s, first))
    return stops


def _expected(stops: list[tuple[int, int]], step: int, forward: bool) -> tuple[int, int] | None:
    steps = [s for s, _ in stops]
    if forward:
        at = bisect.bisect_right(steps, step)
        return stops[at] if at < len(stops) else None
    at = bisect.bisect_left(steps, step)
    return stops[at - 1] if at else None


def _starts(rec: Recording, stops: list[tuple[int, int]], n: int = 25) -> list[int]:
    """The film's ends, both sides of every chunk boundary, each stop and
    its neighbours (a few), and random steps."""
    assert rec.store is not None
    rng = random.Random(20)
    found = {rec.first_step, rec.first_step + 1, rec.last_step, rec.last_step - 1}
    for base in rec.store.bases:
        found.update(s for s in (base - 1, base, base + 1) if rec.first_step <= s <= rec.last_step)
    for s, _ in rng.sample(stops, min(len(stops), 8)) if stops else []:
        found.update((s - 1, s, s + 1))
    found.update(rng.randint(rec.first_step, rec.last_step) for _ in range(n))
    return sorted(s for s in found if rec.first_step <= s <= rec.last_step)


def _file_codes(rec: Recording) -> frozenset[int]:
    return nav.file_codes(rec, FILE)


def _function_codes(rec: Recording, name: str) -> frozenset[int]:
    return frozenset(c for c, v in rec.codes.items() if v[1] == name)


# (DAP breakpoint specs of the test file) per case; None: a function breakpoint on bump
CASES: dict[str, list[dict[str, Any]]] = {
    "every hit, two lines": [{"line": APPEND_LINE}, {"line": CLEAR_LINE}],
    "once, at the end": [{"line": ASSERT_LINE}],
    "holds sometimes": [{"line": APPEND_LINE, "condition": "w == 6"}],
    "never holds": [{"line": APPEND_LINE, "condition": "w == -1"}],
    "a name never bound": [{"line": APPEND_LINE, "condition": "nothing_of_that_name == 1"}],
    "two names": [{"line": APPEND_LINE, "condition": "v == 2 and k == 2"}],
    "a mutated list": [{"line": IF_LINE, "condition": "box[2] == 2"}],
    "a mutated list, never": [{"line": BOX_LINE, "condition": "box[0] == 9"}],
    "rebound in one frame": [{"line": ROWS_LINE, "condition": "flag == True"}],
    "bound once, long before": [{"line": ROWS_LINE, "condition": "start == 7 and i > 500"}],
    "rebound in one frame, two names": [{"line": ROWS_LINE, "condition": "flag == True and total > 100000"}],
    "many values, near the end only": [{"line": APPEND_LINE, "condition": "v == 850"}],
    "two, one conditional, shared line": [{"line": APPEND_LINE, "condition": "w == 4"}, {"line": W_LINE},
                                          {"line": APPEND_LINE}],
    "hit == 3": [{"line": APPEND_LINE, "hitCondition": "3"}],
    "hit >= 1000": [{"line": APPEND_LINE, "hitCondition": ">= 1000"}],
    "hit < 4": [{"line": APPEND_LINE, "hitCondition": "< 4"}],
    "hit % 250 with a condition": [{"line": APPEND_LINE, "condition": "w == 0", "hitCondition": "% 250"}],
    "hit beyond the last": [{"line": ASSERT_LINE, "hitCondition": "== 2"}],
    "hit and condition never": [{"line": APPEND_LINE, "condition": "w == -1", "hitCondition": "> 1"}],
}


def _specs(rec: Recording, dap: list[dict[str, Any]]) -> list[_Spec]:
    codes = _file_codes(rec)
    return [_Spec(codes, d["line"], condition=d.get("condition"), hit=d.get("hitCondition")) for d in dap]


@pytest.mark.parametrize("case", list(CASES))
def test_continue_stops_where_a_plain_search_does(rec: Recording, case: str) -> None:
    dap = CASES[case]
    stops = _plain_stops(rec, _specs(rec, dap))
    if case not in ("never holds", "a name never bound", "a mutated list, never", "hit beyond the last",
                    "hit and condition never"):
        assert stops, "the case must stop somewhere to pin anything"
    else:
        assert not stops
    file = next(f for f, p in rec.files.items() if p == FILE)
    bps = Breakpoints(rec)
    made = bps.set_lines(file, FILE, dap)
    assert all(m["verified"] for m in made), made
    ids = [m["id"] for m in made]
    for step in _starts(rec, stops):
        for forward in (True, False):
            want = _expected(stops, step, forward)
            got = bps.next_stop(step, forward)
            assert got == (None if want is None else (want[0], "breakpoint", [ids[want[1]]])), (step, forward)


def test_a_second_session_and_an_unpacked_film_agree(film: Path, rec: Recording) -> None:
    """The caches of one search never change the next one's answers, and
    the chunk-by-chunk search stops where the unpacked film's SQL does."""
    dap = [{"line": APPEND_LINE, "condition": "w == 6"}, {"line": CLEAR_LINE, "hitCondition": "% 7"},
           {"line": FLAG_LINE, "condition": "flag == True"}]
    fresh = Recording.open(film)
    old = _unpacked(film)
    try:
        assert old.store is None
        sessions = []
        for r in (rec, fresh, old):
            f = next(k for k, p in r.files.items() if p == FILE)
            b = Breakpoints(r)
            b.set_lines(f, FILE, dap)
            sessions.append(b)
        for step in _starts(rec, [], 15):
            for forward in (True, False):
                answers = {repr(b.next_stop(step, forward)) for b in sessions}
                assert len(answers) == 1, (step, forward, answers)
    finally:
        fresh.close()
        old.close()


@pytest.mark.parametrize("condition", [None, "i == 40", "i == -1"])
def test_terminal_breakpoints_on_a_function_and_a_line_stop_as_a_plain_search(rec: Recording,
                                                                              condition: str | None) -> None:
    """``c`` / ``rc``: a function breakpoint (with a condition or not) and a
    line breakpoint of another file position, together."""
    on_bump = nav.make_breakpoint(rec, 1, "bump" + (f", {condition}" if condition else ""), 0)
    on_line = nav.make_breakpoint(rec, 2, f"{FILE}:{RETURN_LINE}, k == 1", 0)
    specs = [_Spec(_function_codes(rec, "bump"), function=True, condition=condition),
             _Spec(_file_codes(rec), RETURN_LINE, condition="k == 1")]
    stops = _plain_stops(rec, specs)
    assert stops
    for step in _starts(rec, stops, 15):
        for forward in (True, False):
            want = _expected(stops, step, forward)
            got = nav.breakpoint_hit(rec, [on_bump, on_line], step, forward)
            assert (None if got is None else (got[0], got[1].number)) == \
                (None if want is None else (want[0], want[1] + 1)), (step, forward)


@pytest.mark.parametrize("line", [W_LINE, CLEAR_LINE, ASSERT_LINE])
def test_goto_targets_and_jumps_match_a_plain_search(rec: Recording, line: int) -> None:
    codes = _file_codes(rec)
    steps = [s for s, kind, act, at, _v in rec.walk(rec.first_step, True)
             if kind == schema.LINE and at == line and rec.act(act).code in codes]
    assert steps
    for step in _starts(rec, [(s, 0) for s in steps], 15):
        after = next((s for s in steps if s > step), None)
        before = next((s for s in reversed(steps) if s < step), None)
        assert nav.line_step(rec, codes, line, step) == (after if after is not None else before), step
        near = [s for s in (after, before) if s is not None]
        if after is not None and before is not None and step - before > after - step:
            near = [after]
        near.sort(key=lambda s: (abs(s - step), s < step))
        assert nav.nearest_line_steps(rec, codes, line, step) == near, step


def _damaged(film: Path, tmp_path: Path, data: bytes) -> Path:
    """A copy of the film whose longest chunk holds ``data``."""
    bad = tmp_path / "bad.sqlite"
    shutil.copyfile(film, bad)
    db = sqlite3.connect(bad)
    db.execute("UPDATE chunks SET data = ? WHERE chunk = (SELECT chunk FROM chunks ORDER BY steps DESC, chunk DESC LIMIT 1)", (data,))
    db.commit()
    db.close()
    return bad


@pytest.mark.parametrize("data", [
    b"\x00not zlib",
    zlib.compress(b'{"events":[[2,2],[1,0],[4,x],[0,0],[]],"frames":[]}'),
    zlib.compress(b'{"events":[[2,2],[1,0],[4,5],[0,0],[]],"frames":[[],[],[]],"activations":[],'
                  b'"bindings":[[1],[5],["w"],[null]],"vals":[]}'),
    zlib.compress(b'{"events":[[2,2],[1,0],[4,5],[0,0],[]],"frames":[[],[],[]],"activations":[],'
                  b'"bindings":[[1],[' + b"9" * 5000 + b'],[1],[' + b"7" * 5000 + b']],"vals":[]}'),
])
@pytest.mark.parametrize("condition", [None, "w == -1"])
def test_a_damaged_chunk_is_a_clear_error_never_a_crash(film: Path, tmp_path: Path, data: bytes,
                                                        condition: str | None) -> None:
    """A search that reaches a damaged chunk says "the recording is
    corrupt" (the CLI's one line and status 2), whichever reading it uses;
    a search whose condition rules the chunk out from its bindings alone
    may also pass it by."""
    bad = _damaged(film, tmp_path, data)
    with Recording.open(bad) as rec:
        spec = f"{FILE}:{APPEND_LINE}" + (f", {condition}" if condition else "")
        far = nav.make_breakpoint(rec, 1, spec, 0)
        step: int | None = rec.first_step
        try:
            # hit after hit (a condition never true: one search) past the damaged chunk
            while step is not None:
                hit = nav.breakpoint_hit(rec, [far], step, True)
                step = hit[0] if hit else None
        except RecordingError as exc:
            assert "corrupt" in exc.message()
        else:
            assert condition is not None, "the hits of the damaged chunk were read without an error"
