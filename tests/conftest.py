"""Shared helpers for the recorder tests.

Every test here runs a real pytest session in a subprocess and reads the
real SQLite files it leaves behind, read-only, with the stdlib ``sqlite3``.

Sessions are started by ``Project`` (below), the suite's one runner.
``pytester`` is not enough for what most files need, which is why
``Project`` exists beside it:

* a session shared by many tests: ``module_project`` keeps one recorded
  project for a whole module (a workload recorded once, asserted on many
  times); ``pytester`` is function-scoped;
* another interpreter: ``run(python=...)`` runs an installed wheel's
  virtualenv (tests/test_recorder_packaging.py); ``pytester`` always runs
  ``sys.executable``;
* input and a time limit per session: ``run(stdin=..., timeout=...)`` drives
  ``--pdb`` sessions; ``runpytest_subprocess`` takes no input;
* one environment (``clean_env``) for the session and for the ``escope``
  commands run on its files afterwards, in the same directory.

tests/test_recorder_surface.py keeps ``pytester`` (function-scoped, one
session per test) for its ``RunResult`` matchers; the autouse fixture
below gives its inner sessions the same neutral environment.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pytest

from pytest_escope.recorder import schema

PY312 = sys.version_info >= (3, 12)
needs_monitoring = pytest.mark.skipif(not PY312, reason="sys.monitoring needs Python 3.12+")
BACKENDS = ["settrace", "monitoring"] if PY312 else ["settrace"]

#: Variables of the outer environment that would change what an inner
#: session does; every inner session starts without them.
_SCRUB = ("PYTEST_ESCOPE", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
          "COV_CORE_SOURCE", "COV_CORE_CONFIG", "COV_CORE_DATAFILE", "COVERAGE_PROCESS_START",
          "COVERAGE_CORE", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "CI", "TERM_PROGRAM")


#: Inner sessions run their tests in file order: several assertions (pdb
#: input, hook call order) depend on it, and pytest-randomly may be installed.
INNER_ADDOPTS = "-p no:randomly"


@pytest.fixture(autouse=True)
def _clean_inner_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """pytester's inner sessions inherit our environment: keep it neutral."""
    for name in _SCRUB:
        monkeypatch.delenv(name, raising=False)
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester")  # it clears PYTEST_ADDOPTS when it starts
        monkeypatch.setenv("PYTEST_ADDOPTS", INNER_ADDOPTS)


_test_cache: list[str] = []


def cache_dir_for_tests() -> str:
    """Where the CLI run by the tests unpacks big films (replay/opening.py):
    a temporary directory, never the user's ~/.cache."""
    if not _test_cache:
        import atexit
        import shutil
        import tempfile
        _test_cache.append(tempfile.mkdtemp(prefix="escope-test-cache-"))
        atexit.register(shutil.rmtree, _test_cache[0], True)
    return _test_cache[0]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env.setdefault("ESCOPE_FILM_CACHE", cache_dir_for_tests())
    env["PY_COLORS"] = "0"
    env.update(extra)
    return env


# -- running sessions ---------------------------------------------------------


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def out(self) -> str:
        return self.stdout + self.stderr


class Project:
    """A throwaway pytest project in a directory, run in a subprocess.

    Unlike ``pytester`` it can live for a whole module, run another
    interpreter and feed a session's stdin (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        if not (path / "pytest.ini").exists():
            # pins the rootdir here, whatever lies above
            self.write("pytest.ini", "[pytest]\n")

    def write(self, name: str, text: str) -> Path:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return target

    def run(self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None,
            python: str | None = None, timeout: float = 300) -> Result:
        cmd = [python or sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *INNER_ADDOPTS.split(), *args]
        proc = subprocess.run(cmd, cwd=self.path, env=env or clean_env(), input=stdin if stdin is not None else "",
                              capture_output=True, text=True, timeout=timeout)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    @property
    def escope_dir(self) -> Path:
        return self.path / ".escope"

    def run_dirs(self, escope_dir: Path | None = None) -> list[Path]:
        runs = (escope_dir or self.escope_dir) / "runs"
        return sorted(p for p in runs.iterdir() if p.is_dir()) if runs.exists() else []

    def latest(self, escope_dir: Path | None = None) -> "Run":
        base = escope_dir or self.escope_dir
        run_id = (base / "latest").read_text().strip()
        return Run(base / "runs" / run_id)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path / "proj")


def module_project(tmp_path_factory: pytest.TempPathFactory, name: str) -> Project:
    return Project(tmp_path_factory.mktemp(name) / "proj")


# -- reading files ------------------------------------------------------------


def open_ro(path: Path) -> sqlite3.Connection:
    """Read-only for the original.  A recording's film is packed in chunks
    (schema 2), and a recording whose process died mid-chunk leaves a hot
    journal that only a writer may roll back, so such a file is read from a
    private copy with its chunks unpacked into the tables (the original is
    never touched)."""
    path = Path(path)
    journal = Path(str(path) + "-journal")
    hot = journal.exists() and journal.stat().st_size > 0
    if not hot:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            packed = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'chunks'").fetchone() and \
                db.execute("SELECT 1 FROM chunks LIMIT 1").fetchone()
        except sqlite3.DatabaseError:
            packed = None
        if not packed:
            return db
        db.close()
    import shutil
    import tempfile
    import weakref
    from pytest_escope.recorder import schema
    tmp = Path(tempfile.mkdtemp(prefix="escope-test-ro-"))
    try:
        shutil.copy2(path, tmp / path.name)
        if hot:
            shutil.copy2(journal, tmp / journal.name)
        db = sqlite3.connect(str(tmp / path.name), factory=_CopyConnection)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # removed when the connection is closed, or (for a caller that never
    # closes it) when it is collected, or at the latest at exit
    db._remove_copy = weakref.finalize(db, shutil.rmtree, str(tmp), True)
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'chunks'").fetchone():
        schema.unpack_chunks(db)
        db.commit()
    return db


class _CopyConnection(sqlite3.Connection):
    """A connection to a private copy made by ``open_ro``: closing it, or
    leaving its ``with`` block, removes the copy."""

    _remove_copy: Any = None

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._remove_copy is not None:
                self._remove_copy()

    def __exit__(self, *exc: Any) -> Any:
        try:
            return super().__exit__(*exc)
        finally:
            self.close()


class Run:
    """One run dir: its index and its recordings."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.index_path = path / "index.sqlite"

    def facts(self) -> dict[str, str]:
        with open_ro(self.index_path) as db:
            return dict(db.execute("SELECT key, value FROM run"))

    def tests(self) -> dict[str, dict[str, Any]]:
        db = open_ro(self.index_path)
        db.row_factory = sqlite3.Row
        try:
            return {r["test_id"]: dict(r) for r in db.execute("SELECT * FROM tests")}
        finally:
            db.close()

    def recording(self, test_id_part: str) -> "Rec":
        """The recording of the one test whose id contains ``test_id_part``."""
        rows = [r for tid, r in self.tests().items() if test_id_part in tid]
        assert len(rows) == 1, f"{test_id_part!r} matches {[r['test_id'] for r in rows]}"
        assert rows[0]["recording"], f"{rows[0]['test_id']} has no recording"
        return Rec(self.path / rows[0]["recording"])

    def recordings(self) -> dict[str, "Rec"]:
        return {tid: Rec(self.path / r["recording"]) for tid, r in self.tests().items() if r["recording"]}

    def files(self) -> list[Path]:
        return sorted(p for p in self.path.rglob("*") if p.is_file())


@dataclass(frozen=True)
class Event:
    step: int
    kind: str
    file: str
    line: int
    function: str
    thread: str
    task: str | None
    act: int
    frame: int
    depth: int
    value_type: str | None
    value_repr: str | None


class Rec:
    """One recording file, read with plain SQL (no replay code involved)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        assert self.path.exists(), self.path
        self.db = open_ro(self.path)
        self._names = dict(self.db.execute("SELECT text, name FROM names"))

    def close(self) -> None:
        self.db.close()

    @property
    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta"))

    def q(self, sql: str, *args: Any) -> list[tuple]:
        return self.db.execute(sql, args).fetchall()

    def events(self) -> list[Event]:
        rows = self.q(
            """SELECT e.step, e.kind, coalesce(fi.path, ''), e.line, coalesce(c.qualname, ''),
                      coalesce(th.name, ''), tk.name, e.act, coalesce(a.frame, 0), coalesce(a.depth, 0),
                      v.type, v.repr
               FROM events e
               LEFT JOIN activations a ON a.act = e.act
               LEFT JOIN frames f ON f.frame = a.frame
               LEFT JOIN codes c ON c.code = f.code
               LEFT JOIN files fi ON fi.file = c.file
               LEFT JOIN threads th ON th.thread = a.thread
               LEFT JOIN tasks tk ON tk.task = a.task
               LEFT JOIN vals v ON v.value = e.value
               ORDER BY e.step""")
        return [Event(s, schema.KIND_NAMES[k], fp, ln, fn, th, tk, act, fr, d, vt, vr)
                for s, k, fp, ln, fn, th, tk, act, fr, d, vt, vr in rows]

    def lines(self, thread: str | None = None) -> list[tuple[str, int]]:
        return [(e.file, e.line) for e in self.events()
                if e.kind == "line" and (thread is None or e.thread == thread)]

    def flk(self) -> list[tuple[str, int, str]]:
        """(file, line, kind) of every event, oldest first."""
        return [(e.file, e.line, e.kind) for e in self.events()]

    def frames(self, qualname: str) -> list[int]:
        return [r[0] for r in self.q(
            "SELECT f.frame FROM frames f JOIN codes c ON c.code = f.code WHERE c.qualname = ? ORDER BY f.frame",
            qualname)]

    def value_at(self, frame: int, name: str, step: int) -> tuple[str, str] | None:
        """(type, repr) of local ``name`` of ``frame`` in the state at ``step``:
        the binding in force, then the newest snapshot of its object."""
        nid = self._names.get(name)
        if nid is None:
            return None
        row = self.q("SELECT value FROM bindings WHERE frame = ? AND name = ? AND step <= ? "
                     "ORDER BY step DESC, rowid DESC LIMIT 1", frame, nid, step)
        if not row or row[0][0] is None:
            return None
        obj, tname, text = self.q("SELECT obj, type, repr FROM vals WHERE value = ?", row[0][0])[0]
        if obj is not None:
            tname, text = self.q("SELECT type, repr FROM vals WHERE obj = ? AND step <= ? "
                                 "ORDER BY step DESC, value DESC LIMIT 1", obj, step)[0]
        return tname, text

    def history(self, name: str, qualname: str | None = None) -> list[str]:
        """Every distinct rendering local ``name`` took, in order, across the
        frames of ``qualname`` (all frames when None)."""
        nid = self._names.get(name)
        if nid is None:
            return []
        frames = self.frames(qualname) if qualname else [r[0] for r in self.q("SELECT frame FROM frames")]
        out: list[str] = []
        for frame in frames:
            steps = {r[0] for r in self.q("SELECT step FROM bindings WHERE frame = ? AND name = ?", frame, nid)}
            objs = {r[0] for r in self.q(
                "SELECT v.obj FROM bindings b JOIN vals v ON v.value = b.value "
                "WHERE b.frame = ? AND b.name = ? AND v.obj IS NOT NULL", frame, nid)}
            for obj in objs:
                steps |= {r[0] for r in self.q("SELECT step FROM vals WHERE obj = ?", obj)}
            # only while the frame lives
            end = self.q("SELECT max(coalesce(end_step, 1 << 62)) FROM activations WHERE frame = ?", frame)[0][0]
            for step in sorted(s for s in steps if end is None or s <= end):
                v = self.value_at(frame, name, step)
                if v is not None and (not out or out[-1] != v[1]):
                    out.append(v[1])
        return out

    def bindings(self) -> list[tuple[str, str, str, str]]:
        """(function, name, type, repr) of every binding in step order, with
        the value as it was rendered when bound."""
        return [tuple(r) for r in self.q(
            """SELECT c.qualname, n.text, coalesce(v.type, '<unbound>'), coalesce(v.repr, '<unbound>')
               FROM bindings b JOIN names n ON n.name = b.name
               JOIN frames f ON f.frame = b.frame JOIN codes c ON c.code = f.code
               LEFT JOIN vals v ON v.value = b.value
               ORDER BY b.step, c.qualname, n.text""")]

    def unmapped_lines(self) -> list[tuple[str, int]]:
        """Line events of embedded files with no node in ``lines``."""
        return [tuple(r) for r in self.q(
            """SELECT fi.path, e.line FROM events e
               JOIN activations a ON a.act = e.act JOIN frames f ON f.frame = a.frame
               JOIN codes c ON c.code = f.code JOIN files fi ON fi.file = c.file
               WHERE e.kind = ? AND NOT EXISTS
                 (SELECT 1 FROM lines l WHERE l.file = fi.file AND l.line = e.line)""", schema.LINE)]

    def source(self, file: str) -> str | None:
        """The embedded text of ``file`` (stored compressed)."""
        return schema.decode_source(self.q("SELECT source FROM files WHERE path = ?", file)[0][0])

    def line_of(self, file: str, needle: str, nth: int = 1) -> int:
        """Line number of the ``nth`` line of embedded ``file`` containing ``needle``."""
        source = self.source(file)
        hits = [i for i, text in enumerate(source.splitlines(), 1) if needle in text]
        return hits[nth - 1]

    def steps_at(self, function: str, line: int, kind: str = "line") -> list[int]:
        return [e.step for e in self.events() if e.function == function and e.line == line and e.kind == kind]

    def node_of(self, file: str, line: int) -> str | None:
        r = self.q("SELECT n.node_id FROM lines l JOIN nodes n ON n.node = l.node "
                   "JOIN files f ON f.file = l.file WHERE f.path = ? AND l.line = ?", file, line)
        return r[0][0] if r else None


# -- a reference tracer, independent of escope -------------------------------

#: A tiny plugin (loaded with ``-p reftrace``) that films the line events of
#: files under the rootdir with plain ``sys.settrace`` + ``threading.settrace``
#: around each test's protocol, and dumps them as JSON to $REFTRACE_OUT.
REFTRACE = r'''
import json, os, sys, threading
import pytest

_ROOT = os.path.realpath(os.getcwd())
_SELF = os.path.realpath(__file__)
_wanted = {}
_cur = []
_all = {}

def _rel(filename):
    r = _wanted.get(filename)
    if r is None:
        p = os.path.realpath(filename) if not filename.startswith("<") else ""
        ok = p.startswith(_ROOT + os.sep) and p != _SELF and os.sep + ".escope" + os.sep not in p
        r = _wanted[filename] = os.path.relpath(p, _ROOT).replace(os.sep, "/") if ok else ""
    return r

def _local(frame, event, arg):
    if event == "line":
        _cur.append((_rel(frame.f_code.co_filename), frame.f_lineno, threading.current_thread().name))
    return _local

def _global(frame, event, arg):
    if event == "call" and _rel(frame.f_code.co_filename):
        return _local
    return None

@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    global _cur
    _cur = []
    threading.settrace(_global)
    sys.settrace(_global)
    try:
        yield
    finally:
        sys.settrace(None)
        threading.settrace(None)
        _all[item.nodeid] = _cur

def pytest_sessionfinish(session):
    with open(os.environ["REFTRACE_OUT"], "w") as fh:
        json.dump(_all, fh)
'''


def reference_lines(project: Project, *args: str) -> dict[str, list[tuple[str, int, str]]]:
    """Run ``project`` without escope under the reference tracer."""
    project.write("reftrace.py", REFTRACE)
    out = project.path.parent / "reftrace.json"
    res = project.run("-p", "reftrace", *args, env=clean_env(REFTRACE_OUT=str(out)))
    assert "reftrace" not in res.stderr, res.out
    data = json.loads(out.read_text())
    return {k: [tuple(x) for x in v] for k, v in data.items()}


def outcomes(result_text: str) -> dict[str, str]:
    """nodeid -> PASSED/FAILED/... from a ``-rA`` short summary."""
    found = {}
    for m in re.finditer(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (\S+)", result_text, re.M):
        found.setdefault(m.group(2), m.group(1))
    return found


def all_bytes(paths: Iterable[Path]) -> bytes:
    return b"".join(p.read_bytes() for p in paths)


# -- the ugly little suite ------------------------------------------------------

#: A small project that exercises what tracers get wrong: recursion,
#: generators, closures, comprehensions, try/except/finally, with, exceptions
#: caught and re-raised across frames, methods mutating self, a thread, an
#: asyncio task, a yield fixture, objects that explode when touched.
UGLY = {
    "pkg/__init__.py": "",
    "pkg/lib.py": '''
        class Counter:
            def __init__(self):
                self.total = 0
                self.items = []

            def add(self, x):
                self.total += 1
                self.items.append(x)
                return self.total


        def fact(n):
            if n <= 1:
                return 1
            return n * fact(n - 1)


        def gen(n):
            for i in range(n):
                yield i * 2
            return "done"


        def make_adder(k):
            def add(x):
                return x + k
            return add


        def parse(text):
            try:
                return int(text)
            except ValueError:
                return None
            finally:
                parse.calls = getattr(parse, "calls", 0) + 1


        def fail_deep(n):
            if n == 0:
                raise KeyError("deep")
            return fail_deep(n - 1)


        def reraiser():
            try:
                fail_deep(2)
            except KeyError as exc:
                raise RuntimeError("wrapped") from exc


        class Hostile:
            def __init__(self):
                self.x = 1

            def __repr__(self):
                raise RuntimeError("repr called")

            def __eq__(self, other):
                raise RuntimeError("eq called")

            def __hash__(self):
                raise RuntimeError("hash called")

            def __getattr__(self, name):
                raise RuntimeError("getattr " + name)
    ''',
    "conftest.py": '''
        import pytest


        @pytest.fixture
        def resource():
            res = ["ready"]
            yield res
            res.clear()
    ''',
    "test_ugly.py": '''
        import asyncio
        import threading

        from pkg.lib import Counter, Hostile, fact, fail_deep, gen, make_adder, parse, reraiser


        def test_recursion():
            r = fact(5)
            print("OUT recursion", r)
            assert r == 120


        def test_generator():
            g = gen(3)
            out = [v for v in g]
            total = sum(x for x in out)
            print("OUT generator", out, total)
            assert out == [0, 2, 4] and total == 6


        def test_closure_and_comprehensions():
            add3 = make_adder(3)
            squares = [add3(i) for i in range(4)]
            evens = {i: i * i for i in range(6) if i % 2 == 0}
            print("OUT closure", squares, evens)
            assert squares == [3, 4, 5, 6] and evens[4] == 16


        def test_try_finally():
            vals = [parse(t) for t in ("1", "x", "3")]
            print("OUT parse", vals)
            assert vals == [1, None, 3]


        class Res:
            def __enter__(self):
                self.open = True
                return self

            def __exit__(self, *exc):
                self.open = False
                return False


        def test_with_and_caught():
            with Res() as r:
                try:
                    fail_deep(3)
                except KeyError as e:
                    caught = e.args[0]
            print("OUT with", caught, r.open)
            assert caught == "deep" and r.open is False


        def test_reraise_fails():
            c = Counter()
            c.add(1)
            reraiser()


        def test_methods_mutate_self():
            c = Counter()
            for i in range(3): c.add(i)
            print("OUT counter", c.total, c.items)
            assert c.total == 3


        def test_thread():
            result = []

            def work(n):
                for i in range(n):
                    result.append(i)

            t = threading.Thread(target=work, args=(3,), name="worker-7")
            t.start()
            t.join()
            print("OUT thread", result)
            assert result == [0, 1, 2]


        def test_asyncio():
            async def child(n):
                await asyncio.sleep(0)
                return n * 2

            async def main():
                task = asyncio.create_task(child(4), name="kid-task")
                return await task

            got = asyncio.run(main())
            print("OUT asyncio", got)
            assert got == 8


        def test_fixture(resource):
            resource.append("used")
            assert resource == ["ready", "used"]


        def test_hostile():
            h = Hostile()
            items = [h, h]
            d = {"h": h}
            try:
                h == 1
            except RuntimeError as exc:
                msg = str(exc)
            print("OUT hostile", msg, items[0] is h, len(d))
            assert items[0] is h and d["h"] is h
    ''',
}


def write_files(project: Project, files: dict[str, str]) -> Project:
    for name, text in files.items():
        project.write(name, text)
    return project


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: builds and installs things; still part of the default run")
