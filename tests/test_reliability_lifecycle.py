"""The per-test lifecycle around a failure (docs/reliability.md, "Faults"):
a failed test's teardown is filmed as a passing test's is, with and without
a debugger taking over in between.

Each test runs a real pytest session in a subprocess and reads the real
recording with plain SQL.
"""

from __future__ import annotations

import pytest

from conftest import BACKENDS, Project, Rec
from reliability import cli_json, meta, quiet_env, summary

#: A fixture whose code after ``yield`` calls a function: that call must be
#: in the film of the failed test and of the passing one alike.
TEARDOWN = '''
import pytest


def cleanup(res):
    res.clear()
    return "cleaned"


@pytest.fixture
def resource():
    res = ["ready"]
    yield res
    marker = cleanup(res)


def test_1_fails(resource):
    assert resource == []


def test_2_passes(resource):
    assert resource == ["ready"]
'''


def _teardown_filmed(path) -> None:
    rec = Rec(path)
    try:
        start, end = rec.q("SELECT start_step, end_step FROM phases WHERE phase = 'teardown'")[0]
        steps = [e for e in rec.events() if start <= e.step <= end]
        functions = [(e.function, e.kind) for e in steps]
        # the fixture resumes after its yield, runs its last line and
        # calls cleanup, which returns
        assert ("resource", "resume") in functions, functions
        assert ("cleanup", "call") in functions and ("cleanup", "return") in functions, functions
        returned = [e.value_repr for e in steps if e.function == "cleanup" and e.kind == "return"]
        assert returned == ["'cleaned'"], returned
    finally:
        rec.close()


@pytest.mark.parametrize("debugger", [False, True], ids=["plain", "pdb"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_teardown_of_a_failed_test_is_filmed(backend: str, debugger: bool, project: Project) -> None:
    project.write("test_teardown.py", TEARDOWN)
    args = ["-rA", "--escope-keep=all", f"--escope-backend={backend}"]
    stdin = None
    if debugger:
        args.append("--pdb")
        stdin = "p resource\nc\n"
    rec = project.run("--escope", *args, env=quiet_env(), stdin=stdin)
    assert rec.returncode == 1 and summary(rec.stdout) == "1 failed, 1 passed", rec.out[-3000:]
    if debugger:
        assert "(Pdb)" in rec.stdout
    run = project.latest()
    for part in ("test_1_fails", "test_2_passes"):
        path = run.recording(part).path
        assert meta(path)["complete"] == "1", part
        _teardown_filmed(path)
    failed = run.recording("test_1_fails").path
    assert meta(failed)["outcome"] == "failed" and meta(failed)["outcome_teardown"] == "passed"
    # the failure step stays where the assertion failed, not in the teardown
    state = cli_json("replay", str(failed), cwd=project.path)
    assert state["stack"][0]["function"] == "test_1_fails"
