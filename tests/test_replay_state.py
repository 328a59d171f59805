"""Exact state: every line step of a recording against ground truth.

The recorded program is run under a second, independent tracer (plain
``sys.settrace`` / ``threading.settrace``, installed before the recorder
starts, so on 3.11 the recorder chains it and on 3.12 it runs beside
sys.monitoring).  At each line of the test file it writes down what the
interpreter itself says: the thread, the stack of test-file frames with
their current lines, and every local of every one of those frames
(``repr`` for plain builtin values, the type name for the rest).  Then
``Recording.state_at`` is asked for the state at every line step and must
agree, frame by frame and name by name; return values are checked the
same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_escope.replay import JSON_SCHEMA_VERSION, Recording

from conftest import Project, clean_env

TRUTH_PLUGIN = r'''
import json, os, sys, threading

_TARGET = os.path.realpath(os.path.join(os.getcwd(), "test_truth.py"))
_SIMPLE = (int, str, bool, type(None), float)
_log = []


def _plain(v, depth=0):
    if isinstance(v, _SIMPLE) and type(v) in _SIMPLE:
        return True
    if type(v) in (list, tuple) and depth < 2 and len(v) <= 20:
        return all(_plain(x, depth + 1) for x in v)
    if type(v) is dict and depth < 2 and len(v) <= 20:
        return all(_plain(k, depth + 1) and _plain(x, depth + 1) for k, x in v.items())
    if isinstance(v, BaseException) and type(v).__module__ == "builtins":
        return all(_plain(a, depth + 1) for a in v.args) and len(v.args) <= 1
    return False


def _show(v):
    return [type(v).__qualname__, repr(v) if _plain(v) else None]


def _frames(frame):
    out = []
    while frame is not None:
        if frame.f_code.co_filename == _TARGET:
            loc = {k: _show(v) for k, v in frame.f_locals.items() if not k.startswith(".")}
            out.append([getattr(frame.f_code, "co_qualname", frame.f_code.co_name), frame.f_lineno, loc])
        frame = frame.f_back
    out.reverse()
    return out


def _local(frame, event, arg):
    if event == "line":
        _log.append(["line", threading.current_thread().name, _frames(frame)])
    elif event == "return":
        _log.append(["return", threading.current_thread().name,
                     getattr(frame.f_code, "co_qualname", frame.f_code.co_name), _show(arg)])
    return _local


def _global(frame, event, arg):
    if event == "call" and frame.f_code.co_filename == _TARGET:
        return _local
    return None


sys.settrace(_global)
threading.settrace(_global)


def pytest_sessionfinish(session):
    sys.settrace(None)
    threading.settrace(None)
    with open(os.environ["TRUTH_OUT"], "w") as fh:
        json.dump(_log, fh)
'''

PROGRAM = '''
import threading


def fact(n):
    if n <= 1:
        return 1
    r = n * fact(n - 1)
    return r


def gen(n):
    total = 0
    for i in range(n):
        total += i
        yield i * 2
    return total


def make_counter():
    count = 0

    def inc(k):
        nonlocal count
        count += k
        return count
    return inc


def risky(x):
    if x > 2:
        raise ValueError(f"too big {x}")
    return x


def catcher(xs):
    caught = []
    for x in xs:
        try:
            risky(x)
        except ValueError:
            caught.append(x)
    return caught


def rethrow():
    try:
        risky(5)
    except ValueError as e:
        note = "seen"
        raise KeyError("wrapped") from e


def mutate(items, table):
    items.append(len(items))
    table["n"] = table.get("n", 0) + 1
    alias = items
    alias.append(-1)
    return alias


def worker(out, n):
    acc = []
    for i in range(n):
        acc.append(i * i)
    out.extend(acc)


def test_truth():
    f = fact(5)
    g = gen(4)
    first = next(g)
    second = g.send(10)
    rest = list(g)
    inc = make_counter()
    a = inc(2)
    b = inc(3)
    caught = catcher([1, 3, 2, 4])
    try:
        rethrow()
    except KeyError:
        kind = "KeyError"
    items = [1]
    table = {}
    out = mutate(items, table)
    mutate(out, table)
    results = []
    t = threading.Thread(target=worker, args=(results, 4), name="worker-1")
    t.start()
    t.join()
    squares = list(results)
    assert f == 121
'''


@pytest.fixture(scope="module")
def truth_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    project = Project(tmp_path_factory.mktemp("truth") / "proj")
    project.write("truthtrace.py", TRUTH_PLUGIN)
    project.write("test_truth.py", PROGRAM)
    out = project.path.parent / "truth.json"
    res = project.run("-p", "truthtrace", "--escope", "--escope-exclude", "truthtrace.py",
                      env=clean_env(TRUTH_OUT=str(out), PYTHONPATH=str(project.path)))
    assert "1 failed" in res.stdout, res.out
    recs = list(project.escope_dir.glob("runs/*/tests/*.sqlite"))
    assert len(recs) == 1, res.out
    return recs[0], json.loads(out.read_text())


def _form(value: Any) -> list[Any]:
    return [value.type, value.repr]


def _compare_locals(got: dict[str, Any], want: dict[str, list[Any]], where: str) -> list[str]:
    problems = []
    if set(got) != set(want):
        problems.append(f"{where}: names {sorted(got)} != {sorted(want)}")
    for name in set(got) & set(want):
        gtype, grepr = _form(got[name])
        wtype, wrepr = want[name]
        if gtype != wtype or (wrepr is not None and grepr != wrepr):
            problems.append(f"{where}: {name} = {gtype} {grepr} != {wtype} {wrepr}")
    return problems


def test_every_line_step_matches_ground_truth(truth_run: tuple[Path, list[Any]]) -> None:
    path, log = truth_run
    truth_lines: dict[str, list[Any]] = {}
    for entry in log:
        if entry[0] == "line" and entry[2][0][0] != "<module>":  # the import, before the test
            truth_lines.setdefault(entry[1], []).append(entry[2])
    with Recording.open(path) as rec:
        steps: dict[str, list[int]] = {}
        for ev in rec.events(kind="line"):
            if ev.file == "test_truth.py":
                steps.setdefault(ev.thread, []).append(ev.step)
        assert set(steps) == set(truth_lines) == {"MainThread", "worker-1"}
        problems: list[str] = []
        checked = 0
        for thread, want_seq in truth_lines.items():
            got_seq = steps[thread]
            assert len(got_seq) == len(want_seq), thread
            for step, want in zip(got_seq, want_seq):
                state = rec.state_at(step)
                assert state.thread == thread
                got_stack = [(f.function, f.line) for f in state.stack]
                want_stack = [(w[0], w[1]) for w in want]
                assert got_stack == want_stack, f"step {step}"
                for frame, w in zip(state.stack, want):
                    problems += _compare_locals(frame.locals, w[2], f"step {step} {frame.function}:{frame.line}")
                checked += 1
        assert checked > 100
        assert not problems, "\n".join(problems[:30])


def test_return_values_match_ground_truth(truth_run: tuple[Path, list[Any]]) -> None:
    path, log = truth_run
    want = [(e[2], e[3]) for e in log if e[0] == "return" and e[1] == "MainThread" and e[2] != "<module>"]
    with Recording.open(path) as rec:
        got = []
        for ev in rec.events(kind="return,yield,unwind", thread="MainThread"):
            if ev.file != "test_truth.py":
                continue
            state = rec.state_at(ev.step)
            assert state.kind == ev.kind
            # sys.settrace reports an unwinding frame's return with None
            value = state.value if ev.kind != "unwind" else None
            got.append((ev.function, [value.type, value.repr] if value is not None else ["NoneType", "None"]))
        assert len(got) == len(want)
        for (gf, gv), (wf, wv) in zip(got, want):
            assert gf == wf
            assert gv[0] == wv[0] and (wv[1] is None or gv[1] == wv[1]), (gf, gv, wv)


def test_failure_state(truth_run: tuple[Path, list[Any]]) -> None:
    path, _log = truth_run
    with Recording.open(path) as rec:
        failure = rec.failure()
        assert failure is not None and failure.exact and failure.outcome == "failed"
        assert "assert 120 == 121" in failure.message
        state = rec.state_at(failure.step)
        assert state.kind == "exception"
        assert state.exception is not None and state.exception.value.type == "AssertionError"
        assert state.exception.step == failure.step
        assert state.frame.function == "test_truth" and state.frame.node.endswith(":assert")
        assert state.frame.locals["f"].repr == "120"
        assert state.frame.locals["squares"].repr == "[0, 1, 4, 9]"
        data = state.to_json()
        assert data["schema_version"] == JSON_SCHEMA_VERSION == 2
        assert data["stack"][-1]["locals"]["table"] == {
            "type": "dict", "repr": "{'n': 2}", "len": 1,
            "entries": [[{"type": "str", "repr": "'n'"}, {"type": "int", "repr": "2"}]]}


def test_exception_in_flight_while_unwinding(truth_run: tuple[Path, list[Any]]) -> None:
    """risky(5) raises inside rethrow: in flight through risky's unwind,
    gone once rethrow's handler runs; then KeyError is in flight."""
    path, _log = truth_run
    with Recording.open(path) as rec:
        raised = [e for e in rec.events(kind="exception", function="risky")]
        assert [e.value.repr for e in raised] == ["ValueError('too big 3')", "ValueError('too big 4')",
                                                  "ValueError('too big 5')"]
        assert [rec.state_at(e.step).exception.step for e in raised] == [e.step for e in raised]
        last = raised[-1]
        unwind = rec.events(kind="unwind", function="risky", since=last.step, limit=1)[0]
        for step in range(last.step, unwind.step + 1):
            exc = rec.state_at(step).exception
            assert exc is not None and exc.step == last.step and exc.value.repr == "ValueError('too big 5')"
        handler = rec.events(function="rethrow", kind="line", since=unwind.step, limit=1)[0]
        assert rec.state_at(handler.step).exception is None
        key = [e for e in rec.events(kind="exception", function="rethrow") if e.value.type == "KeyError"][0]
        assert rec.state_at(key.step).exception.value.type == "KeyError"
        # it stays in flight through rethrow's unwind, even past the implicit
        # cleanup of ``except ... as e`` that sys.monitoring reports as handled
        end = rec.events(kind="unwind", function="rethrow", limit=1)[0]
        exc = rec.state_at(end.step).exception
        assert exc is not None and exc.step == key.step and exc.value.repr == "KeyError('wrapped')"
        # caught by test_truth's handler: no exception in flight there
        handler = rec.events(function="test_truth", kind="line", since=end.step, limit=1)[0]
        assert rec.state_at(handler.step).exception is None


def test_generator_frames_suspend_and_resume(truth_run: tuple[Path, list[Any]]) -> None:
    path, _log = truth_run
    with Recording.open(path) as rec:
        resumes = rec.events(kind="resume", function="gen")
        yields = rec.events(kind="yield", function="gen")
        assert len(yields) == 4 and len(resumes) >= 4
        assert {e.frame for e in resumes + yields} == {yields[0].frame}  # one frame, many activations
        # resumed by g.send(10): the frame's locals survived the suspension
        state = rec.state_at(resumes[0].step)
        assert state.frame.locals["total"].repr == "0" and state.stack[0].function == "test_truth"
        assert [v.value.repr for v in yields] == ["0", "2", "4", "6"]
        hist = rec.history("total", frame=yields[0].frame)
        assert [h.value.repr for h in hist] == ["0", "1", "3", "6"]
        # stepping back over a resume lands in the caller, at the line that resumed it
        from pytest_escope.replay import navigation as nav
        back = nav.over(rec, resumes[0].step, False)
        assert rec.state_at(back).frame.function == "test_truth"


RECORDER_BUGS = """
def gen():
    got = yield 1
    seen = got
    yield seen


def test_bugs():
    g = gen()
    next(g)
    g.send(5)
    try:
        raise ValueError("x")
    except ValueError as e:
        pass
    after = 1
    doubled = [v * 2 for v in [7, 8]]
    assert after == 2
"""


@pytest.fixture(scope="module")
def bugs_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = Project(tmp_path_factory.mktemp("bugs") / "proj")
    project.write("test_bugs.py", RECORDER_BUGS)
    res = project.run("--escope")
    assert "1 failed" in res.stdout, res.out
    return next(project.escope_dir.glob("runs/*/tests/*.sqlite"))


def test_yield_assignment_is_recorded(bugs_recording: Path) -> None:
    with Recording.open(bugs_recording) as rec:
        line = rec.events(function="gen", kind="line")
        seen_line = [e for e in line if e.line == 4][0]
        assert rec.state_at(seen_line.step).frame.locals["got"].repr == "5"


def test_except_target_unbound_after_handler(bugs_recording: Path) -> None:
    with Recording.open(bugs_recording) as rec:
        after = [e for e in rec.events(function="test_bugs", kind="line") if e.line == 15][0]  # after = 1
        assert "e" not in rec.state_at(after.step).frame.locals


def test_comprehension_variable_is_recorded(bugs_recording: Path) -> None:
    with Recording.open(bugs_recording) as rec:
        steps = [e.step for e in rec.events(kind="line") if e.line == 16]  # the comprehension
        assert len(steps) >= 3
        assert rec.state_at(steps[-1]).frame.locals["v"].repr == "8"
