"""The pytest surface (SPEC 3.7): options, ini keys, env, marker, fixture,
header, summary, JUnit XML, hookspecs, ``-p no:escope``, xdist."""

from __future__ import annotations

import shlex
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import Rec, Run


def _run(pytester: pytest.Pytester, escope_dir: str = ".escope") -> Run:
    base = pytester.path / escope_dir
    return Run(base / "runs" / (base / "latest").read_text().strip())


def _no_lines(rec: Rec) -> bool:
    return not [e for e in rec.events() if e.kind == "line"]


SCOPE_FILES = {
    "build/helper_build.py": "def twice(x, pin_code):\n    y = x * 2\n    return y\n",
    "helpers.py": "def check(pin_code):\n    ok = len(pin_code) == 4\n    return ok\n",
}


def _scope_project(pytester: pytest.Pytester) -> None:
    for name, text in SCOPE_FILES.items():
        p = pytester.path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    pytester.makepyfile(test_scope='''
        import sys
        sys.path.insert(0, "build")
        from helper_build import twice
        from helpers import check


        def test_scope():
            pin_code = "1234"
            assert check(pin_code) and twice(2, pin_code) == 5
    ''')


def test_ini_keys(pytester: pytest.Pytester) -> None:
    pytester.makeini("""
        [pytest]
        escope = true
        escope_strategy = minimal
        escope_keep = all
        escope_dir = recs
        escope_max_events = 1000
        escope_redact = pin
        escope_exclude = helpers.py
        escope_include = build/*
    """)
    _scope_project(pytester)
    res = pytester.runpytest_subprocess()
    res.assert_outcomes(failed=1)
    assert not (pytester.path / ".escope").exists()
    run = _run(pytester, "recs")
    rec = run.recording("test_scope")
    assert rec.meta["strategy"] == "minimal"
    assert _no_lines(rec)
    kinds = {e.kind for e in rec.events()}
    assert {"call", "return", "exception", "unwind"} <= kinds
    paths = {r[0] for r in rec.q("SELECT path FROM files")}
    assert paths == {"test_scope.py", "build/helper_build.py"}  # helpers.py excluded, build/ included
    # minimal still records call arguments; escope_redact's "pin" (not a
    # default pattern) redacts pin_code and leaves x alone
    args = {(fn, name): r for fn, name, _, r in rec.bindings()}
    assert args == {("twice", "x"): "2", ("twice", "pin_code"): "<redacted>"}


def test_scope_defaults_skip_build_dirs_and_cli_options_win(pytester: pytest.Pytester) -> None:
    _scope_project(pytester)
    pytester.makeini("[pytest]\nescope_strategy = minimal\n")
    res = pytester.runpytest_subprocess("--escope", "--escope-strategy=balanced", "--escope-redact=pin")
    res.assert_outcomes(failed=1)
    rec = _run(pytester).recording("test_scope")
    assert rec.meta["strategy"] == "balanced"
    assert {r[0] for r in rec.q("SELECT path FROM files")} == {"test_scope.py", "helpers.py"}
    args = {(fn, name): r for fn, name, _, r in rec.bindings()}
    assert args[("check", "pin_code")] == "<redacted>"
    assert args[("test_scope", "pin_code")] == "<redacted>"
    assert args[("check", "ok")] == "True"


def test_env_turns_it_on(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile("def test_x():\n    assert 0\n")
    monkeypatch.setenv("PYTEST_ESCOPE", "1")
    res = pytester.runpytest_subprocess()
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["escope: recording to .escope*runs*"])
    assert _run(pytester).recording("test_x").lines()


def test_off_by_default(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_x(escope):
            escope.checkpoint("ignored", a=1)
            assert escope.path is None and not escope.enabled
    """)
    res = pytester.runpytest_subprocess()
    res.assert_outcomes(passed=1)
    assert "escope: recording" not in res.stdout.str()
    assert not (pytester.path / ".escope").exists()


def test_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest


        def helper(n):
            m = n + 1
            return m


        @pytest.mark.escope(strategy="minimal")
        def test_minimal():
            assert helper(1) == 3


        @pytest.mark.escope(enabled=False)
        def test_disabled():
            assert helper(1) == 3


        def test_default():
            assert helper(1) == 3
    """)
    res = pytester.runpytest_subprocess("--escope")
    res.assert_outcomes(failed=3)
    run = _run(pytester)
    rows = run.tests()
    assert sorted(t.split("::")[1] for t in rows) == ["test_default", "test_minimal"]
    assert len(list((run.path / "tests").iterdir())) == 2
    minimal, default = run.recording("test_minimal"), run.recording("test_default")
    assert minimal.meta["strategy"] == "minimal" and _no_lines(minimal)
    assert [e.value_repr for e in minimal.events() if e.kind == "return"] == ["2"]
    assert default.meta["strategy"] == "balanced" and not _no_lines(default)
    # the marker is registered: no warning under --strict-markers
    res = pytester.runpytest_subprocess("--strict-markers", "-k", "test_disabled")
    res.assert_outcomes(failed=1)


def test_fixture_checkpoint_and_path(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        from pathlib import Path


        def test_cp(escope):
            n = 3
            escope.checkpoint("before call", n=n, items=[1, 2])
            Path("reported-path").write_text(str(escope.path))
            assert escope.enabled and n == 4
    """)
    res = pytester.runpytest_subprocess("--escope")
    res.assert_outcomes(failed=1)
    run = _run(pytester)
    row = [r for t, r in run.tests().items() if t.endswith("::test_cp")][0]
    assert Path((pytester.path / "reported-path").read_text()) == run.path / row["recording"]
    rec = run.recording("test_cp")
    cps = [e for e in rec.events() if e.kind == "checkpoint"]
    assert len(cps) == 1
    cp = cps[0]
    assert cp.function == "test_cp" and cp.line == 6
    assert cp.value_type == "checkpoint"
    assert "'before call'" in cp.value_repr and "3" in cp.value_repr and "[1, 2]" in cp.value_repr
    detail = rec.q("SELECT detail FROM vals v JOIN events e ON e.value = v.value WHERE e.kind = 9")[0][0]
    assert "'label'" in detail and "'items'" in detail


def test_header_summary_and_junit(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest


        def test_ok():
            pass


        @pytest.mark.parametrize("v", ["a b", "c"])
        def test_bad(v):
            assert v == "z", "no z"
    """)
    res = pytester.runpytest_subprocess("--escope", "--junitxml=out.xml")
    res.assert_outcomes(passed=1, failed=2)
    run = _run(pytester)
    rel = Path(".escope") / "runs" / run.path.name
    out = res.stdout.str()
    backend = "monitoring" if sys.version_info >= (3, 12) else "settrace"
    assert f"escope: recording to {rel} (strategy balanced, backend {backend}, keep failed)" in out
    assert "escope: 2 failed test recording(s)" in out
    rows = run.tests()
    for nodeid in ("test_header_summary_and_junit.py::test_bad[a b]", "test_header_summary_and_junit.py::test_bad[c]"):
        recording = Path(".escope") / "runs" / run.path.name / rows[nodeid]["recording"]
        assert f"  recording: {recording}" in out
        assert (pytester.path / recording).is_file()
        assert f"  replay:    escope replay {shlex.quote(nodeid)}" in out
    assert "AssertionError: no z" in out.split("escope: 2 failed")[1]
    tree = ET.parse(pytester.path / "out.xml")
    props = {}
    for case in tree.iter("testcase"):
        for prop in case.iter("property"):
            props.setdefault(case.get("name"), {})[prop.get("name")] = prop.get("value")
    assert set(props) == {"test_bad[a b]", "test_bad[c]"}
    for name, p in props.items():
        assert Path(p["escope_recording"]).is_file()
        assert p["escope_run"] == run.path.name
        assert Rec(Path(p["escope_recording"])).meta["test_id"].endswith(name)


def test_summary_without_failures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok():\n    pass\n")
    res = pytester.runpytest_subprocess("--escope")
    res.assert_outcomes(passed=1)
    res.stdout.fnmatch_lines(["*no failed tests; run recorded in .escope*"])


def test_hookspecs(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        import json
        from pathlib import Path

        import pytest

        from test_hooks import Money


        def pytest_escope_recording_started(item, escope):
            escope.checkpoint("started by plugin", test=item.name)


        def pytest_escope_recording_finished(item, path, outcome, events):
            with open("finished.jsonl", "a") as fh:
                fh.write(json.dumps([item.nodeid, path, outcome, events]) + "\\n")


        def pytest_escope_render(value):
            if type(value) is Money:
                if value.cents == 13:
                    raise RuntimeError("an unlucky renderer")  # a fault: warned once, test unaffected
                return f"<{value.cents / 100:.2f} EUR>"
            return None
    """)
    pytester.makepyfile(test_hooks="""
        class Money:
            cents = 0

            def __init__(self, cents):
                self.cents = cents


        def test_ok():
            m = Money(150)
            assert m.cents == 150


        def test_fail():
            m = Money(250)
            assert m.cents == 0


        def test_unlucky():
            m = Money(13)
            n = Money(13)
            assert m.cents == n.cents
    """)
    res = pytester.runpytest_subprocess("--escope")
    res.assert_outcomes(passed=2, failed=1)
    warned = [ln for ln in res.stdout.lines if ln.startswith("escope warning")]
    assert warned == ["escope warning: a value could not be rendered (in test_hooks.py::test_unlucky); "
                      "the test ran normally"]
    calls = [__import__("json").loads(ln) for ln in (pytester.path / "finished.jsonl").read_text().splitlines()]
    assert [(c[0].split("::")[1], c[2]) for c in calls] == [
        ("test_ok", "passed"), ("test_fail", "failed"), ("test_unlucky", "passed")]
    assert calls[0][1] is None  # not kept
    assert Path(calls[1][1]).is_file() and calls[1][3] > 0
    rec = _run(pytester).recording("test_fail")
    assert calls[1][3] == int(rec.meta["event_count"])
    assert ("test_fail", "m", "Money", "<2.50 EUR>") in rec.bindings()
    cps = [e for e in rec.events() if e.kind == "checkpoint"]
    assert len(cps) == 1 and "started by plugin" in cps[0].value_repr


def test_no_escope_removes_it(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile("def test_x():\n    assert 0\n")
    monkeypatch.setenv("PYTEST_ESCOPE", "1")
    res = pytester.runpytest_subprocess("-p", "no:escope")
    res.assert_outcomes(failed=1)
    plugins = [ln for ln in res.stdout.lines if ln.startswith("plugins:")]
    assert plugins and "escope" not in plugins[0]
    assert "escope:" not in res.stdout.str()
    assert not (pytester.path / ".escope").exists()
    res = pytester.runpytest_subprocess("-p", "no:escope", "--escope")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*unrecognized arguments: --escope*"])
    pytester.makepyfile(test_fx="def test_fx(escope):\n    pass\n")
    res = pytester.runpytest_subprocess("-p", "no:escope", "test_fx.py")
    res.assert_outcomes(errors=1)
    res.stdout.fnmatch_lines(["*fixture 'escope' not found*"])


def test_bad_option_values_are_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    res = pytester.runpytest_subprocess("--escope", "--escope-max-events=0")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*escope*max-events*"])
    res = pytester.runpytest_subprocess("--escope", "--escope-strategy=everything")
    assert res.ret == pytest.ExitCode.USAGE_ERROR


def test_xdist_one_run_dir_one_index(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile("""
        import pytest


        @pytest.mark.parametrize("i", range(8))
        def test_many(i):
            x = i * 2
            assert x % 4 == 0
    """)
    res = pytester.runpytest_subprocess("--escope", "--escope-keep=all", "-n", "2")
    res.assert_outcomes(passed=4, failed=4)
    runs = list((pytester.path / ".escope" / "runs").iterdir())
    assert len(runs) == 1
    run = _run(pytester)
    rows = run.tests()
    assert len(rows) == 8
    assert {r["worker"] for r in rows.values()} == {"gw0", "gw1"}
    assert {r["outcome"] for r in rows.values()} == {"passed", "failed"}
    files = list((run.path / "tests").iterdir())
    assert len(files) == 8
    for tid, row in rows.items():
        rec = Rec(run.path / row["recording"])
        assert rec.meta["test_id"] == tid and rec.meta["worker"] == row["worker"]
        assert rec.meta["run_id"] == run.path.name
        assert rec.lines()
    out = res.stdout.str()
    assert out.count("escope: recording to") == 1
    assert "escope: 4 failed test recording(s)" in out
    assert sorted(p.name for p in run.path.iterdir()) == ["index.sqlite", "tests"]
