"""Fidelity: the film of a test is what an independent sys.settrace sees.

The same project runs once without escope under a ten-line reference tracer
(``conftest.REFTRACE``: plain ``sys.settrace`` + ``threading.settrace``
around each test's protocol) and once per backend with ``--escope``; the
ordered line events (file, line) of every thread of every test, over setup,
call and teardown, must be equal.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from conftest import BACKENDS, UGLY, Project, Run, module_project, reference_lines, write_files

TESTS = [
    "test_recursion", "test_generator", "test_closure_and_comprehensions", "test_try_finally",
    "test_with_and_caught", "test_reraise_fails", "test_methods_mutate_self", "test_thread",
    "test_asyncio", "test_fixture", "test_hostile",
]


@pytest.fixture(scope="module")
def ugly(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return write_files(module_project(tmp_path_factory, "fidelity"), UGLY)


@pytest.fixture(scope="module")
def reference(ugly: Project) -> dict[str, list[tuple[str, int, str]]]:
    return reference_lines(ugly)


@pytest.fixture(scope="module", params=BACKENDS)
def recorded(request: pytest.FixtureRequest, ugly: Project) -> Run:
    esc = ugly.path.parent / f"escope-{request.param}"
    res = ugly.run("--escope", "--escope-keep=all", f"--escope-backend={request.param}",
                   f"--escope-dir={esc}")
    assert res.returncode == 1, res.out  # test_reraise_fails fails on purpose
    assert "1 failed, 10 passed" in res.stdout, res.out
    return ugly.latest(esc)


def by_thread(seq: list[tuple[str, int, str]]) -> dict[str, list[tuple[str, int]]]:
    out: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for file, line, thread in seq:
        out[thread].append((file, line))
    return dict(out)


def test_reference_saw_every_test(reference: dict) -> None:
    assert sorted(k.split("::")[1] for k in reference) == sorted(TESTS)
    # and it is not empty: the fixture's setup and teardown lines are in it
    assert ("conftest.py", 7) in [(f, ln) for f, ln, _ in reference["test_ugly.py::test_fixture"]]


@pytest.mark.parametrize("name", TESTS)
def test_line_events_equal_reference(name: str, reference: dict, recorded: Run) -> None:
    nodeid = f"test_ugly.py::{name}"
    rec = recorded.recording(nodeid)
    expected = by_thread(reference[nodeid])
    got: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for e in rec.events():
        if e.kind == "line":
            got[e.thread].append((e.file, e.line))
    assert dict(got) == expected


def test_every_line_event_has_a_node(recorded: Run) -> None:
    recs = recorded.recordings()
    assert len(recs) == len(TESTS)
    for tid, rec in recs.items():
        assert rec.lines(), tid
        assert rec.unmapped_lines() == [], tid
        # the node is the innermost statement: a line inside a loop body maps
        # to the body statement, not to the for
        assert rec.q("SELECT count(*) FROM lines l LEFT JOIN nodes n ON n.node = l.node "
                     "WHERE n.node IS NULL")[0][0] == 0


def test_node_ids_follow_the_spec(recorded: Run) -> None:
    assert recorded.recording("test_recursion").node_of("pkg/lib.py", 13) == "pkg/lib.py:fact:13:if"
    rec = recorded.recording("test_methods_mutate_self")
    assert rec.node_of("pkg/lib.py", 7) == "pkg/lib.py:Counter.add:7:aug_assign"
    assert rec.node_of("pkg/lib.py", 8) == "pkg/lib.py:Counter.add:8:expr"
    assert rec.node_of("test_ugly.py", 63) == "test_ugly.py:test_methods_mutate_self:63:for"
    ids = [r[0] for r in rec.q("SELECT node_id FROM nodes")]
    assert len(ids) == len(set(ids))
    anchors = dict(rec.q("SELECT node_id, anchor FROM nodes"))
    assert anchors["pkg/lib.py:Counter.add:7:aug_assign"] == "pkg/lib.py:Counter.add:aug_assign#1"


def test_thread_is_recorded_with_its_name(recorded: Run) -> None:
    rec = recorded.recording("test_thread")
    threads = {e.thread for e in rec.events() if e.function == "test_thread.<locals>.work"}
    assert threads == {"worker-7"}
    assert {e.thread for e in rec.events() if e.function == "test_thread"} == {"MainThread"}
    assert sorted(r[0] for r in rec.q("SELECT name FROM threads")) == ["MainThread", "worker-7"]


def test_asyncio_code_is_recorded_with_its_task_name(recorded: Run) -> None:
    rec = recorded.recording("test_asyncio")
    events = rec.events()
    child = {e.task for e in events if e.function == "test_asyncio.<locals>.child"}
    assert child == {"kid-task"}
    main = {e.task for e in events if e.function == "test_asyncio.<locals>.main"}
    assert len(main) == 1 and None not in main and main != {"kid-task"}
    assert {e.task for e in events if e.function == "test_asyncio"} == {None}


def test_call_return_exception_structure(recorded: Run) -> None:
    rec = recorded.recording("test_recursion")
    calls = [e for e in rec.events() if e.kind == "call" and e.function == "fact"]
    rets = [e for e in rec.events() if e.kind == "return" and e.function == "fact"]
    assert [e.depth for e in calls] == [1, 2, 3, 4, 5]
    assert [e.value_repr for e in rets] == ["1", "2", "6", "24", "120"]

    rec = recorded.recording("test_reraise_fails")
    kinds = [(e.function, e.kind) for e in rec.events() if e.kind in ("exception", "handled", "unwind")]
    # KeyError raised at the bottom, unwinding 3 fail_deep frames, handled in reraiser,
    # which raises RuntimeError and unwinds to the test, which unwinds too.
    assert kinds[0] == ("fail_deep", "exception")
    assert kinds.count(("fail_deep", "unwind")) == 3
    assert ("reraiser", "handled") in kinds
    assert ("reraiser", "exception") in kinds
    assert kinds[-1] == ("test_reraise_fails", "unwind")
    meta = rec.meta
    step = int(meta["failure_step"])
    failing = [e for e in rec.events() if e.step == step][0]
    assert (failing.function, failing.kind, failing.value_type) == ("reraiser", "exception", "RuntimeError")


def test_phases_cover_setup_call_teardown(recorded: Run) -> None:
    rec = recorded.recording("test_fixture")
    phases = {p: (s, e) for p, s, e in rec.q("SELECT phase, start_step, end_step FROM phases")}
    assert set(phases) == {"setup", "call", "teardown"}
    fixture_lines = [(e.step, e.line) for e in rec.events() if e.kind == "line" and e.function == "resource"]
    setup = [ln for s, ln in fixture_lines if phases["setup"][0] <= s < phases["setup"][1]]
    teardown = [ln for s, ln in fixture_lines if phases["teardown"][0] <= s < phases["teardown"][1]]
    assert setup == [6, 7] and teardown == [8]
    test_lines = [e.step for e in rec.events() if e.function == "test_fixture"]
    assert all(phases["call"][0] <= s < phases["call"][1] for s in test_lines)
