"""Fault injection: escope never changes a test's outcome and never loses
what it already wrote (docs/reliability.md, "Faults").

Each test runs a real pytest session in a subprocess, breaks something for
real (the process dies, the disk fills, the directory goes read-only, a
reader holds SQLite locks, Ctrl-C), then checks the files with plain SQL
and the real ``escope`` CLI.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BACKENDS, Project, Rec
from reliability import (cli, cli_json, count, escope_warnings, integrity_ok, meta, quiet_env, replays, run_both,
                         summary)

#: A test that films > 100,000 line events (one chunk spills to disk), waits
#: until that chunk is committed, then dies the way $DIE says.
DYING = '''
import ctypes, os, sqlite3, time


def work(n):
    total = 0
    for i in range(n):
        total += i
    return total


def wait_flushed(path):
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                n = db.execute("SELECT coalesce(sum(steps), 0) FROM chunks").fetchone()[0]
            finally:
                db.close()
            if n:
                return n
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    raise AssertionError("nothing was flushed")


def test_before():
    assert work(10) == 45


def test_dies(escope):
    marker = work(60_000)
    wait_flushed(escope.path)
    how = os.environ["DIE"]
    if how == "exit":
        os._exit(3)
    elif how == "segv":
        ctypes.string_at(0)
    elif how == "kill":
        open(os.environ["READY"], "w").close()
        time.sleep(300)


def test_after():
    assert work(3) == 3
'''


def _check_crashed_run(project: Project, full: bool = True) -> None:
    run = project.latest()
    before = run.recording("::test_before").path
    dies = run.recording("::test_dies").path
    # the test that finished before the crash: complete and closed
    assert meta(before)["complete"] == "1" and integrity_ok(before)
    assert not Path(str(before) + "-journal").exists()
    # the dying test: what was flushed is there, marked incomplete
    m = meta(dies)
    assert m["complete"] == "0"
    assert count(dies, "events") >= 100_000
    out = replays(dies, project.path, full)
    assert out["stats"]["complete"] is False and out["stats"]["outcome"] == "crashed"
    assert any(f["function"] == "work" for f in out["state"]["stack"]) or \
        any(f["function"] == "test_dies" for f in out["state"]["stack"])
    if full:
        hist = cli_json("history", str(dies), "total", "--limit", "0", cwd=project.path)
        assert len(hist) > 1000
    # test_after never ran; the index says what happened to test_dies
    listing = cli_json("list", cwd=project.path)
    tests = {t["test"]: t for t in listing["runs"][0]["tests"]}
    assert "test_crash.py::test_after" not in tests
    assert tests["test_crash.py::test_before"]["outcome"] == "passed"
    assert tests["test_crash.py::test_dies"]["outcome"] == "crashed"
    # the index never got the dying test's last row: the listing says what
    # the file holds, as `escope stats` does
    listed = tests["test_crash.py::test_dies"]
    assert listed["events"] == out["stats"]["events"] >= 100_000, (listed, out["stats"]["events"])
    assert listed["bytes"] == dies.stat().st_size and listed["recording"]


@pytest.mark.parametrize("how", ["exit", "segv"])
def test_process_dies_mid_test(how: str, project: Project) -> None:
    project.write("test_crash.py", DYING)
    res = project.run("--escope", "--escope-keep=all", env=quiet_env(DIE=how), timeout=300)
    if how == "exit":
        assert res.returncode == 3, res.out[-3000:]
    else:
        assert res.returncode == -signal.SIGSEGV, res.out[-3000:]
        assert "Fatal Python error: Segmentation fault" in res.stderr
    _check_crashed_run(project, full=how == "exit")


def test_sigkill_from_outside(project: Project) -> None:
    project.write("test_crash.py", DYING)
    ready = project.path.parent / "ready"
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--escope",
                             "--escope-keep=all"], cwd=project.path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=quiet_env(DIE="kill", READY=str(ready)))
    try:
        deadline = time.monotonic() + 240
        while not ready.exists():
            assert proc.poll() is None, "the session ended before the test was ready"
            assert time.monotonic() < deadline, "the test never got ready"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _check_crashed_run(project, full=False)


#: A writer that dies inside a chunk's transaction: the file keeps a hot
#: rollback journal (the transaction is bigger than SQLite's page cache, so
#: pages were already spilled into the file).
KILLED_MID_CHUNK = '''
import os, sys, apsw
from pytest_escope.recorder import schema
db = apsw.Connection(sys.argv[1])
db.execute("PRAGMA page_size=1024; PRAGMA journal_mode=DELETE; PRAGMA synchronous=OFF")
with db:
    db.execute(schema.TABLES_SCHEMA)
    db.executemany("INSERT INTO meta VALUES (?, ?)", [("format", schema.FORMAT_NAME),
                   ("schema_version", str(schema.SCHEMA_VERSION)), ("complete", "0"), ("pid", str(os.getpid()))])
db.execute("BEGIN")
db.execute("INSERT INTO chunks (first_step, steps, data) SELECT i, 1, randomblob(1000) FROM (WITH RECURSIVE c(i) AS "
           "(SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000) SELECT i FROM c)")
os._exit(9)
'''


def test_writer_killed_mid_chunk_is_listed_crashed(tmp_path: Path) -> None:
    """``escope list`` settles a ``running`` row whose writer died mid-chunk.

    A read-only connection cannot read past the hot journal such a death
    leaves, so the check of the writer's pid used to give up and the test
    stayed ``running`` for ever (the os._exit/SIGKILL/timeout tests above
    failed now and then: whenever the death landed inside a chunk).
    """
    from pytest_escope.recorder.runs import RunDir, RunIndex
    run = RunDir.create(tmp_path / ".escope")
    rec = run.recording_path("test_x.py::test_dies")
    proc = subprocess.run([sys.executable, "-c", KILLED_MID_CHUNK, str(rec)], timeout=120)
    assert proc.returncode == 9
    assert Path(str(rec) + "-journal").stat().st_size > 0
    index = RunIndex(run.index_path)
    index.upsert_test({"test_id": "test_x.py::test_dies", "worker": "main", "outcome": "running",
                       "recording": os.path.relpath(rec, run.path), "started_ns": time.time_ns()})
    index.finish()
    index.close()
    before = rec.read_bytes()
    tests = cli_json("list", cwd=tmp_path)["runs"][0]["tests"]
    assert [(t["test"], t["outcome"]) for t in tests] == [("test_x.py::test_dies", "crashed")]
    assert rec.read_bytes() == before and Path(str(rec) + "-journal").exists()


#: hang() films a fixed number of steps, then blocks in C for good: the
#: film's size is set by events, not by how long the timeout takes to fire
#: (a loop that kept filming until the timeout grew with the machine's speed).
HANGING_SIMPLE = '''
import time


def spin(n):
    k = 0
    for _ in range(n):
        k += 1
    return k


def hang():
    spin(2_000)
    time.sleep(3600)


def test_ok():
    assert sum(range(4)) == 6


def test_hangs():
    hang()
'''

#: The hanging test first films > 100,000 events and waits until that chunk
#: is on disk (a busy traced thread can starve the writer thread of the GIL
#: past any timeout), then hangs for good as above.
HANGING = DYING.split("def test_before")[0] + '''
def spin(n):
    k = 0
    for _ in range(n):
        k += 1
    return k


def hang():
    spin(2_000)
    time.sleep(3600)


def test_ok():
    assert sum(range(4)) == 6


def test_hangs(escope):
    if escope.enabled:
        work(60_000)
        wait_flushed(escope.path)
    hang()
'''


def test_timeout_thread_method_kills_the_process(project: Project) -> None:
    """pytest-timeout's ``thread`` method dumps the stacks and ``os._exit``s."""
    project.write("test_hangs.py", HANGING)
    env = quiet_env(PYTEST_ADDOPTS="-p no:randomly -p no:asyncio -p no:rerunfailures")
    res = project.run("--escope", "--escope-keep=all", "--timeout=25", "--timeout-method=thread", env=env)
    assert res.returncode != 0 and "Timeout" in res.out, res.out[-3000:]
    run = project.latest()
    hangs = run.recording("::test_hangs").path
    # sized by events: the 60,000 iterations of work() and the polling of
    # wait_flushed(), never by how long the hang lasted
    assert meta(hangs)["complete"] == "0" and 100_000 <= count(hangs, "events") < 400_000
    out = replays(hangs, project.path, full=False)
    assert out["stats"]["outcome"] == "crashed"
    assert out["state"]["stack"][0]["function"] == "test_hangs"
    tests = {t["test"]: t for t in cli_json("list", cwd=project.path)["runs"][0]["tests"]}
    assert tests["test_hangs.py::test_ok"]["outcome"] == "passed"
    assert tests["test_hangs.py::test_hangs"]["outcome"] == "crashed"


def test_timeout_signal_method_fails_the_test(project: Project) -> None:
    """pytest-timeout's ``signal`` method raises in the test: a normal failure."""
    project.write("test_hangs.py", HANGING_SIMPLE)
    env = quiet_env(PYTEST_ADDOPTS="-p no:randomly -p no:asyncio -p no:rerunfailures")
    plain, rec = run_both(project, "--timeout=3", "--timeout-method=signal", env=env)
    assert summary(plain.stdout) == summary(rec.stdout) == "1 failed, 1 passed"
    hangs = project.latest().recording("::test_hangs").path
    m = meta(hangs)
    assert m["complete"] == "1" and m["outcome"] == "failed" and "Timeout" in m["failure"]
    state = replays(hangs, project.path, full=False)["state"]
    assert state["stack"][0]["function"] == "test_hangs"
    spun = cli_json("events", str(hangs), "--function", "spin", "--limit", "3", cwd=project.path)
    assert len(spun) == 3 and {e["function"] for e in spun} == {"spin"}


#: Six tests; the fourth breaks the escope dir for the rest of the session.
BREAKER = '''
import os
import pytest


def test_1_pass():
    x = [1, 2, 3]
    assert sum(x) == 6


def test_2_fail():
    y = {"a": 1}
    assert y["a"] == 2


def test_3_fail():
    z = list(range(50))
    assert len(z) == 49


def test_4_break_it():
    how = os.environ["BREAK"]
    if how == "disk-full":
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1, hard))
    else:
        import subprocess
        target = os.environ["TARGET"]
        if os.geteuid() == 0:
            subprocess.run(["chattr", "+i", target], check=True)
        else:
            os.chmod(target, 0o500)


def test_5_fail():
    w = "abc"
    assert w.upper() == "abc"


def test_6_pass():
    v = [i * i for i in range(10)]
    assert v[3] == 9


def test_7_error(missing_fixture):
    pass
'''


@pytest.fixture
def breaker(project: Project):
    project.write("test_break.py", BREAKER)
    frozen: list[Path] = []
    yield project, frozen
    for path in frozen:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=False)
        else:
            os.chmod(path, 0o700)


def _assert_one_warning_same_outcomes(plain, rec) -> None:
    assert rec.returncode == plain.returncode == 1, rec.out[-3000:]
    assert summary(rec.stdout) == summary(plain.stdout) == "3 failed, 3 passed, 1 error"
    assert "INTERNALERROR" not in rec.out and "Traceback" not in rec.stderr
    warned = escope_warnings(rec.stdout)
    assert len(warned) == 1, warned


@pytest.mark.parametrize("keep", ["failed", "all"])
def test_disk_full_mid_run(keep: str, breaker) -> None:
    project, _ = breaker
    plain, rec = run_both(project, f"--escope-keep={keep}", env=quiet_env(BREAK="disk-full"))
    _assert_one_warning_same_outcomes(plain, rec)
    run = project.latest()
    assert meta(run.recording("test_2_fail").path)["complete"] == "1"


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("chattr") is None, reason="root without chattr")
def test_escope_dir_turns_read_only_mid_run(breaker, tmp_path: Path) -> None:
    project, frozen = breaker
    escope_dir = tmp_path / "esc"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    frozen.append(scratch)
    plain = project.run("-rA", env=quiet_env(BREAK="read-only", TARGET=str(scratch)))
    # the inner test freezes the tests/ dir of the run it is part of: a
    # conftest tells it where that is once the run exists
    project.write("conftest.py", '''
        import os
        def pytest_sessionstart(session):
            base = os.environ["ESCOPE_D"]
            run = open(os.path.join(base, "latest")).read().strip()
            os.environ["TARGET"] = os.path.join(base, "runs", run, "tests")
    ''')
    rec = project.run("-rA", "--escope", f"--escope-dir={escope_dir}",
                      env=quiet_env(BREAK="read-only", ESCOPE_D=str(escope_dir)))
    run_dir = next((escope_dir / "runs").iterdir())
    frozen.append(run_dir / "tests")
    _assert_one_warning_same_outcomes(plain, rec)
    kept = {p.name for p in (run_dir / "tests").iterdir()}
    assert any("test_2_fail" in k for k in kept) and not any("test_5_fail" in k for k in kept)


def test_escope_dir_read_only_keeps_outcomes(breaker, tmp_path: Path) -> None:
    """The part of the read-only case that holds today: outcomes, no crash."""
    project, frozen = breaker
    escope_dir = tmp_path / "esc"
    project.write("conftest.py", '''
        import os
        def pytest_sessionstart(session):
            base = os.environ["ESCOPE_D"]
            run = open(os.path.join(base, "latest")).read().strip()
            os.environ["TARGET"] = os.path.join(base, "runs", run, "tests")
    ''')
    env = quiet_env(BREAK="read-only", ESCOPE_D=str(escope_dir))
    rec = project.run("-rA", "--escope", f"--escope-dir={escope_dir}", env=env)
    run_dir = next((escope_dir / "runs").iterdir())
    frozen.append(run_dir / "tests")
    assert rec.returncode == 1 and summary(rec.stdout) == "3 failed, 3 passed, 1 error", rec.out[-3000:]
    assert "INTERNALERROR" not in rec.out
    assert 1 <= len(escope_warnings(rec.stdout))
    before = next(p for p in (run_dir / "tests").iterdir() if "test_2_fail" in p.name)
    assert meta(before)["complete"] == "1" and integrity_ok(before)


READERS = '''
import json, os, sqlite3, subprocess, sys, threading, time

HELD = []


def work(n):
    total = 0
    for i in range(n):
        total += i
    return total


def test_1_fails():
    data = [work(5), work(6)]
    assert data == [10, 16]


def test_2_lists_while_running(escope):
    if not escope.enabled:
        return
    res = subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", "list", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    tests = {t["test"]: t["outcome"] for t in json.loads(res.stdout)["runs"][0]["tests"]}
    assert tests["test_readers.py::test_1_fails"] == "failed"
    assert tests["test_readers.py::test_2_lists_while_running"] == "running"
    # hold a read transaction on the run index across the next tests
    base = os.path.join(".escope", "runs", open(".escope/latest").read().strip(), "index.sqlite")
    db = sqlite3.connect(base, check_same_thread=False, isolation_level=None)
    db.execute("BEGIN")
    db.execute("SELECT count(*) FROM tests").fetchall()
    HELD.append(db)


def test_3_big_under_a_reader(escope):
    stop = []

    def reader():
        while not stop:
            try:
                db = sqlite3.connect(f"file:{escope.path}?mode=ro", uri=True, timeout=30)
                db.execute("BEGIN")
                db.execute("SELECT count(*) FROM chunks").fetchall()
                time.sleep(0.2)
                db.close()
            except sqlite3.Error:
                time.sleep(0.05)

    t = threading.Thread(target=reader)
    t.start()
    try:
        total = work(60_000) + work(60_000)
    finally:
        stop.append(1)
        t.join()
    assert total == 0


def test_4_releases():
    if HELD:
        HELD.pop().close()
    assert False, "after the reader"
'''


def test_readers_during_the_run(project: Project) -> None:
    project.write("test_readers.py", READERS)
    plain, rec = run_both(project, env=quiet_env())
    assert summary(plain.stdout) == summary(rec.stdout) == "3 failed, 1 passed", rec.out[-3000:]
    assert escope_warnings(rec.stdout) == []
    run = project.latest()
    rows = run.tests()
    for tid, row in rows.items():
        if row["recording"]:
            path = run.path / row["recording"]
            m = meta(path)
            assert m["complete"] == "1", tid
            assert int(m["event_count"]) == row["events"] == count(path, "events"), tid
    big = rows["test_readers.py::test_3_big_under_a_reader"]
    assert big["outcome"] == "failed" and big["events"] > 240_000


FAULTY_RENDER = {
    "conftest.py": '''
        class Boom:
            pass


        def pytest_escope_render(value):
            if type(value).__name__ == "Boom":
                raise RuntimeError("renderer exploded")
            return None
    ''',
    "test_render.py": '''
        from conftest import Boom


        def test_a_fails():
            b = Boom()
            items = [b, b]
            assert len(items) == 3


        def test_b_passes():
            b = Boom()
            assert b is not None


        def test_c_fails():
            b = Boom()
            assert b is None
    ''',
}


def test_exception_inside_the_renderer_is_counted_and_warned_once(project: Project) -> None:
    """A hook that raises inside the recorder's value rendering: real today."""
    for name, text in FAULTY_RENDER.items():
        project.write(name, text)
    plain, rec = run_both(project, env=quiet_env())
    assert summary(plain.stdout) == summary(rec.stdout) == "2 failed, 1 passed"
    assert rec.returncode == plain.returncode == 1
    a = project.latest().recording("test_a_fails").path
    assert int(meta(a)["recorder_faults"]) >= 1
    assert cli_json("stats", str(a), cwd=project.path)["outcome"] == "failed"
    warned = escope_warnings(rec.stdout)
    assert warned and all("could not be rendered" in w for w in warned)


def test_recorder_fault_is_warned_once_per_session(project: Project) -> None:
    for name, text in FAULTY_RENDER.items():
        project.write(name, text)
    rec = project.run("-rA", "--escope", env=quiet_env())
    assert len(escope_warnings(rec.stdout)) == 1, escope_warnings(rec.stdout)


FAULT_POINTS = ["render", "event", "write", "start"]


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_injected_recorder_fault(point: str, project: Project) -> None:
    """ESCOPE_TEST_FAULT=<point> makes the recorder raise there, on demand."""
    project.write("test_f.py", FAULTY_RENDER["test_render.py"].replace("from conftest import Boom",
                                                                     "class Boom:\n            pass"))
    plain = project.run("-rA", env=quiet_env())
    rec = project.run("-rA", "--escope", "--escope-keep=all", env=quiet_env(ESCOPE_TEST_FAULT=point))
    assert summary(plain.stdout) == summary(rec.stdout) == "2 failed, 1 passed"
    assert rec.returncode == 1 and "INTERNALERROR" not in rec.out
    warned = escope_warnings(rec.stdout)
    assert len(warned) == 1 and "injected" in warned[0], warned
    if point in ("render", "event"):
        a = project.latest().recording("test_a_fails").path
        assert int(meta(a)["recorder_faults"]) >= 1 and meta(a)["complete"] == "1"


INTERRUPTED = '''
def test_1_fails():
    a = [1, 2]
    assert a == [2, 1]


def test_2_passes():
    b = sum(range(5))
    assert b == 10


def test_3_interrupted():
    c = "ctrl-c"
    raise KeyboardInterrupt


def test_4_never_runs():
    assert False
'''


def test_keyboard_interrupt_closes_recordings(project: Project) -> None:
    project.write("test_int.py", INTERRUPTED)
    plain = project.run("-rA", env=quiet_env())
    rec = project.run("-rA", "--escope", "--escope-keep=all", env=quiet_env())
    assert rec.returncode == plain.returncode == 2, rec.out[-3000:]
    assert "KeyboardInterrupt" in rec.stdout and "test_4" not in rec.stdout.split("short test summary")[-1]
    run = project.latest()
    assert run.facts()["exitstatus"] == "2"
    for part in ("test_1_fails", "test_2_passes", "test_3_interrupted"):
        path = run.recording(part).path
        assert meta(path)["complete"] == "1" and integrity_ok(path), part
        assert not Path(str(path) + "-journal").exists()
    assert meta(run.recording("test_1_fails").path)["outcome"] == "failed"
    assert not any(p.name.endswith(("-wal", "-journal")) for p in run.path.rglob("*"))
    assert "test_int.py::test_4_never_runs" not in run.tests()


def test_interrupted_test_is_not_passed(project: Project) -> None:
    project.write("test_int.py", INTERRUPTED)
    project.run("-rA", "--escope", "--escope-keep=all", env=quiet_env())
    run = project.latest()
    assert run.tests()["test_int.py::test_3_interrupted"]["outcome"] != "passed"
    assert meta(run.recording("test_3_interrupted").path)["outcome"] != "passed"


#: Forked children that run filmed code: multiprocessing's ``fork`` context
#: and a bare ``os.fork()``.  Each child films more than a chunk's worth of
#: events (100,000), so a child that still recorded would spill to the
#: parent's file; the second test's parent has spilled a chunk before it
#: forks, so its writer is running when the child is made.
FORKING = '''
import multiprocessing, os


def work(n):
    total = 0
    for i in range(n):
        total += i
    return total


def in_child():
    work(60_000)


def test_1_mp_fork_fails():
    p = multiprocessing.get_context("fork").Process(target=in_child)
    p.start()
    p.join()
    assert p.exitcode == 0
    assert work(10) == 0


def test_2_bare_fork_fails():
    work(60_000)
    pid = os.fork()
    if pid == 0:
        in_child()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    assert work(10) == 0


def test_3_later_fails():
    assert work(5) == 0


def test_4_passes():
    assert work(5) == 10
'''


@pytest.mark.parametrize("backend", BACKENDS)
def test_forked_child_records_nothing(backend: str, project: Project) -> None:
    """A forked child films nothing and leaves the parent's recording and
    the rest of the session as they would be without the fork."""
    project.write("test_forking.py", FORKING)
    plain = project.run("-rA", "-W", "ignore::DeprecationWarning", env=quiet_env())
    rec = project.run("-rA", "-W", "ignore::DeprecationWarning", "--escope", f"--escope-backend={backend}",
                      env=quiet_env())
    assert rec.returncode == plain.returncode == 1, rec.out[-3000:]
    assert summary(rec.stdout) == summary(plain.stdout) == "3 failed, 1 passed"
    assert escope_warnings(rec.stdout) == [], rec.stdout[-3000:]
    run = project.latest()
    tests = run.tests()
    for part in ("test_1_mp_fork_fails", "test_2_bare_fork_fails", "test_3_later_fails"):
        row = tests[f"test_forking.py::{part}"]
        assert row["outcome"] == "failed" and row["recording"], row
        path = run.path / row["recording"]
        assert meta(path)["complete"] == "1", part
        assert integrity_ok(path) and not Path(str(path) + "-journal").exists()
        recording = Rec(path)
        try:
            # the parent's own code is there; nothing the child ran is
            assert recording.frames(part), part
            assert recording.frames("in_child") == [], part
            assert int(meta(path)["event_count"]) == row["events"] > 0
        finally:
            recording.close()
    assert tests["test_forking.py::test_4_passes"]["outcome"] == "passed"
    listed = {t["test"]: t["outcome"] for t in cli_json("list", cwd=project.path)["runs"][0]["tests"]}
    assert list(listed.values()).count("failed") == 3
    stats = cli_json("stats", str(run.path / tests["test_forking.py::test_2_bare_fork_fails"]["recording"]),
                     cwd=project.path)
    assert stats["outcome"] == "failed" and stats["complete"] is True


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("chattr") is None, reason="root without chattr")
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_escope_dir_read_only_at_start(workers: list[str], breaker, tmp_path: Path) -> None:
    """An escope dir that cannot be written before the first test: one
    warning, every test runs (unrecorded), pytest's own exit status."""
    project, frozen = breaker
    escope_dir = tmp_path / "esc"
    escope_dir.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(escope_dir)], check=True)
    else:
        os.chmod(escope_dir, 0o500)
    frozen.append(escope_dir)
    # test_4 breaks nothing here: it freezes a scratch dir of its own
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    frozen.append(scratch)
    env = quiet_env(BREAK="read-only", TARGET=str(scratch))
    plain = project.run("-rA", *workers, env=env)
    rec = project.run("-rA", *workers, "--escope", f"--escope-dir={escope_dir}", env=env)
    assert rec.returncode == plain.returncode == 1, rec.out[-3000:]
    assert summary(rec.stdout) == summary(plain.stdout) == "3 failed, 3 passed, 1 error"
    assert "INTERNALERROR" not in rec.out and "Traceback" not in rec.stderr
    warned = [ln for ln in rec.out.splitlines() if "escope warning" in ln.lower()]
    assert len(warned) == 1 and str(escope_dir) in warned[0] and "unrecorded" in warned[0], warned
    assert list(escope_dir.iterdir()) == []


#: The disk fills after the second test's recording was created (its
#: schema, 22 kB, is within the limit) and before its first chunk is
#: committed (the chunk takes it past the limit).
FILLS_AFTER_OPEN = '''
import os, resource, signal


def work(n):
    total = 0
    for i in range(n):
        total += i
    return total


def test_1_fails():
    assert work(2000) == -1


def test_2_disk_fills():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, hard))
    assert work(2000) == -1


def test_3_fails():
    assert work(10) == -1
'''


def test_disk_full_leaves_no_empty_recording(project: Project) -> None:
    """A recording whose first chunk the full disk refused is removed, not
    left behind with no event (which replays as a test that ran no code)."""
    project.write("test_fills.py", FILLS_AFTER_OPEN)
    plain, rec = run_both(project)
    assert rec.returncode == plain.returncode == 1, rec.out[-3000:]
    assert summary(rec.stdout) == summary(plain.stdout) == "3 failed"
    assert len(escope_warnings(rec.stdout)) == 1, rec.stdout[-3000:]
    run = project.latest()
    kept = sorted((run.path / "tests").iterdir())
    names = [p.name.split("-")[0] for p in kept]
    # the flusher may have committed test_2's first steps (before its body
    # set the limit) in a chunk of their own: then they are kept, with events
    assert names in (["test_fills.py_test_1_fails"], ["test_fills.py_test_1_fails", "test_fills.py_test_2_disk_fills"]), kept
    assert count(kept[0], "events") > 2000 and meta(kept[0])["complete"] == "1"
    listed = {t["test"]: t for t in cli_json("list", cwd=project.path)["runs"][0]["tests"]}
    assert listed["test_fills.py::test_1_fails"]["recording"]
    filled = listed["test_fills.py::test_2_disk_fills"]
    res = cli("replay", "test_fills.py::test_2_disk_fills", cwd=project.path)
    if len(kept) == 1:
        assert filled["recording"] is None and filled["bytes"] == 0, filled
        assert res.returncode != 0 and "ran no recorded code" not in res.stdout + res.stderr, res.stderr
    else:
        assert count(kept[1], "events") > 0, kept[1]
        assert "ran no recorded code" not in res.stdout + res.stderr, res.stderr
