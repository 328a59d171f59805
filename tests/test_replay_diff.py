"""``escope diff`` on real flakiness.

One project holds a test per cause of flakiness; it is recorded twice with
``pytest --escope --escope-keep=all``, each run made deterministic by its
environment: ``random`` seeded differently (from conftest, so the test
itself never seeds), another PYTHONHASHSEED (set iteration order), a time
threshold (``time.time()`` against it), the order two threads append in (an
Event per thread), and a test selection that leaves a module global behind
or not.  For each, the first divergence must be the real one (kind,
function, line) and the printed replay commands must open the right step.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Project, clean_env, module_project

FLAKY = '''
import os
import random
import threading
import time

DEADLINE = float(os.environ.get("FLAKY_DEADLINE", "0"))
REGISTRY = []

_START, _A_DONE, _B_DONE = threading.Event(), threading.Event(), threading.Event()
_WAIT = ({"a": _START, "b": _A_DONE} if os.environ.get("FLAKY_RACE_FIRST", "a") == "a"
         else {"a": _B_DONE, "b": _START})
_DONE = {"a": _A_DONE, "b": _B_DONE}


def test_random():
    roll = random.randint(1, 6)
    assert roll <= 3


def test_set_order():
    words = {"apple", "banana", "cherry", "damson", "elder"}
    first = next(iter(words))
    assert first == "apple"


def test_time():
    now = time.time()
    if now > DEADLINE:
        status = "late"
    else:
        status = "early"
    assert status == "early"


def worker(name, order):
    _WAIT[name].wait(10)
    order.append(name)
    _DONE[name].set()


def test_race():
    order = []
    threads = [threading.Thread(target=worker, args=(n, order), name=f"worker-{n}") for n in "ab"]
    for t in threads:
        t.start()
    _START.set()
    for t in threads:
        t.join()
    assert order == ["a", "b"]


def test_order_polluter():
    REGISTRY.append("left behind")


def test_order_victim():
    leftover = len(REGISTRY)
    assert leftover == 0


MODE = os.environ.get("FLAKY_MODE", "x")


def helper(n):
    return n * 2


def test_branches():
    if MODE == "x":
        label = "ex"
    else:
        label = "why"
    steps = 0
    for i in range(3):
        steps += helper(i)
    total = len(label) + steps
    assert total == 9


STRIDE = int(os.environ.get("FLAKY_STRIDE", "2"))


def bump(i):
    return i + 1


def test_many_branches():
    total = 0
    for i in range(30):
        if i % STRIDE:
            total += bump(i)
        else:
            total -= 1
    assert total > 300


class Thing:
    pass


def test_steady():
    marker = Thing()
    shown = repr(marker)  # the default repr holds the address, new on every run
    ident = id(marker)  # so does its id
    seen = {shown: ident}
    total = 0
    for i in range(10):
        total += i
    assert total == 45
'''

CONFTEST = '''
import os
import random

random.seed(int(os.environ["FLAKY_SEED"]))
'''


def line_of(text: str) -> int:
    """The line of ``test_flaky.py`` that holds ``text`` (exactly one)."""
    lines = [n for n, ln in enumerate(FLAKY.lstrip("\n").splitlines(), 1) if text in ln]
    assert len(lines) == 1, text
    return lines[0]


def _hash_seeds() -> tuple[str, str]:
    """Two PYTHONHASHSEED values: one where the set's first word is not
    "apple" (the test fails), one where it is (it passes)."""
    found: dict[bool, str] = {}
    code = "print(next(iter({'apple', 'banana', 'cherry', 'damson', 'elder'})))"
    for seed in range(64):
        out = subprocess.run([sys.executable, "-c", code], env=dict(clean_env(), PYTHONHASHSEED=str(seed)),
                             capture_output=True, text=True, check=True).stdout.strip()
        found.setdefault(out == "apple", str(seed))
        if len(found) == 2:
            return found[False], found[True]
    raise AssertionError("no hash seed puts apple first")


class Runs:
    def __init__(self, project: Project, a: str, b: str) -> None:
        self.project, self.a, self.b = project, a, b

    def escope(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", *args], cwd=self.project.path,
                              capture_output=True, text=True, env=clean_env(COLUMNS="100"), input=stdin,
                              timeout=300)

    def diff_json(self, *args: str) -> dict:
        res = self.escope("diff", *args, "--json")
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    def recording(self, run: str, test: str) -> Path:
        found = list((self.project.escope_dir / "runs" / run / "tests").glob(f"test_flaky.py_{test}-*.sqlite"))
        assert len(found) == 1
        return found[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    project = module_project(tmp_path_factory, "diff")
    project.write("test_flaky.py", FLAKY)
    project.write("conftest.py", CONFTEST)
    hash_a, hash_b = _hash_seeds()
    # run A: every test, so the polluter runs before its victim; the failing side of each cause
    res = project.run("--escope", "--escope-keep=all", "test_flaky.py",
                      env=clean_env(FLAKY_SEED="5", PYTHONHASHSEED=hash_a, FLAKY_DEADLINE="0",
                                    FLAKY_RACE_FIRST="b", FLAKY_MODE="x", FLAKY_STRIDE="2"))
    assert "failed" in res.stdout, res.out
    # run B: the polluter left out; the passing side of each cause
    res = project.run("--escope", "--escope-keep=all", "test_flaky.py", "-k", "not polluter",
                      env=clean_env(FLAKY_SEED="1", PYTHONHASHSEED=hash_b, FLAKY_DEADLINE="1e12",
                                    FLAKY_RACE_FIRST="a", FLAKY_MODE="y", FLAKY_STRIDE="3"))
    assert res.returncode == 0, res.out
    a, b = [p.name for p in project.run_dirs()]
    return Runs(project, a, b)


def _open_commands(stdout: str) -> list[str]:
    """The two ``escope replay`` commands the text output ends with."""
    lines = stdout.rstrip("\n").splitlines()
    commands = [ln.split(": ", 1)[1] if ": " in ln else ln.strip() for ln in lines[-4:]
                if "escope replay" in ln]
    assert len(commands) == 2, stdout
    assert lines[-1].strip().startswith("escope replay") or lines[-1].startswith("open B"), stdout
    return commands


def _check_commands_open_steps(runs: Runs, stdout: str, steps: list[int]) -> None:
    for command, step in zip(_open_commands(stdout), steps):
        argv = shlex.split(command)
        assert argv[:2] == ["escope", "replay"] and argv[-2:] == ["--step", str(step)], command
        res = runs.escope(*argv[1:], stdin="q\n")
        assert res.returncode == 0, (command, res.stderr)
        assert f"step {step}" in res.stdout, res.stdout
        # and the same step as text, without the session
        res = runs.escope(*argv[1:], "--print")
        assert res.returncode == 0 and f"step {step}" in res.stdout, res.stdout


CASES = {
    # test: (kind, function, line in A, line in B, a name that must differ)
    "test_random": ("value", "test_random", line_of("roll = random.randint"), None, "roll"),
    "test_set_order": ("value", "test_set_order", line_of("first = next(iter(words))"), None, "first"),
    "test_time": ("control", "test_time", line_of('status = "late"'), line_of('status = "early"'), "now"),
    "test_race": ("value", "worker", line_of("order.append(name)"), None, "order"),
    "test_order_victim": ("value", "test_order_victim", line_of("leftover = len(REGISTRY)"), None, "leftover"),
    "test_branches": ("control", "test_branches", line_of('label = "ex"'), line_of('label = "why"'), None),
}


@pytest.mark.parametrize("test", sorted(CASES))
def test_first_divergence_is_the_real_cause(runs: Runs, test: str) -> None:
    kind, function, line_a, line_b, name = CASES[test]
    out = runs.diff_json(f"test_flaky.py::{test}", "--run", runs.a, "--run", runs.b)
    first = out["first_divergence"]
    assert first["kind"] == kind, first
    assert first["a"]["function"] == function and first["b"]["function"] == function
    assert first["a"]["line"] == line_a, first
    assert first["b"]["line"] == (line_b or line_a), first
    assert first["a"]["file"] == "test_flaky.py" and first["a"]["node"].startswith(f"test_flaky.py:{function}:")
    if name is not None:
        assert name in first["names"], first["names"]
        pair = first["names"][name]
        assert pair["a"] != pair["b"]
    assert out["a"]["outcome"] == "failed" and out["b"]["outcome"] == "passed"
    assert out["divergences"] >= 1
    assert set(out) == {"schema_version", "a", "b", "first_divergence", "divergences"}
    assert set(first["a"]) == {"step", "node", "function", "file", "line"}


def test_values_are_the_recorded_ones(runs: Runs) -> None:
    out = runs.diff_json("test_flaky.py::test_random", "--run", runs.a, "--run", runs.b)
    assert out["first_divergence"]["names"]["roll"] == {"a": {"type": "int", "repr": "5"},
                                                       "b": {"type": "int", "repr": "2"}}
    order = runs.diff_json("test_flaky.py::test_race", "--run", runs.a, "--run", runs.b)
    forms = order["first_divergence"]["names"]["order"]
    assert {forms["a"]["repr"], forms["b"]["repr"]} <= {"['a']", "['b']", "['a', 'b']", "['b', 'a']"}
    # the set's printing order differs between the runs, its elements do not: no divergence there
    words = runs.diff_json("test_flaky.py::test_set_order", "--run", runs.a, "--run", runs.b)
    assert "words" not in words["first_divergence"]["names"]


def test_the_walk_picks_up_again_after_a_branch(runs: Runs) -> None:
    """After the if/else the runs meet again at ``steps = 0``: the loop
    agrees, and the later divergences are the label that was bound, the
    total computed from it, and the assertion that fails in one run only."""
    out = runs.diff_json("test_flaky.py::test_branches", "--run", runs.a, "--run", runs.b)
    assert out["first_divergence"]["kind"] == "control"
    assert out["first_divergence"]["names"] == {}  # nothing bound differs yet where the if parts
    res = runs.escope("diff", "test_flaky.py::test_branches", "--run", runs.a, "--run", runs.b)
    later = res.stdout.split("more divergence", 1)[1].split("open A", 1)[0]
    places = {" ".join(ln.split()[1:3]) for ln in later.splitlines()[1:] if ln.strip()}
    label_line, total_line = line_of('label = "ex"'), line_of("total = len(label) + steps")
    assert f"value test_flaky.py:{label_line}" in places, res.stdout  # the label bound in the branch
    assert f"value test_flaky.py:{total_line}" in places, res.stdout  # the total computed from it
    # the loop agrees: nothing there, nor in helper
    loop_line = line_of("steps += helper(i)")
    assert not any(p.endswith(f":{loop_line}") or "helper" in p for p in places), places
    assert out["divergences"] >= 3


def test_every_branch_that_went_the_other_way_is_counted(runs: Runs) -> None:
    """i % 2 against i % 3 for i < 30: the branches differ for the 10 even
    i that are not multiples of 3 (A took the else) and the 5 odd multiples
    of 3 (A took the if).  The first is i = 2; the walk must pick up again
    after each one to count the other 14 where they are."""
    res = runs.escope("diff", "test_many_branches", "--run", runs.a, "--run", runs.b)
    assert res.returncode == 0, res.stderr
    first = runs.diff_json("test_many_branches", "--run", runs.a, "--run", runs.b)["first_divergence"]
    assert first["kind"] == "control" and first["a"]["line"] == line_of("total -= 1")
    assert first["b"]["line"] == line_of("total += bump(i)")
    counts = {" ".join(ln.split()[1:3]): int(ln.split()[0]) for ln in res.stdout.splitlines()
              if ln.startswith("  ") and ln.split()[0].isdigit()}
    assert counts[f"control test_flaky.py:{line_of('total -= 1')}"] == 9, res.stdout
    assert counts[f"control test_flaky.py:{line_of('total += bump(i)')}"] == 5, res.stdout


def test_identical_runs_do_not_diverge(runs: Runs) -> None:
    """test_steady binds objects whose reprs hold their addresses: those
    differ between the runs, and must not count."""
    out = runs.diff_json("test_flaky.py::test_steady", "--run", runs.a, "--run", runs.b)
    assert out["first_divergence"] == {"kind": "none", "a": None, "b": None, "names": {}}
    assert out["divergences"] == 0
    res = runs.escope("diff", "test_steady", "--run", runs.a, "--run", runs.b)
    assert res.returncode == 0 and "no divergence" in res.stdout
    assert res.stdout.rstrip().splitlines()[-1].strip().startswith("escope replay")


@pytest.mark.parametrize("test", ["test_random", "test_time", "test_race"])
def test_text_output_fits_and_its_commands_work(runs: Runs, test: str) -> None:
    res = runs.escope("diff", f"test_flaky.py::{test}", "--run", runs.a, "--run", runs.b)
    assert res.returncode == 0, res.stderr
    assert all(len(ln) <= 100 for ln in res.stdout.splitlines()), res.stdout
    first = runs.diff_json(f"test_flaky.py::{test}", "--run", runs.a, "--run", runs.b)["first_divergence"]
    assert f"{first['a']['file']}:{first['a']['line']}" in res.stdout
    _check_commands_open_steps(runs, res.stdout, [first["a"]["step"], first["b"]["step"]])


def test_two_recording_files(runs: Runs) -> None:
    a = runs.recording(runs.a, "test_time")
    b = runs.recording(runs.b, "test_time")
    by_run = runs.diff_json("test_time", "--run", runs.a, "--run", runs.b)
    by_path = runs.diff_json(str(a), str(b))
    assert by_path["first_divergence"] == by_run["first_divergence"]
    assert by_path["a"]["recording"] == str(a)
    res = runs.escope("diff", str(a), str(b))
    assert res.returncode == 0
    _check_commands_open_steps(runs, res.stdout, [by_path["first_divergence"]["a"]["step"],
                                                  by_path["first_divergence"]["b"]["step"]])


def test_two_archives(runs: Runs, tmp_path: Path) -> None:
    archives = []
    for run, name in ((runs.a, "a.tar.gz"), (runs.b, "b.tar.gz")):
        out = tmp_path / name
        res = runs.escope("pack", "--all", "--run", run, "-o", str(out))
        assert res.returncode == 0, res.stderr
        archives.append(str(out))
    by_run = runs.diff_json("test_flaky.py::test_random", "--run", runs.a, "--run", runs.b)
    by_archive = runs.diff_json("test_flaky.py::test_random", "--run", archives[0], "--run", archives[1])
    assert by_archive["first_divergence"] == by_run["first_divergence"]
    assert by_archive["divergences"] == by_run["divergences"]
    res = runs.escope("diff", "test_flaky.py::test_random", "--run", archives[0], "--run", archives[1])
    assert archives[0] in res.stdout
    _check_commands_open_steps(runs, res.stdout, [by_run["first_divergence"]["a"]["step"],
                                                  by_run["first_divergence"]["b"]["step"]])


def _error(runs: Runs, *args: str) -> str:
    res = runs.escope("diff", *args)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("escope: error: ") and "Traceback" not in res.stderr, lines
    return lines[0]


def test_errors_are_one_line_with_the_fix(runs: Runs, tmp_path: Path) -> None:
    err = _error(runs, "test_flaky.py::test_random", "test_flaky.py::test_time", "--run", runs.a, "--run", runs.b)
    assert "recordings of one test" in err and "escope diff TEST --run R1 --run R2" in err
    err = _error(runs, "test_random", "--run", "20000101T000000000Z-nosuch", "--run", runs.b)
    assert "no run" in err and "escope list --all" in err
    err = _error(runs, "test_order_polluter", "--run", runs.a, "--run", runs.b)
    assert err.startswith("escope: error: B: no test matching") and "escope list --run" in err
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database")
    err = _error(runs, str(junk), str(runs.recording(runs.b, "test_time")))
    assert "junk.sqlite" in err and "not an escope recording" in err
    err = _error(runs, str(tmp_path / "missing.sqlite"), str(runs.recording(runs.b, "test_time")))
    assert "no such recording" in err
    # one id, and its run holds one recording of it: not a flaky pair
    err = _error(runs, "test_flaky.py::test_random")
    assert "no failing and passing recording" in err and "--run R1 --run R2" in err
    err = _error(runs, "a", "b", "c")
    assert "unrecognized arguments: c" in err


LOOP = """
import os

MOD = int(os.environ.get("LOOP_MOD", "7"))


def work(i):
    return i % MOD


def test_loop():
    total = 0
    for i in range(3000):
        total += work(i)
    assert total > 0
"""


def test_recordings_cut_by_max_events(tmp_path_factory: pytest.TempPathFactory) -> None:
    """--escope-max-events keeps the film's newest steps in the tables, not
    in chunks: diff reads those through the unpacked copy, same answers."""
    project = module_project(tmp_path_factory, "diffmax")
    project.write("test_loop.py", LOOP)
    for mod in ("7", "5"):
        res = project.run("--escope", "--escope-keep=all", "--escope-max-events=5000", "test_loop.py",
                          env=clean_env(LOOP_MOD=mod))
        assert res.returncode == 0, res.out
    a, b = [next((run / "tests").glob("*.sqlite")) for run in project.run_dirs()]
    runs = Runs(project, "", "")
    out = runs.diff_json(str(a), str(b))
    first = out["first_divergence"]
    line = [n for n, text in enumerate(LOOP.lstrip("\n").splitlines(), 1) if "return i % MOD" in text][0]
    assert first["kind"] == "value" and first["a"]["function"] == "work" and first["a"]["line"] == line
    assert set(first["names"]) == {"<return>"}
    assert first["a"]["step"] >= 10_000  # the dropped steps are not walked
    res = runs.escope("diff", str(a), str(b))
    assert res.returncode == 0
    _check_commands_open_steps(runs, res.stdout, [first["a"]["step"], first["b"]["step"]])


def test_damaged_chunks_are_one_line(runs: Runs, tmp_path: Path) -> None:
    """A chunk that does not inflate, or inflates to columns of the wrong
    shape, is reported as a corrupt recording, never a traceback."""
    import sqlite3
    import zlib
    good = runs.recording(runs.b, "test_time")
    for name, blob in (("garbage.sqlite", b"\x78\x9c\x0b"),
                       ("shape.sqlite", zlib.compress(b'{"events":[[1,2],[1],[3],[4],[]],"frames":[[1],[1],[0]]}'))):
        bad = tmp_path / name
        bad.write_bytes(good.read_bytes())
        conn = sqlite3.connect(bad)
        conn.execute("UPDATE chunks SET data = ?", (blob,))
        conn.commit()
        conn.close()
        err = _error(runs, str(good), str(bad))
        assert name in err and "corrupt" in err and "re-run the test" in err


def test_a_recording_file_with_two_runs_is_a_usage_error(runs: Runs) -> None:
    err = _error(runs, str(runs.recording(runs.a, "test_time")), "--run", runs.a, "--run", runs.b)
    assert "recording file" in err and "--run R1 --run R2" in err


def test_one_id_whose_run_holds_a_failing_and_a_passing_recording(runs: Runs, tmp_path: Path) -> None:
    """The flaky form from two workers' rows: one test id, and one run
    holding both a failed and a passed recording of it, put together from
    the two real runs (run A's directory, plus run B's recording of
    test_random under a second worker's row of the index)."""
    import shutil
    import sqlite3
    run = tmp_path / "runs" / runs.a
    shutil.copytree(runs.project.escope_dir / "runs" / runs.a, run)
    passed = runs.recording(runs.b, "test_random")
    shutil.copyfile(passed, run / "tests" / ("other-" + passed.name))
    conn = sqlite3.connect(run / "index.sqlite")
    columns = [r[1] for r in conn.execute("PRAGMA table_info(tests)")]
    row = dict(zip(columns, conn.execute("SELECT * FROM tests WHERE test_id = 'test_flaky.py::test_random'")
                   .fetchone()))
    row.update(worker="gw1", outcome="passed", call="passed", failure=None,
               recording=f"tests/other-{passed.name}")
    conn.execute(f"INSERT INTO tests ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
    conn.commit()
    conn.close()
    out = runs.diff_json("test_random", "--run", str(run))
    assert out["a"]["outcome"] == "failed" and out["b"]["outcome"] == "passed"
    assert out["b"]["recording"].endswith("other-" + passed.name)
    by_runs = runs.diff_json("test_random", "--run", runs.a, "--run", runs.b)
    assert out["first_divergence"] == by_runs["first_divergence"]
    res = runs.escope("diff", "test_random", "--run", str(run))
    _check_commands_open_steps(runs, res.stdout, [by_runs["first_divergence"]["a"]["step"],
                                                  by_runs["first_divergence"]["b"]["step"]])


ALTERNATES = """
from pathlib import Path

COUNTER = Path(__file__).with_name("counter.txt")


def test_alternates():
    count = int(COUNTER.read_text()) if COUNTER.exists() else 0
    COUNTER.write_text(str(count + 1))
    assert count % 2 == 1
"""


def test_one_id_after_recorded_reruns(tmp_path: Path) -> None:
    """The flaky form end to end: ``--escope-on-failure`` reruns a test that
    fails every other run; the run then holds a passing rerun and a failing
    one, and ``escope diff TEST`` compares them with no ``--run``."""
    project = Project(tmp_path / "proj")
    project.write("test_alt.py", ALTERNATES)
    res = project.run("--escope-on-failure", "--escope-reruns", "3", env=clean_env())
    assert res.returncode == 1 and "1 failed" in res.stdout, res.out  # the unrecorded run's outcome
    runs = Runs(project, "", "")
    out = runs.diff_json("test_alternates")
    assert out["a"]["outcome"] == "failed" and out["a"]["recording"].endswith(".rerun2.sqlite"), out["a"]
    assert out["b"]["outcome"] == "passed" and out["b"]["recording"].endswith(".rerun1.sqlite"), out["b"]
    first = out["first_divergence"]
    assert first["kind"] == "value" and "count" in first["names"], first
    assert first["a"]["line"] == first["b"]["line"] == 7
    text = runs.escope("diff", "test_alternates")
    assert text.returncode == 0, text.stderr
    _check_commands_open_steps(runs, text.stdout, [first["a"]["step"], first["b"]["step"]])
