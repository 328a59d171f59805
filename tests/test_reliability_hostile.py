"""Hostile programs behave exactly as without escope, and still leave a
valid recording (docs/reliability.md, "Hostile programs").

One inner project holds every hostile test; it runs once plain and once
per backend with ``--escope --escope-keep=all``.  Outcomes and the ``OUT``
lines each test prints must be identical; every recording must pass
SQLite's integrity check, be complete, and answer every replay command
(run through the real CLI entry point, ``cli.main``, in one subprocess).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BACKENDS, Project, module_project, outcomes
from reliability import integrity_ok, meta, quiet_env

HOSTILE = '''
import asyncio
import builtins
import gc
import sys
import threading

import pytest


class RaisesEverywhere:
    """Every dunder the recorder might be tempted to call raises."""

    def __init__(self):
        object.__setattr__(self, "payload", 42)

    def _boom(self, *a, **k):
        raise RuntimeError("dunder called")

    __repr__ = __str__ = __eq__ = __ne__ = __lt__ = __len__ = __iter__ = __bool__ = _boom
    __hash__ = __format__ = __sizeof__ = __reduce__ = __reduce_ex__ = __dir__ = _boom
    __getstate__ = __copy__ = __deepcopy__ = __contains__ = __getitem__ = _boom

    def __getattribute__(self, name):
        if name in ("payload", "_boom", "__class__"):
            return object.__getattribute__(self, name)
        raise RuntimeError("getattribute " + name)

    def __setattr__(self, name, value):
        raise RuntimeError("setattr")


class Selfish:
    """__getattr__ returns itself: any attribute chain is infinite."""

    def __getattr__(self, name):
        return self

    def __call__(self, *a, **k):
        return self


class Lazy:
    reads = 0

    @property
    def value(self):
        type(self).reads += 1
        return type(self).reads

    @property
    def broken(self):
        raise RuntimeError("property read")


def test_raises_in_every_dunder():
    r = RaisesEverywhere()
    items = [r, r]
    mapping = {1: r}
    print("OUT dunder", r.payload, len(items), type(r).__name__)
    with pytest.raises(RuntimeError):
        r == r
    assert r.payload == 42 and mapping[1] is r


def test_getattr_returns_itself():
    s = Selfish()
    chain = s.a.b.c.d
    called = s()
    print("OUT selfish", chain is s, called is s)
    assert chain is s


def test_recursive_containers():
    a = [1]
    a.append(a)
    d = {"k": 1}
    d["self"] = d
    t = (a, d)
    a.append(t)
    print("OUT recursive", len(a), len(d), a[1] is a)
    assert a[1][1][1] is a and d["self"]["self"] is d


def test_huge_string():
    s = "x" * 100_000_000
    b = s.encode()
    n = len(s) + len(b)
    print("OUT huge", n)
    del b
    assert n == 200_000_000


def _gen(log):
    for i in range(5):
        log.append(i)
        yield i


def test_iterators_not_consumed():
    log = []
    g = _gen(log)
    first = next(g)
    it = iter([10, 20, 30])
    next(it)
    m = map(lambda x: log.append(("map", x)) or x, [1, 2])
    z = zip(it, [7, 8])
    rest = list(g)
    print("OUT iter", first, rest, log)
    assert log == [0, 1, 2, 3, 4] and list(z) == [(20, 7), (30, 8)] and list(m) == [1, 2]


def test_properties_with_side_effects():
    lazy = Lazy()
    holder = {"l": lazy}
    seen = Lazy.reads
    print("OUT property", seen)
    assert seen == 0
    with pytest.raises(RuntimeError):
        lazy.broken
    assert Lazy.reads == 0 and holder["l"] is lazy


def test_own_settrace():
    seen = []

    def tracer(frame, event, arg):
        if frame.f_code.co_name == "target":
            seen.append(event)
        return tracer

    def target():
        a = 1
        return a + 1

    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        target()
    finally:
        sys.settrace(old)
    print("OUT settrace", seen)
    assert seen == ["call", "line", "line", "return"]


def test_own_setprofile():
    seen = []

    def prof(frame, event, arg):
        if frame.f_code.co_name == "target":
            seen.append(event)

    def target():
        return 5

    old = sys.getprofile()
    sys.setprofile(prof)
    try:
        target()
    finally:
        sys.setprofile(old)
    print("OUT setprofile", seen)
    assert seen == ["call", "return"]


def test_own_sys_monitoring():
    if not hasattr(sys, "monitoring"):  # 3.11: nothing to collide with
        print("OUT monitoring True")
        return
    mon = sys.monitoring
    tool = mon.DEBUGGER_ID
    mon.use_tool_id(tool, "hostile")
    seen = []

    def target():
        b = 2
        return b * 3

    try:
        mon.register_callback(tool, mon.events.PY_START, lambda code, off: seen.append(code.co_name))
        mon.set_events(tool, mon.events.PY_START)
        target()
        mon.set_events(tool, 0)
    finally:
        mon.register_callback(tool, mon.events.PY_START, None)
        mon.free_tool_id(tool)
    print("OUT monitoring", "target" in seen)
    assert "target" in seen


def _down(n):
    if n == 0:
        return 0
    return 1 + _down(n - 1)


def test_deep_recursion_near_the_limit():
    depth = len([1 for _ in iter(lambda f=[sys._getframe()]: f.__setitem__(0, f[0].f_back) or f[0], None)])
    room = sys.getrecursionlimit() - depth - 60
    got = _down(room)
    print("OUT deep", got == room)
    assert got == room


def _forever(n):
    return _forever(n + 1)


def test_infinite_recursion_is_a_recursion_error():
    with pytest.raises(RecursionError):
        _forever(0)
    print("OUT recursion error")


def test_sys_exit():
    print("OUT exit")
    sys.exit(3)


def test_hundred_threads():
    results = []
    lock = threading.Lock()

    def work(i):
        v = i * i
        with lock:
            results.append(v)

    threads = [threading.Thread(target=work, args=(i,), name=f"t{i}") for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("OUT threads", len(results), sum(results))
    assert sorted(results) == [i * i for i in range(100)]


def test_nested_event_loops():
    async def child(n):
        await asyncio.sleep(0)
        return n + 1

    async def outer():
        loop = asyncio.get_running_loop()
        inner = await loop.run_in_executor(None, lambda: asyncio.run(child(1)))
        with pytest.raises(RuntimeError):
            asyncio.run(child(2))
        return inner + await child(10)

    got = asyncio.run(outer())
    print("OUT loops", got)
    assert got == 13


def test_hostile_failure():
    r = RaisesEverywhere()
    s = Selfish()
    a = [1]
    a.append(a)
    assert r.payload == 43
'''

BUILTINS = '''
import builtins


def test_monkeypatched_builtins():
    def refuse(*a, **k):
        raise RuntimeError("patched builtin called")

    names = ("repr", "len", "isinstance", "getattr", "hasattr", "sorted", "iter", "id", "hash", "min", "max")
    table = builtins.__dict__
    saved = {name: table[name] for name in names}
    try:
        for name in names:
            table[name] = refuse
        total = 0
        items = [1, 2, 3]
        for x in items:
            total += x
        text = "%d" % total
    finally:
        table.update(saved)
    print("OUT builtins", text, items)
    assert text == "6"
'''

#: Opens every recording through the CLI's entry point and runs every read
#: command on it; prints JSON {recording: [problems]}.
CHECKER = r'''
import contextlib, io, json, sys, traceback
from pytest_escope.replay import cli

problems = {}
for path in sys.argv[1:]:
    errs = []
    for args in (["stats", path, "--json"], ["replay", path, "--json"], ["replay", path, "--print"],
                 ["events", path, "--json", "--limit", "200"], ["flow", path, "--json"],
                 ["history", path, "r", "--json"], ["replay", path, "--step", "0", "--json"]):
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = cli.main(args)
        except SystemExit as exc:
            rc = exc.code
        except BaseException:
            rc = "traceback"
            err.write(traceback.format_exc())
        if rc != 0 and not (args[0] == "history" and rc == 2 and "Traceback" not in err.getvalue()):
            errs.append([args[0], rc, err.getvalue()[-500:]])
    problems[path] = errs
print(json.dumps(problems))
'''


def _out_lines(text: str) -> list[str]:
    return sorted(re.findall(r"^OUT .*$", text, re.M))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, dict]:
    project = module_project(tmp_path_factory, "hostile")
    project.write("test_hostile.py", HOSTILE)
    runs = {"plain": project.run("-s", "-rA", env=quiet_env(), timeout=600)}
    for backend in BACKENDS:
        esc = project.path.parent / f"esc-{backend}"
        runs[backend] = project.run("-s", "-rA", "--escope", "--escope-keep=all", f"--escope-dir={esc}",
                                    f"--escope-backend={backend}", env=quiet_env(), timeout=600)
        runs[backend].escope_dir = esc  # type: ignore[attr-defined]
    return project, runs


def test_plain_run_is_what_we_expect(hostile) -> None:
    _, runs = hostile
    got = outcomes(runs["plain"].stdout)
    assert got["test_hostile.py::test_sys_exit"] == "FAILED"
    assert got["test_hostile.py::test_hostile_failure"] == "FAILED"
    assert sum(1 for v in got.values() if v == "PASSED") >= 13, got


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_outcomes_and_output(backend: str, hostile) -> None:
    _, runs = hostile
    plain, rec = runs["plain"], runs[backend]
    assert outcomes(rec.stdout) == outcomes(plain.stdout)
    assert _out_lines(rec.stdout) == _out_lines(plain.stdout)
    assert rec.returncode == plain.returncode == 1
    assert "INTERNALERROR" not in rec.out


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_recording_is_valid_and_replays(backend: str, hostile) -> None:
    project, runs = hostile
    esc = runs[backend].escope_dir
    recordings = sorted(esc.glob("runs/*/tests/*.sqlite"))
    assert len(recordings) == len(outcomes(runs["plain"].stdout))
    for path in recordings:
        assert integrity_ok(path), path
        assert meta(path)["complete"] == "1", path
    res = subprocess.run([sys.executable, "-c", CHECKER, *map(str, recordings)], cwd=project.path,
                         capture_output=True, text=True, env=quiet_env(), timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    problems = {Path(k).name: v for k, v in json.loads(res.stdout).items() if v}
    assert problems == {}


@pytest.mark.parametrize("backend", BACKENDS)
def test_hostile_values_are_recorded_without_running_them(backend: str, hostile) -> None:
    """The failing test's objects are in its film, rendered from their fields."""
    project, runs = hostile
    esc = runs[backend].escope_dir
    (path,) = [p for p in esc.glob("runs/*/tests/*.sqlite") if "test_hostile_failure" in p.name]
    res = subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", "replay", str(path), "--json"],
                         cwd=project.path, capture_output=True, text=True, env=quiet_env(), timeout=120)
    assert res.returncode == 0, res.stderr
    state = json.loads(res.stdout)
    local = state["stack"][-1]["locals"]
    assert local["r"]["type"] == "RaisesEverywhere" and "payload" in json.dumps(local["r"])
    assert local["s"]["type"] == "Selfish"
    assert local["a"]["type"] == "list"
    assert state["exception"] is not None


@pytest.mark.parametrize("backend", BACKENDS)
def test_huge_string_is_bounded_in_the_file(backend: str, hostile) -> None:
    _, runs = hostile
    esc = runs[backend].escope_dir
    (path,) = [p for p in esc.glob("runs/*/tests/*.sqlite") if "test_huge_string" in p.name]
    assert path.stat().st_size < 5_000_000


@pytest.mark.parametrize("backend", BACKENDS)
def test_monkeypatched_builtins(backend: str, project: Project) -> None:
    project.write("test_builtins.py", BUILTINS)
    plain = project.run("-s", "-rA", env=quiet_env())
    rec = project.run("-s", "-rA", "--escope", f"--escope-backend={backend}", env=quiet_env())
    assert plain.returncode == 0 and "OUT builtins 6 [1, 2, 3]" in plain.stdout
    assert rec.returncode == 0 and _out_lines(rec.stdout) == _out_lines(plain.stdout), rec.out[-3000:]
