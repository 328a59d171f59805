"""A signal handler's exception reaches the test, as without escope.

CPython runs a Python signal handler wherever the main thread next checks
for pending calls: under recording that is often inside the recorder (its
Python code called from a callback, or the test thread waiting for the
writer).  What the handler raises is the test's (docs/reliability.md,
"Signals").  Each case runs a real pytest session, plain and recorded, on
every backend and strategy, under pytest-timeout so that a swallowed
exception (the loop never ends) fails instead of hanging.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import BACKENDS, Project, clean_env
from pytest_escope.recorder.settrace import SIGNAL_STOPPED, TRACER_REMOVED
from reliability import summary

ALARMS = 25

SOURCE = f'''
import signal

import pytest


class Timeout(Exception):
    pass


def on_alarm(signum, frame):
    raise Timeout()


class Deadline:
    """A handler that is a bound method of a callable object."""

    def __call__(self, signum, frame):
        raise Timeout()


def busy():
    # runs until the alarm: a list mutated at each step keeps the recorder
    # busy (snapshots, chunks handed to the writer).  The alarm is armed
    # here, so it always goes off inside this call, however slow the code
    # before it is under recording.
    signal.setitimer(signal.ITIMER_REAL, 0.005)
    n = 0
    items = []
    while True:
        n += 1
        items.append(n)
        if len(items) > 40:
            items.clear()


def catch_alarms(handler):
    old = signal.signal(signal.SIGALRM, handler)
    caught = 0
    try:
        for _ in range({ALARMS}):
            try:
                busy()
            except Timeout:
                caught += 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return caught


def test_function_handler():
    assert catch_alarms(on_alarm) == {ALARMS}


def test_callable_object_handler():
    assert catch_alarms(Deadline()) == {ALARMS}


def test_raises_context():
    signal.signal(signal.SIGALRM, on_alarm)
    with pytest.raises(Timeout):
        busy()
'''


@pytest.fixture(scope="module")
def alarms(tmp_path_factory: pytest.TempPathFactory) -> Project:
    proj = Project(tmp_path_factory.mktemp("signals") / "proj")
    proj.write("test_alarms.py", SOURCE)
    return proj


def _run(proj: Project, *args: str, pure: bool = False) -> str:
    env = clean_env(ESCOPE_PURE_PYTHON="1") if pure else clean_env()
    # the thread method: the tests use SIGALRM themselves
    res = proj.run("-p", "timeout", "--timeout=120", "--timeout-method=thread", *args, env=env)
    return summary(res.stdout)


def test_plain_run_catches_every_alarm(alarms: Project) -> None:
    assert _run(alarms) == "3 passed"


@pytest.mark.parametrize("strategy", ["minimal", "balanced", "full_trace"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_recorded_run_catches_every_alarm(alarms: Project, backend: str, strategy: str, tmp_path: Path) -> None:
    esc = tmp_path / "escope"
    got = _run(alarms, "--escope", "--escope-keep=all", f"--escope-backend={backend}",
               f"--escope-strategy={strategy}", f"--escope-dir={esc}")
    assert got == "3 passed"
    run = alarms.latest(esc)
    rec = run.recording("test_function_handler")
    try:
        busy_calls = [e for e in rec.events() if e.kind == "call" and e.function == "busy"]
        faults = [m for (m,) in rec.q("SELECT message FROM faults")]
    finally:
        rec.close()
    if backend == "monitoring":
        # sys.monitoring keeps filming after the handler's exception went by
        assert len(busy_calls) == ALARMS
        assert SIGNAL_STOPPED not in faults
    else:
        # sys.settrace unsets a trace function an exception leaves (CPython's
        # rule): the film ends at the first alarm the recorder met, and says so
        assert len(busy_calls) == ALARMS or {SIGNAL_STOPPED, TRACER_REMOVED} & set(faults), (len(busy_calls), faults)


@pytest.mark.skipif("monitoring" not in BACKENDS, reason="sys.monitoring needs Python 3.12+")
def test_python_callbacks_catch_every_alarm(alarms: Project, tmp_path: Path) -> None:
    got = _run(alarms, "--escope", "--escope-backend=monitoring", f"--escope-dir={tmp_path / 'escope'}", pure=True)
    assert got == "3 passed"


#: the regression case of a film that lost chunks to alarms: many short
#: alarms, each in a call that films until it goes off, so that a handler
#: runs again and again while chunks of the film are handed to its writer;
#: in several tests, since a recording's first chunk (which creates its
#: writer) was the likeliest to be lost
ROUNDS = 8
ALARMS_PER_ROUND = 30

MANY_SOURCE = f'''
import signal

import pytest


class Timeout(Exception):
    pass


def on_alarm(signum, frame):
    raise Timeout()


def busy():
    signal.setitimer(signal.ITIMER_REAL, 0.001)
    items = []
    while True:
        items.append(len(items))
        if len(items) > 40:
            items.clear()


@pytest.mark.parametrize("round", range({ROUNDS}))
def test_many_alarms(round):
    old = signal.signal(signal.SIGALRM, on_alarm)
    caught = 0
    try:
        for _ in range({ALARMS_PER_ROUND}):
            try:
                busy()
            except Timeout:
                caught += 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert caught == {ALARMS_PER_ROUND}
'''


@pytest.mark.skipif("monitoring" not in BACKENDS, reason="sys.monitoring needs Python 3.12+")
@pytest.mark.parametrize("strategy", ["minimal", "balanced", "full_trace"])
def test_alarms_never_cost_the_film_a_chunk(tmp_path: Path, strategy: str) -> None:
    # A handler that raised in the main thread between taking a chunk from
    # the film and queueing it for the writer dropped the chunk (and, for
    # the first one, the code rows naming every function in it).  Chunks are
    # taken on the flusher thread only: every call is filmed, and every
    # step, without a gap.
    proj = Project(tmp_path / "proj")
    proj.write("test_many.py", MANY_SOURCE)
    esc = tmp_path / "escope"
    got = _run(proj, "--escope", "--escope-keep=all", "--escope-backend=monitoring",
               f"--escope-strategy={strategy}", f"--escope-dir={esc}")
    assert got == f"{ROUNDS} passed"
    run = proj.latest(esc)
    films = []
    for n in range(ROUNDS):
        rec = run.recording(f"test_many_alarms[{n}]")
        try:
            busy_calls = sum(1 for e in rec.events() if e.kind == "call" and e.function == "busy")
            count, first, last = rec.q("SELECT count(*), min(step), max(step) FROM events")[0]
            total = int(rec.meta["event_count"])
        finally:
            rec.close()
        films.append((busy_calls, count == total and first == 0 and last == total - 1))
    assert films == [(ALARMS_PER_ROUND, True)] * ROUNDS
