"""A test killed at any moment keeps its film (docs/reliability.md, "Faults").

Each test runs a real pytest session in a subprocess whose test films a
fixed number of events and then dies the hard way: ``os._exit``, a
segfault through ctypes, a deadlock killed by pytest-timeout's ``thread``
method, or ``SIGKILL`` from this harness.  None of these gives the recorder
a chance to spill what it holds, and a test blocked in C films nothing
that would make it spill: only the flusher thread (recorder/flusher.py)
puts the film on disk.  What is left must be listed as ``crashed`` and
answer ``escope replay``, ``escope events`` and ``escope list``.

Workloads are sized by events: the dying test films ``work(5000)`` (10,000
line steps and more), then blocks, and dies only once that many steps are
on disk (or, for ``SIGKILL``, the harness waits for them).  The deadlines
below only keep a broken build from hanging the suite.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import Project
from reliability import cli, cli_json, meta, quiet_env

#: steps work(5000) films (two line steps an iteration); the film on disk
#: must hold them all when the test dies
WORK_STEPS = 10_000

DYING = '''
import ctypes, os, subprocess, sys, threading


def work(n):
    total = 0
    for i in range(n):
        total += i
    return total


#: run in a child process: waits until the film on disk holds WANT steps
POLL = r"""
import sqlite3, sys, time
path, want = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            if db.execute("SELECT coalesce(sum(steps), 0) FROM chunks").fetchone()[0] >= want:
                sys.exit(0)
        finally:
            db.close()
    except sqlite3.Error:
        pass
    time.sleep(0.01)
sys.exit("the film never reached the disk")
"""


def wait_on_disk(path, want):
    # blocked in C (waiting for the child) the whole time: this thread
    # films nothing, so nothing it does can make the recorder spill
    subprocess.run([sys.executable, "-c", POLL, str(path), str(want)], check=True)


def deadlock():
    lock = threading.Lock()
    lock.acquire()
    lock.acquire()


def test_before():
    assert work(10) == 45


def test_dies(escope):
    work(5000)
    how = os.environ["DIE"]
    if how == "kill":
        deadlock()  # the harness sends SIGKILL once the film is on disk
    wait_on_disk(escope.path, 10_000)
    if how == "exit":
        os._exit(3)
    elif how == "segv":
        ctypes.string_at(0)
    elif how == "timeout":
        deadlock()


def test_after():
    assert work(3) == 3
'''


def _steps_on_disk(path: Path) -> int:
    """Steps in the committed chunks of a recording being written (0 while
    it does not exist or is locked)."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.1)
        try:
            return db.execute("SELECT coalesce(sum(steps), 0) FROM chunks").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def _check_film(project: Project) -> None:
    """What the dead session left: the finished test complete, the dying one
    crashed with its film up to the moment it blocked, and every command
    works on it."""
    run = project.latest()
    dies = run.recording("::test_dies").path
    assert meta(run.recording("::test_before").path)["complete"] == "1"
    assert meta(dies)["complete"] == "0"
    listing = {t["test"]: t for t in cli_json("list", cwd=project.path)["runs"][0]["tests"]}
    assert "test_crash.py::test_after" not in listing
    assert listing["test_crash.py::test_before"]["outcome"] == "passed"
    listed = listing["test_crash.py::test_dies"]
    assert listed["outcome"] == "crashed" and listed["recording"]
    stats = cli_json("stats", str(dies), cwd=project.path)
    assert stats["outcome"] == "crashed" and stats["complete"] is False
    assert listed["events"] == stats["events"] >= WORK_STEPS
    # the last thing work() filmed before the test blocked is on disk
    returns = cli_json("events", str(dies), "--function", "work", "--kind", "return", cwd=project.path)
    assert [e["function"] for e in returns] == ["work"]
    totals = cli_json("history", str(dies), "total", "--limit", "0", cwd=project.path)
    assert totals[-1]["value"]["repr"] == str(sum(range(5000)))
    state = cli_json("replay", str(dies), cwd=project.path)
    assert any(f["function"] == "test_dies" for f in state["stack"])
    text = cli("list", cwd=project.path)
    assert text.returncode == 0 and "crashed  test_crash.py::test_dies" in text.stdout, text.stdout


@pytest.mark.parametrize("how", ["exit", "segv"])
def test_dies_while_blocked_keeps_its_film(how: str, project: Project) -> None:
    project.write("test_crash.py", DYING)
    res = project.run("--escope", "--escope-keep=all", env=quiet_env(DIE=how), timeout=300)
    expected = 3 if how == "exit" else -signal.SIGSEGV
    assert res.returncode == expected, res.out[-3000:]
    _check_film(project)


def test_deadlock_killed_by_timeout_keeps_its_film(project: Project) -> None:
    """pytest-timeout's ``thread`` method dumps the stacks and ``os._exit``s
    a deadlocked test: the film holds it up to the deadlock."""
    project.write("test_crash.py", DYING)
    env = quiet_env(DIE="timeout", PYTEST_ADDOPTS="-p no:randomly -p no:asyncio -p no:rerunfailures")
    res = project.run("--escope", "--escope-keep=all", "--timeout=20", "--timeout-method=thread", env=env)
    assert res.returncode != 0 and "Timeout" in res.out, res.out[-3000:]
    _check_film(project)
    dies = project.latest().recording("::test_dies").path
    state = cli_json("replay", str(dies), cwd=project.path)
    assert state["stack"][0]["function"] == "test_dies"


def test_sigkill_once_the_film_is_on_disk(project: Project) -> None:
    """The dying test deadlocks right after ``work(5000)``; the harness sends
    ``SIGKILL`` once that many steps are on disk."""
    project.write("test_crash.py", DYING)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--escope",
                             "--escope-keep=all"], cwd=project.path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=quiet_env(DIE="kill"))
    try:
        deadline = time.monotonic() + 120
        while True:
            runs = project.run_dirs()
            tests = runs[-1] / "tests" if runs else None
            films = sorted(tests.glob("test_crash.py_test_dies-*.sqlite")) if tests and tests.is_dir() else []
            if films and _steps_on_disk(films[0]) >= WORK_STEPS:
                break
            assert proc.poll() is None, "the session ended before the film was on disk"
            assert time.monotonic() < deadline, "the film of the blocked test never reached the disk"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _check_film(project)


#: A test that films without end, writing how far it got to a side file
#: after each round (outside the film: the file is what the test did).
FILMING = '''
import os, time


def work(n):
    total = 0
    for i in range(n):
        total += i
    return total


def test_films_until_killed():
    fd = os.open(os.environ["PROGRESS"], os.O_WRONLY | os.O_CREAT, 0o600)
    rounds = 0
    while True:
        work(20)
        rounds += 1
        os.pwrite(fd, b"%012d" % rounds, 0)
        time.sleep(0.001)
'''

#: steps of one round of FILMING's loop: work(20) is 2 + 2 * 20 + 2 steps
#: (call, lines, return), the loop's own lines 4 more
ROUND_STEPS = 48
#: the most steps a killed test may lose (docs/reliability.md)
MAX_LOST = 10_000


def test_sigkill_while_filming_loses_at_most_the_last_moments(project: Project) -> None:
    """``SIGKILL`` in the middle of filming, after 1,000 rounds (some 48,000
    steps): what the test did after its last step on disk is at most
    ``MAX_LOST`` steps (the side file says how far it really got)."""
    project.write("test_filming.py", FILMING)
    progress = project.path.parent / "progress"
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--escope",
                             "--escope-keep=all"], cwd=project.path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=quiet_env(PROGRESS=str(progress)))
    try:
        deadline = time.monotonic() + 120
        while not (progress.exists() and int(progress.read_bytes() or b"0") >= 1000):
            assert proc.poll() is None, "the session ended before the test had filmed enough"
            assert time.monotonic() < deadline, "the test never got through 1,000 rounds"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = int(progress.read_bytes())
    rec = project.latest().recording("::test_films_until_killed").path
    rounds = cli_json("history", str(rec), "rounds", "--limit", "0", cwd=project.path)
    filmed = int(rounds[-1]["value"]["repr"])
    assert 0 <= done - filmed and (done - filmed) * ROUND_STEPS <= MAX_LOST, (done, filmed)
    listing = cli_json("list", cwd=project.path)["runs"][0]["tests"]
    assert [(t["outcome"], t["events"] >= filmed * ROUND_STEPS) for t in listing] == [("crashed", True)]
    events = cli_json("events", str(rec), "--function", "work", "--limit", "3", cwd=project.path)
    assert len(events) == 3


#: A run index of an xdist session whose controller is alive (this test's
#: process) and whose worker gw0, with the process identity given on the
#: command line (``recorder/liveness.py``), still has a ``running`` test.
RUNNING_ROW = '''
import sys, time
from pathlib import Path
from pytest_escope.recorder.liveness import process_key
from pytest_escope.recorder.runs import RunDir, RunIndex
run = RunDir.create(Path(sys.argv[1]))
index = RunIndex(run.index_path)
index.set_run({"run_id": run.run_id, "pid": sys.argv[2], process_key("main"): sys.argv[3],
               process_key("gw0"): sys.argv[4]})
index.upsert_test({"test_id": "test_x.py::test_runs", "worker": "gw0", "outcome": "running",
                   "started_ns": time.time_ns()})
index.finish()
index.close()
'''


def _listed_outcome(tmp_path: Path, worker: str) -> str:
    """How ``escope list`` shows the running test of worker ``worker``."""
    from pytest_escope.recorder.liveness import process_identity
    escope_dir = tmp_path / ".escope"
    proc = subprocess.run([sys.executable, "-c", RUNNING_ROW, str(escope_dir), str(os.getpid()),
                           process_identity(), worker], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    tests = cli_json("list", "--escope-dir", str(escope_dir), cwd=tmp_path)["runs"][0]["tests"]
    assert len(tests) == 1
    return tests[0]["outcome"]


def test_running_row_of_a_live_process_stays_running(tmp_path: Path) -> None:
    """A test still running in a live process (another xdist worker, another
    session) is never called crashed."""
    from pytest_escope.recorder.liveness import process_identity
    assert _listed_outcome(tmp_path, process_identity()) == "running"


def test_running_row_of_a_reused_pid_is_crashed(tmp_path: Path) -> None:
    """The pid is alive, but it is another process than the one that wrote
    the row (it started at another time): the test crashed."""
    from pytest_escope.recorder.liveness import process_identity
    host, pid, start = process_identity().split()
    assert start != "-", "no /proc here"
    assert _listed_outcome(tmp_path, f"{host} {pid} {int(start) + 1}") == "crashed"


def test_running_row_of_a_dead_process_is_crashed(tmp_path: Path) -> None:
    """The worker died (its controller lives on): the test crashed."""
    from pytest_escope.recorder.liveness import process_identity
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    identity = process_identity(child.pid)
    child.communicate(b"")
    assert _listed_outcome(tmp_path, identity) == "crashed"


FINALIZED_ON_THE_WRITER = '''
import gc
import threading
import time

RAN_ON = []


class Junk:
    def __init__(self):
        self.me = self  # a cycle: freed by a collection, on whichever thread allocates then

    def __del__(self):
        RAN_ON.append(threading.current_thread().name)
        total = 0
        for i in range(2500):  # 5,000 steps: more than a chunk, so the film spills there
            total += i


def work(n):
    total = 0
    for i in range(n):
        total += i
    return total


def test_garbage_freed_while_the_writer_works():
    old = gc.get_threshold()
    gc.set_threshold(1_000_000)
    try:
        for n in range(30):
            Junk()
        assert work(30_000) > 0  # chunks for the writer to pack while this thread sleeps
        gc.set_threshold(10, 1, 1)
        time.sleep(1.0)  # no allocation here: the writer's allocations set off the collections
    finally:
        gc.set_threshold(*old)
        gc.collect()
    print("finalizers ran on", sorted(set(RAN_ON)))
'''


def test_a_finalizer_run_on_the_writer_thread_never_hangs_the_session(project: Project) -> None:
    """A collection set off by the writer thread's allocations runs the
    test's finalizers there; in scope, they are filmed, fill a chunk and ask
    the flusher to take it.  The flusher may itself be waiting for that
    writer's queue: the writer must not wait for it (a pyrsistent
    hypothesis suite hung this way)."""
    project.write("test_fin.py", FINALIZED_ON_THE_WRITER)
    res = project.run("--escope", "--escope-keep=all", "-s", env=quiet_env(), timeout=120)
    assert res.returncode == 0, res.out[-3000:]
    run = project.latest()
    rec = run.recording("::test_garbage_freed_while_the_writer_works").path
    assert meta(rec)["complete"] == "1"
    returns = cli_json("events", str(rec), "--function", "work", "--kind", "return", cwd=project.path)
    assert [e["function"] for e in returns] == ["work"]
    if "escope-writer" not in res.out:
        # which thread's allocation sets off the collection is the
        # interpreter's choice: on 3.12 the writer's, run after run
        pytest.skip("the finalizers ran on another thread than the writer: the case did not arise")
