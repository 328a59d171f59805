"""Neighbours: escope next to the plugins people run it with, each for real
(docs/reliability.md, "Neighbours"): pytest-cov (sysmon and ctrace cores),
pytest-xdist (``-n 2``, ``--dist loadfile``), pytest-randomly,
pytest-asyncio, pytest-rerunfailures, ``--pdb``.  pytest-timeout is in
test_reliability_faults.py.  The same session runs with and without
``--escope``; outcomes and output must match and the recordings replay.
"""

from __future__ import annotations

import re
import sys

import pytest

from conftest import PY312, Project, clean_env, outcomes
from reliability import cli_json, meta, quiet_env, summary

pytest.importorskip("pytest_randomly")
pytest.importorskip("pytest_asyncio")
pytest.importorskip("pytest_rerunfailures")

LIB = '''
def grade(score):
    if score >= 90:
        return "A"
    if score >= 50:
        return "B"
    return "C"


def mean(xs):
    total = 0
    for x in xs:
        total += x
    return total / len(xs)
'''

TESTS_A = '''
import random

from pkg.lib import grade, mean


def test_a1():
    print("OUT a1", random.random())
    assert grade(95) == "A"


def test_a2():
    print("OUT a2", random.randint(0, 10**9))
    assert mean([1, 2, 3]) == 2


def test_a3_fails():
    assert grade(10) == "B"
'''

TESTS_B = '''
import random


def test_b1():
    print("OUT b1", random.random())
    assert True


def test_b2_fails():
    values = [random.random() for _ in range(3)]
    print("OUT b2", values)
    assert sum(values) > 5
'''


def _env(plugins: str) -> dict[str, str]:
    """Switch off the neighbours this test is not about."""
    off = {"randomly", "asyncio", "rerunfailures"} - set(plugins.split())
    return clean_env(PYTEST_ADDOPTS=" ".join(f"-p no:{p}" for p in sorted(off)))


@pytest.fixture
def proj(project: Project) -> Project:
    project.write("pkg/__init__.py", "")
    project.write("pkg/lib.py", LIB)
    project.write("test_a.py", TESTS_A)
    project.write("test_b.py", TESTS_B)
    return project


def _order(text: str) -> list[str]:
    return re.findall(r"^(test_\w+\.py::\w+) (?:PASSED|FAILED)", text, re.M)


def test_randomly_same_order_and_same_random_values(proj: Project) -> None:
    env = _env("randomly")
    args = ("-v", "-rA", "-p", "randomly", "-p", "no:cacheprovider", "--randomly-seed=4242")
    plain = proj.run(*args, env=env)
    rec = proj.run(*args, "--escope", env=env)
    assert "randomly-seed=4242" in rec.stdout.replace("Using --randomly-seed=4242", "randomly-seed=4242")
    assert _order(rec.stdout) == _order(plain.stdout) and len(_order(plain.stdout)) == 5
    assert re.findall(r"OUT .*", rec.stdout) == re.findall(r"OUT .*", plain.stdout)
    assert rec.returncode == plain.returncode == 1
    assert len(proj.latest().recordings()) == 2


ASYNC = '''
import asyncio
import pytest
import pytest_asyncio


async def fetch(n):
    await asyncio.sleep(0)
    return n * 2


@pytest.mark.asyncio
async def test_async_ok():
    got = await asyncio.gather(fetch(1), fetch(2))
    assert got == [2, 4]


@pytest.mark.asyncio
async def test_async_fails():
    task = asyncio.create_task(fetch(5), name="fetcher")
    got = await task
    assert got == 11


@pytest_asyncio.fixture
async def resource():
    yield {"open": True}


@pytest.mark.asyncio
async def test_async_fixture(resource):
    assert resource["open"]
'''


def test_asyncio(project: Project) -> None:
    project.write("pytest.ini", "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n")
    project.write("test_async.py", ASYNC)
    env = _env("asyncio")
    plain = project.run("-rA", env=env)
    rec = project.run("-rA", "--escope", "--escope-keep=all", env=env)
    assert outcomes(rec.stdout) == outcomes(plain.stdout)
    assert summary(rec.stdout) == summary(plain.stdout) == "1 failed, 2 passed"
    path = project.latest().recording("test_async_fails").path
    assert meta(path)["complete"] == "1"
    events = cli_json("events", str(path), "--limit", "0", cwd=project.path)
    assert any(e["task"] == "fetcher" and e["function"] == "fetch" for e in events)
    state = cli_json("replay", str(path), cwd=project.path)
    assert state["stack"][-1]["function"] == "test_async_fails"


FLAKY = '''
import os

COUNTER = os.path.join(os.path.dirname(__file__), "counter")


def test_flaky():
    n = int(open(COUNTER).read()) if os.path.exists(COUNTER) else 0
    open(COUNTER, "w").write(str(n + 1))
    assert n % 2 == 1


def test_always_fails():
    x = 1
    assert x == 2
'''


def test_rerunfailures(project: Project) -> None:
    project.write("test_flaky.py", FLAKY)
    env = _env("rerunfailures")
    plain = project.run("-rA", "--reruns=2", env=env)
    (project.path / "counter").unlink()
    rec = project.run("-rA", "--reruns=2", "--escope", "--escope-keep=all", env=env)
    assert summary(rec.stdout) == summary(plain.stdout) == "1 failed, 1 passed, 3 rerun"
    tests = project.latest().tests()
    assert tests["test_flaky.py::test_flaky"]["outcome"] == "passed"
    assert tests["test_flaky.py::test_always_fails"]["outcome"] == "failed"
    path = project.latest().recording("test_always_fails").path
    assert meta(path)["complete"] == "1"
    assert cli_json("replay", str(path), cwd=project.path)["stack"][-1]["function"] == "test_always_fails"


CORES = (["sysmon"] if PY312 else []) + ["ctrace"]
@pytest.mark.parametrize("core", CORES)
def test_pytest_cov(core: str, proj: Project) -> None:
    env = _env("")
    env["COVERAGE_CORE"] = core
    args = ("--cov=pkg", "--cov-report=term-missing", "-p", "no:randomly")
    plain = proj.run(*args, env=env)
    rec = proj.run(*args, "--escope", env=env)
    table = lambda t: [ln for ln in t.splitlines() if ln.startswith(("pkg", "TOTAL"))]  # noqa: E731
    assert table(plain.stdout) and table(rec.stdout) == table(plain.stdout), rec.stdout[-3000:]
    assert summary(rec.stdout) == summary(plain.stdout) == "2 failed, 3 passed"
    path = proj.latest().recording("test_a3_fails").path
    assert [f["function"] for f in cli_json("replay", str(path), cwd=proj.path)["stack"]] == ["test_a3_fails"]


@pytest.mark.parametrize("dist", [["-n", "2"], ["-n", "2", "--dist", "loadfile"]], ids=["n2", "loadfile"])
def test_xdist(dist: list[str], proj: Project) -> None:
    env = _env("")
    plain = proj.run("-rA", *dist, env=env)
    rec = proj.run("-rA", *dist, "--escope", env=env)
    assert outcomes(rec.stdout) == outcomes(plain.stdout)
    assert summary(rec.stdout) == summary(plain.stdout)
    assert len(proj.run_dirs()) == 1
    tests = proj.latest().tests()
    assert len(tests) == 5 and {r["worker"] for r in tests.values()} <= {"gw0", "gw1"}
    assert all(r["outcome"] in ("passed", "failed") for r in tests.values())
    if "loadfile" in dist:
        by_file = {}
        for tid, r in tests.items():
            by_file.setdefault(tid.split("::")[0], set()).add(r["worker"])
        assert all(len(w) == 1 for w in by_file.values()), by_file
    listing = cli_json("list", "--failed", cwd=proj.path)
    failed = {t["test"] for t in listing["runs"][0]["tests"]}
    assert failed == {"test_a.py::test_a3_fails", "test_b.py::test_b2_fails"}
    for part in failed:
        state = cli_json("replay", part, cwd=proj.path)
        assert state["exception"] is not None


def test_pdb_continue(proj: Project) -> None:
    env = _env("")
    args = ("-p", "no:randomly", "--pdb", "test_a.py")
    plain = proj.run(*args, env=env, stdin="c\n")
    rec = proj.run(*args, "--escope", env=env, stdin="c\n")
    assert summary(rec.stdout) == summary(plain.stdout) == "1 failed, 2 passed"
    assert "(Pdb)" in rec.stdout
    path = proj.latest().recording("test_a3_fails").path
    assert meta(path)["complete"] == "1" and meta(path)["outcome"] == "failed"
