"""A test behaves the same with and without escope (SPEC 3.8), under every
strategy, and escope coexists with coverage.py and with --pdb (SPEC 3.1)."""

from __future__ import annotations

import json
import re

import pytest

from conftest import BACKENDS, PY312, UGLY, Project, clean_env, module_project, outcomes, write_files


def _normalise(out: str) -> list[str]:
    """The parts of pytest's output a test controls: its prints, the
    per-test outcomes and failure text, and the final counts."""
    keep = []
    for ln in out.splitlines():
        if ln.startswith("escope") or "escope" in ln and ("recording" in ln or "replay" in ln):
            continue
        if ln.startswith(("OUT ", "PASSED ", "FAILED ", "ERROR ", "E ")):
            keep.append(ln)
    tail = re.sub(r" in [\d.]+s.*", "", out.strip().splitlines()[-1])
    return keep + [tail.strip("= ")]


@pytest.fixture(scope="module")
def ugly(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return write_files(module_project(tmp_path_factory, "same"), UGLY)


@pytest.fixture(scope="module")
def plain(ugly: Project) -> str:
    res = ugly.run("-rA", "-s", "-p", "no:escope")
    assert res.returncode == 1
    return res.stdout


@pytest.mark.parametrize("strategy", ["minimal", "balanced", "full_trace"])
def test_same_outcomes_and_output(strategy: str, ugly: Project, plain: str) -> None:
    esc = ugly.path.parent / f"escope-{strategy}"
    res = ugly.run("-rA", "-s", "--escope", "--escope-keep=all", f"--escope-strategy={strategy}",
                   f"--escope-dir={esc}")
    assert res.returncode == 1
    assert outcomes(res.stdout) == outcomes(plain)
    assert len(outcomes(plain)) == 11
    assert _normalise(res.stdout) == _normalise(plain)
    assert "RuntimeError: wrapped" in res.stdout
    assert "escope warning" not in res.stdout
    run = ugly.latest(esc)
    assert run.facts()["strategy"] == strategy
    recs = run.recordings()
    assert len(recs) == 11
    for tid, rec in recs.items():
        assert rec.meta["strategy"] == strategy
        assert rec.meta["recorder_faults"] == "0", tid
        kinds = {e.kind for e in rec.events()}
        assert "call" in kinds and "return" in kinds or "unwind" in kinds
        if strategy == "minimal":
            assert "line" not in kinds, tid
        else:
            assert "line" in kinds, tid
    if strategy == "full_trace":
        ext = [e for e in run.recording("test_asyncio").events() if e.kind == "external_call"]
        assert ("test_asyncio", "'run'") in [(e.function, e.value_repr) for e in ext]


BUG9 = ("BUG-9: full_trace under the settrace backend films calls into out-of-scope Python functions only; "
        "calls into builtins (print, len...) are missing, while sys.monitoring's CALL has them")


@pytest.mark.parametrize("backend", [
    pytest.param(b, marks=pytest.mark.xfail(strict=True, reason=BUG9)) if b == "settrace" else b
    for b in BACKENDS])
def test_full_trace_films_calls_into_builtins(backend: str, project: Project) -> None:
    project.write("test_ext.py", """
        def test_ext():
            n = len([1, 2])
            print("n", n)
            assert n == 3
    """)
    res = project.run("--escope", "--escope-strategy=full_trace", f"--escope-backend={backend}")
    assert res.returncode == 1, res.out
    rec = project.latest().recording("test_ext")
    ext = [e.value_repr for e in rec.events() if e.kind == "external_call"]
    assert "'len'" in ext and "'print'" in ext


@pytest.mark.parametrize("strategy", ["minimal", "balanced", "full_trace"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_class_the_test_drops_dies_as_without_escope(backend: str, strategy: str, project: Project) -> None:
    """A class made and replaced inside a test (attrs' slotted classes are
    rebuilt this way) is freed by the next collection: the film shows the
    class as a value, and must not be what keeps it alive."""
    project.write("test_classes.py", """
        import gc
        import weakref

        def rebuilt(cls):
            return type(cls.__name__, cls.__bases__, {"note": 1})

        def test_replaced_class_is_freed():
            class Base:
                pass

            class Child(Base):
                pass
            old = weakref.ref(Child)
            Child = rebuilt(Child)
            gc.collect()
            assert old() is None
            assert Base.__subclasses__() == [Child]
    """)
    assert project.run("-p", "no:escope").returncode == 0
    res = project.run("--escope", "--escope-keep=all", f"--escope-strategy={strategy}", f"--escope-backend={backend}")
    assert res.returncode == 0, res.out
    rec = project.latest().recording("test_replaced_class_is_freed")
    assert rec.events(), "the test was filmed"


# -- coverage.py ---------------------------------------------------------------------

COMBOS = [("ctrace", "settrace")]
if PY312:
    COMBOS += [("ctrace", "monitoring"), ("sysmon", "settrace"), ("sysmon", "monitoring")]


@pytest.mark.parametrize(("core", "backend"), COMBOS)
def test_coverage_is_unchanged_while_recording(core: str, backend: str, tmp_path) -> None:
    pytest.importorskip("pytest_cov")
    proj = write_files(Project(tmp_path / "proj"), UGLY)

    def measured(*extra: str) -> dict[str, list[int]]:
        out = tmp_path / f"cov-{len(extra)}.json"
        res = proj.run("-p", "no:xdist", "--cov=pkg", "--cov=test_ugly", f"--cov-report=json:{out}", *extra,
                       env=clean_env(COVERAGE_CORE=core))
        assert res.returncode == 1, res.out
        data = json.loads(out.read_text())
        return {f: sorted(v["executed_lines"]) for f, v in data["files"].items()}

    without = measured()
    with_escope = measured("--escope", "--escope-keep=all", f"--escope-backend={backend}")
    assert without == with_escope
    assert without["pkg/lib.py"]  # coverage did measure
    run = proj.latest()
    assert run.facts()["backend"] == backend
    rec = run.recording("test_recursion")
    assert len([e for e in rec.events() if e.kind == "call" and e.function == "fact"]) == 5
    assert rec.lines()


# -- pdb ------------------------------------------------------------------------------

PDB_TESTS = '''
def helper(n):
    total = n * 2
    return total


def test_fails():
    x = helper(2)
    assert x == 5


def test_breakpoint():
    y = helper(3)
    breakpoint()
    z = helper(y)
    assert z == 12


def test_after():
    assert helper(1) == 2
'''


@pytest.mark.parametrize("backend", BACKENDS)
def test_pdb_continue(backend: str, project: Project) -> None:
    project.write("test_pdb.py", PDB_TESTS)
    res = project.run("--escope", "--escope-keep=all", f"--escope-backend={backend}", "--pdb", "-s",
                      stdin="p x\nc\np y\nc\n", timeout=300)
    out = res.stdout
    assert res.returncode == 1, res.out
    assert "(Pdb)" in out
    assert "1 failed, 2 passed" in out
    assert re.search(r"\(Pdb\) 4$", out, re.M) and re.search(r"\(Pdb\) 6$", out, re.M)  # pdb evaluated x, y
    run = project.latest()
    rows = run.tests()
    assert {t.split("::")[1]: r["outcome"] for t, r in rows.items()} == {
        "test_fails": "failed", "test_breakpoint": "passed", "test_after": "passed"}
    for tid in rows:
        rec = run.recording(tid)
        assert rec.meta["complete"] == "1"
        assert rec.lines()
    # the test after the debugger session is filmed in full
    after = run.recording("test_after")
    assert [e.value_repr for e in after.events() if e.kind == "return" and e.function == "helper"] == ["2"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_pdb_quit(backend: str, project: Project) -> None:
    project.write("test_pdb.py", PDB_TESTS)
    res = project.run("--escope", f"--escope-backend={backend}", "--pdb", "-s", stdin="q\n", timeout=300)
    assert res.returncode == 2, res.out
    assert "Quitting debugger" in res.out
    run = project.latest()
    facts = run.facts()
    assert facts["exitstatus"] == "2"
    rec = run.recording("test_fails")
    assert rec.meta["complete"] == "1" and rec.meta["outcome"] == "failed"
