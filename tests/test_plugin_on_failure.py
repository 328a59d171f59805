"""``pytest --escope-on-failure``: an unrecorded session, recorded reruns of what failed.

Every test runs a real pytest session in a subprocess (which starts the
reruns, each a pytest of its own), reads the run index and recordings it
leaves with the stdlib ``sqlite3``, and drives the real ``escope`` CLI on
them.  Flakiness is made real with a counter file: the test fails on the
runs whose number the test names, whoever runs it.
"""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from conftest import Project, Rec, Result, clean_env

#: A test that fails on the runs of it whose (0-based) number is in FAIL_ON.
FLAKY = '''
import pathlib

def test_flaky():
    counter = pathlib.Path(__file__).with_name("{name}.count")
    runs = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(runs + 1))
    assert runs not in {fail_on}, f"run {{runs}} fails"
'''

SUITE = '''
import pytest

def test_ok():
    assert sum([1, 2]) == 3

def test_det():
    total = 40 + 1
    assert total == 42

@pytest.mark.parametrize("value", [1, 2])
def test_param(value):
    assert value == 1
'''


def escope_cli() -> list[str]:
    """The installed ``escope`` command, as a user types it."""
    script = Path(sys.executable).with_name("escope")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pytest_escope.replay.cli"]


def run_cli(line: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run a command line the summary printed, exactly as pasted."""
    args = shlex.split(line)
    assert args[0] == "escope", line
    return subprocess.run(escope_cli() + args[1:], cwd=cwd, capture_output=True, text=True,
                          env=clean_env(), timeout=120)


def index_rows(project: Project) -> list[dict[str, Any]]:
    run_id = (project.escope_dir / "latest").read_text().strip()
    db = sqlite3.connect(f"file:{project.escope_dir / 'runs' / run_id / 'index.sqlite'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM tests ORDER BY test_id, attempt")]
    finally:
        db.close()


def run_dir(project: Project) -> Path:
    return project.escope_dir / "runs" / (project.escope_dir / "latest").read_text().strip()


def summary_line(res: Result, prefix: str) -> str:
    lines = [line.strip() for line in res.stdout.splitlines() if line.strip().startswith(prefix)]
    assert lines, res.out
    return lines[0][len(prefix):].strip()


def junit(path: Path) -> dict[str, str]:
    """Test id -> outcome, from a JUnit XML report."""
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        tid = f"{case.get('classname')}::{case.get('name')}"
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        out[tid] = kinds[0] if kinds else "passed"
    return out


def junit_properties(path: Path) -> list[str]:
    return [p.get("name", "") for p in ET.parse(path).getroot().iter("property")]


def test_a_deterministic_failure_is_recorded_and_replays(project: Project) -> None:
    project.write("test_suite.py", SUITE)
    plain = project.run("--junitxml=plain.xml")
    res = project.run("--escope-on-failure", "--junitxml=onf.xml")
    # the session's own outcome, exit status and report are those of the plain run
    assert res.returncode == plain.returncode == 1, res.out
    assert "2 failed, 2 passed" in plain.stdout and "2 failed, 2 passed" in res.stdout, res.out
    assert junit(project.path / "onf.xml") == junit(project.path / "plain.xml")
    assert len(junit(project.path / "onf.xml")) == 4
    assert junit_properties(project.path / "onf.xml") == []
    assert "escope: 2 failed test(s) recorded again" in res.stdout
    rows = index_rows(project)
    by_key = {(r["test_id"], r["attempt"]): r for r in rows}
    # a deterministic failure: the unrecorded row, then one recorded rerun that failed
    assert sorted(k for k in by_key if k[0] == "test_suite.py::test_det") == [
        ("test_suite.py::test_det", 0), ("test_suite.py::test_det", 1)]
    unrecorded, rerun = by_key[("test_suite.py::test_det", 0)], by_key[("test_suite.py::test_det", 1)]
    assert unrecorded["outcome"] == "failed" and unrecorded["recording"] is None
    assert unrecorded["call"] == "failed" and "assert 41 == 42" in unrecorded["failure"]
    assert rerun["outcome"] == "failed" and rerun["recording"].endswith(".rerun1.sqlite")
    assert rerun["recording"].startswith("tests/") and rerun["events"] > 0
    rec = Rec(run_dir(project) / rerun["recording"])
    try:
        assert rec.meta["attempt"] == "1" and rec.meta["outcome"] == "failed"
        assert rec.meta["test_id"] == "test_suite.py::test_det"
    finally:
        rec.close()
    # the parametrized failure is rerun alone: test_param[1] passed and is not rerun
    assert ("test_suite.py::test_param[2]", 1) in by_key
    # the session's passing tests are not in the index at all
    assert not any(r["test_id"] in ("test_suite.py::test_ok", "test_suite.py::test_param[1]") for r in rows)
    # the summary's replay line, pasted, opens the rerun's recording at the failure
    replay = summary_line(res, "replay:")
    assert replay == "escope replay test_suite.py::test_det"
    out = run_cli(replay + " --print", project.path)
    assert out.returncode == 0, out.stderr
    assert "->" in out.stdout and "assert total == 42" in out.stdout
    assert "AssertionError" in out.stdout
    quoted = run_cli("escope replay 'test_suite.py::test_param[2]' --json", project.path)
    assert quoted.returncode == 0, quoted.stderr
    assert json.loads(quoted.stdout)["exception"]["type"] == "AssertionError"


def test_a_flaky_failure_not_reproduced_keeps_the_passing_recordings(project: Project) -> None:
    project.write("test_flaky.py", FLAKY.format(name="flaky", fail_on="(0,)"))
    project.write("test_other.py", "def test_fine():\n    assert True\n")
    res = project.run("--escope-on-failure", "--escope-reruns", "2", "--junitxml=report.xml",
                      "--escope-pack=recordings.tar.gz")
    # the rerun passed: the test still failed, and the session with it
    assert res.returncode == 1, res.out
    assert "1 failed, 1 passed" in res.stdout
    assert junit(project.path / "report.xml") == {
        "test_flaky::test_flaky": "failure", "test_other::test_fine": "passed"}
    assert (project.path / "flaky.count").read_text() == "3"  # the session's run and two reruns
    assert "not reproduced in 2 recorded run(s): probably flaky" in res.stdout, res.out
    # no failing recording in this run: commands that work as pasted, and the diff in words
    assert summary_line(res, "replay:") == "escope replay test_flaky.py::test_flaky"
    assert summary_line(res, "record more runs:") == \
        "pytest --escope-on-failure --escope-reruns 10 test_flaky.py::test_flaky"
    assert summary_line(res, "once a recorded run fails (here or in CI):") == \
        f"escope diff test_flaky.py::test_flaky --run <that run> --run {run_dir(project).name}"
    replayed = subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", "replay", "test_flaky.py::test_flaky",
                               "--print"], cwd=project.path, capture_output=True, text=True, env=clean_env(),
                              timeout=300)
    assert replayed.returncode == 0, replayed.stderr
    assert "test_flaky" in replayed.stdout, replayed.stdout
    rows = [r for r in index_rows(project) if r["test_id"] == "test_flaky.py::test_flaky"]
    assert [(r["attempt"], r["outcome"]) for r in rows] == [(0, "failed"), (1, "passed"), (2, "passed")]
    assert rows[1]["recording"].endswith(".rerun1.sqlite") and rows[2]["recording"].endswith(".rerun2.sqlite")
    for row in rows[1:]:
        assert (run_dir(project) / row["recording"]).is_file()
    # --escope-pack packs the passing reruns too: they are what escope diff compares
    with tarfile.open(project.path / "recordings.tar.gz") as archive:
        names = archive.getnames()
    assert sum(name.endswith((".rerun1.sqlite", ".rerun2.sqlite")) for name in names) == 2, names
    listing = run_cli("escope list", project.path)
    assert listing.returncode == 0, listing.stderr
    assert "2 tests, 2 recorded reruns" not in listing.stdout  # only failed tests are listed
    assert "1 tests, 2 recorded reruns" in listing.stdout
    assert "test_flaky.py::test_flaky rerun 2" in listing.stdout and "(ran unrecorded)" in listing.stdout
    as_json = run_cli("escope list --json", project.path)
    attempts = [t["attempt"] for t in json.loads(as_json.stdout)["runs"][0]["tests"]]
    assert attempts == [0, 1, 2]


def test_a_flaky_failure_that_fails_again_keeps_both_for_diff(project: Project) -> None:
    # fails on the session's run and on the second rerun: rerun 1 passes, rerun 2 fails
    project.write("test_flaky.py", FLAKY.format(name="twice", fail_on="(0, 2)"))
    res = project.run("--escope-on-failure")
    assert res.returncode == 1, res.out
    rows = [r for r in index_rows(project) if r["test_id"] == "test_flaky.py::test_flaky"]
    assert [(r["attempt"], r["outcome"]) for r in rows] == [(0, "failed"), (1, "passed"), (2, "failed")]
    assert "failed again in recorded run 2: AssertionError: run 2 fails" in res.stdout, res.out
    assert "it passed in 1 recorded run(s) first: probably flaky" in res.stdout
    assert summary_line(res, "diff:") == "escope diff test_flaky.py::test_flaky"
    # TEST opens the failing recording, not the passing one
    out = run_cli(summary_line(res, "replay:") + " --json", project.path)
    assert out.returncode == 0, out.stderr
    state = json.loads(out.stdout)
    assert state["exception"]["type"] == "AssertionError" and "run 2 fails" in state["exception"]["repr"]


CHECK_NO_TRACER = '''
import json, pathlib, sys

def test_no_tracer():
    tools = {}
    if hasattr(sys, "monitoring"):
        tools = {i: sys.monitoring.get_tool(i) for i in range(6)}
    trace = sys.gettrace()
    loaded = sorted(m for m in sys.modules if m.startswith("pytest_escope.recorder."))
    pathlib.Path(__file__).with_name("observed.json").write_text(json.dumps({
        "tools": [t for t in tools.values() if t], "trace": repr(trace), "loaded": loaded}))

def test_fails():
    assert 1 == 2
'''


@pytest.mark.parametrize("how", ["option", "ini", "env"])
def test_the_unrecorded_session_installs_no_tracer(project: Project, how: str) -> None:
    """``--escope-on-failure``, ``escope = on-failure`` and
    ``PYTEST_ESCOPE=on-failure`` do the same: no tracer and no recorder
    module in the session, a recorded rerun of the failure afterwards."""
    project.write("test_check.py", CHECK_NO_TRACER)
    if how == "ini":
        project.write("pytest.ini", "[pytest]\nescope = on-failure\n")
    res = project.run(*(["--escope-on-failure"] if how == "option" else []),
                      env=clean_env(PYTEST_ESCOPE="on-failure") if how == "env" else None)
    assert res.returncode == 1 and "1 failed, 1 passed" in res.stdout, res.out
    observed = json.loads((project.path / "observed.json").read_text())
    assert observed["tools"] == [] and observed["trace"] == "None", observed
    # the recorder's tracer, collector and store are never imported
    assert not {"pytest_escope.recorder.collector", "pytest_escope.recorder.monitoring",
                "pytest_escope.recorder.settrace", "pytest_escope.recorder.session",
                "pytest_escope.recorder.store", "pytest_escope.recorder.runs"} & set(observed["loaded"])
    assert "escope: on failure" in res.stdout
    rows = index_rows(project)
    assert [(r["test_id"], r["attempt"], r["outcome"]) for r in rows] == [
        ("test_check.py::test_fails", 0, "failed"), ("test_check.py::test_fails", 1, "failed")]


def test_an_all_green_session_writes_nothing(project: Project) -> None:
    project.write("test_green.py", "def test_a():\n    assert True\n")
    res = project.run("--escope-on-failure")
    assert res.returncode == 0, res.out
    assert not project.escope_dir.exists()
    assert "escope: on failure" in res.stdout and "recorded again" not in res.stdout


@pytest.mark.parametrize("args, ini, message", [
    (("--escope", "--escope-on-failure"), "", "--escope records every test and --escope-on-failure only"),
    (("--escope-on-failure", "--escope-reruns", "0"), "", "--escope-reruns must be at least 1"),
    ((), "escope = sometimes\n", "the ini option escope must be true, false or on-failure, not 'sometimes'"),
])
def test_usage_errors(project: Project, args: tuple[str, ...], ini: str, message: str) -> None:
    project.write("pytest.ini", "[pytest]\n" + ini)
    project.write("test_x.py", "def test_x():\n    assert True\n")
    res = project.run(*args)
    assert res.returncode == 4, res.out
    errors = [line for line in res.stderr.splitlines() if line.strip()]
    assert errors == [f"ERROR: escope: {errors[0].split('escope: ', 1)[1]}"] and message in errors[0], res.stderr


def test_ini_true_still_records_every_test(project: Project) -> None:
    project.write("pytest.ini", "[pytest]\nescope = true\n")
    project.write("test_x.py", "def test_x():\n    assert 0\n")
    res = project.run()
    assert res.returncode == 1 and "escope: recording to" in res.stdout, res.out
    assert [(r["attempt"], bool(r["recording"])) for r in index_rows(project)] == [(0, True)]


def test_under_xdist_the_controller_reruns_once_at_the_end(project: Project) -> None:
    project.write("test_many.py", """
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_n(n):
            assert n % 3, f"{n} is a multiple of 3"
    """)
    res = project.run("-n", "2", "--escope-on-failure", "--junitxml=report.xml")
    assert res.returncode == 1 and "2 failed, 4 passed" in res.stdout, res.out
    assert res.stdout.count("failed test(s) recorded again") == 1
    assert set(junit(project.path / "report.xml").values()) == {"failure", "passed"}
    assert len(junit(project.path / "report.xml")) == 6
    rows = index_rows(project)
    assert [(r["test_id"], r["attempt"], r["outcome"], r["worker"]) for r in rows] == [
        ("test_many.py::test_n[0]", 0, "failed", "main"), ("test_many.py::test_n[0]", 1, "failed", "main"),
        ("test_many.py::test_n[3]", 0, "failed", "main"), ("test_many.py::test_n[3]", 1, "failed", "main"),
    ]
    # both reruns started after the last test of the session had finished
    assert res.stdout.index("escope: recording 2 failed test(s) again") > res.stdout.index("[100%]")
    assert len(list(run_dir(project).glob("tests/*.sqlite"))) == 2


def test_reruns_honour_fixtures_marks_and_options(project: Project) -> None:
    """Session fixtures are torn down before the reruns (the lock file a
    session fixture holds would fail the rerun otherwise), conftest options
    and ``--escope-*`` options reach the rerun, ``-k`` does not narrow it
    away, and a mark's strategy wins as in a recorded session."""
    project.write("conftest.py", """
        import os
        import pytest

        def pytest_addoption(parser):
            parser.addoption("--expect", default="none")

        @pytest.fixture(scope="session")
        def lock(tmp_path_factory):
            path = os.path.join(os.path.dirname(__file__), "session.lock")
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # a second holder fails here
            os.close(fd)
            yield path
            os.remove(path)

        @pytest.fixture(scope="module")
        def setting(request):
            return request.config.getoption("--expect")
    """)
    project.write("test_opts.py", """
        import pytest

        def test_uses_lock(lock, setting):
            assert setting == "seven"
            assert 3 + 3 == 7

        @pytest.mark.escope(strategy="minimal")
        @pytest.mark.parametrize("word", ["a b", "c[d]"])
        def test_marked(lock, word):
            assert " " not in word
    """)
    res = project.run("--escope-on-failure", "--expect", "seven", "--escope-strategy=full_trace",
                      "-k", "uses_lock or marked", "-x")
    assert res.returncode == 1, res.out
    assert "1 failed" in res.stdout  # -x: the session stopped at the first failure
    rows = {(r["test_id"], r["attempt"]): r for r in index_rows(project)}
    rerun = rows[("test_opts.py::test_uses_lock", 1)]
    assert rerun["outcome"] == "failed" and "assert (3 + 3) == 7" in rerun["failure"], rerun
    rec = Rec(run_dir(project) / rerun["recording"])
    try:
        assert rec.meta["strategy"] == "full_trace"
    finally:
        rec.close()
    assert not (project.path / "session.lock").exists()
    res = project.run("--escope-on-failure", "--expect", "seven", "--escope-strategy=full_trace",
                      "test_opts.py::test_marked")
    rows = {(r["test_id"], r["attempt"]): r for r in index_rows(project)}
    assert set(rows) == {("test_opts.py::test_marked[a b]", 0), ("test_opts.py::test_marked[a b]", 1)}
    rec = Rec(run_dir(project) / rows[("test_opts.py::test_marked[a b]", 1)]["recording"])
    try:
        assert rec.meta["strategy"] == "minimal" and rec.meta["outcome"] == "failed"
    finally:
        rec.close()
    assert "escope replay 'test_opts.py::test_marked[a b]'" in res.stdout


def test_a_test_the_rerun_cannot_collect_is_said_so(project: Project) -> None:
    # the parameter's id changes on every collection: the rerun finds no such test
    project.write("test_moving.py", """
        import pathlib
        import pytest

        counter = pathlib.Path(__file__).with_name("collections.count")
        seen = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(seen + 1))

        @pytest.mark.parametrize("n", [seen])
        def test_moving(n):
            assert n < 0
    """)
    res = project.run("--escope-on-failure")
    assert res.returncode == 1, res.out
    assert "could not be run again:" in res.stdout and "not found" in res.stdout, res.out
    assert "record it with: pytest --escope 'test_moving.py::test_moving[0]'" in res.stdout
    rows = index_rows(project)
    assert [(r["attempt"], r["recording"]) for r in rows] == [(0, None)]


def test_an_index_without_the_attempt_column_still_reads(project: Project) -> None:
    """A run index written before reruns existed (no ``attempt`` column,
    keyed by test and worker) lists and replays as attempt 0."""
    project.write("test_old.py", "def test_old():\n    value = 5\n    assert value == 6\n")
    res = project.run("--escope")
    assert res.returncode == 1, res.out
    index = run_dir(project) / "index.sqlite"
    db = sqlite3.connect(index)
    cols = ("test_id, worker, outcome, setup, call, teardown, duration_ns, events, dropped, bytes, "
            "recording, failure, started_ns")
    db.executescript(f"""
        ALTER TABLE tests RENAME TO tests_new;
        CREATE TABLE tests (test_id TEXT NOT NULL, worker TEXT NOT NULL, outcome TEXT NOT NULL,
            setup TEXT, call TEXT, teardown TEXT, duration_ns INTEGER, events INTEGER NOT NULL DEFAULT 0,
            dropped INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0, recording TEXT,
            failure TEXT, started_ns INTEGER, PRIMARY KEY (test_id, worker));
        INSERT INTO tests SELECT {cols} FROM tests_new;
        DROP TABLE tests_new;
        UPDATE run SET value = '1' WHERE key = 'schema_version';
    """)
    db.commit()
    db.close()
    listing = run_cli("escope list --json", project.path)
    assert listing.returncode == 0, listing.stderr
    tests = json.loads(listing.stdout)["runs"][0]["tests"]
    assert [(t["test"], t["attempt"], t["outcome"]) for t in tests] == [("test_old.py::test_old", 0, "failed")]
    shown = run_cli("escope replay test_old.py::test_old --print", project.path)
    assert shown.returncode == 0 and "assert value == 6" in shown.stdout, shown.stderr


def test_an_escope_dir_that_cannot_be_written_is_one_line(project: Project) -> None:
    project.write("test_x.py", "def test_x():\n    assert 0\n")
    project.write("blocker", "a file where the escope dir would go\n")
    res = project.run("--escope-on-failure", "--escope-dir=blocker/escope")
    # the session's own result stands; the reruns say why they could not be made, and what to do
    assert res.returncode == 1 and "1 failed" in res.stdout, res.out
    assert "escope: no failed test recorded" in res.stdout
    line = summary_line(res, "cannot write to")
    assert "blocker" in line and line.endswith("then: pytest --escope-on-failure --escope-dir=DIR"), line
    assert "Traceback" not in res.out
