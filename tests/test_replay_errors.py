"""Every way a replay can go wrong ends in one line on stderr naming the
problem and the fix, and exit status 2 -- never a traceback."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Project, clean_env

SUITE = '''
def test_fails():
    x = [1, 2]
    assert len(x) == 3


def test_passes():
    assert True
'''

CRASH = '''
import os, time


def spin(n):
    return n + 1


def committed(path):
    import sqlite3
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        return db.execute("SELECT count(*) FROM chunks").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def test_dies(escope):
    t0 = time.perf_counter()
    k = 0
    while time.perf_counter() - t0 < 2.6:
        k = spin(k)
    # wait (bounded) until the writer thread committed the spilled chunk
    deadline = time.monotonic() + 60
    while not committed(escope.path) and time.monotonic() < deadline:
        time.sleep(0.2)
    os._exit(3)
'''


def escope(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", *args], cwd=cwd,
                          capture_output=True, text=True, env=clean_env(), timeout=120)


def assert_one_line_error(res: subprocess.CompletedProcess, *needles: str) -> str:
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("escope: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = Project(tmp_path_factory.mktemp("errors") / "proj")
    project.write("test_it.py", SUITE)
    res = project.run("--escope")
    assert "1 failed, 1 passed" in res.stdout, res.out
    return project


@pytest.fixture
def good(proj: Project, tmp_path: Path) -> Path:
    src = next(proj.escope_dir.glob("runs/*/tests/*.sqlite"))
    dst = tmp_path / "copy.sqlite"
    shutil.copyfile(src, dst)
    return dst


def test_missing_file(proj: Project) -> None:
    line = assert_one_line_error(escope("replay", "nope/none.sqlite", "--json", cwd=proj.path), "no such recording")
    assert "escope list" in line


def test_empty_file(proj: Project, tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    assert_one_line_error(escope("stats", str(empty), cwd=proj.path), "empty", "pytest --escope")


def test_truncated_file(proj: Project, good: Path) -> None:
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    assert_one_line_error(escope("replay", str(good), "--json", cwd=proj.path), "truncated", "again")


def test_corrupt_file(proj: Project, good: Path) -> None:
    data = bytearray(good.read_bytes())
    for i in range(4096, len(data), 4096):  # scribble over every page but the first
        data[i:i + 200] = b"\xa5" * 200
    good.write_bytes(bytes(data))
    assert_one_line_error(escope("events", str(good), "--json", cwd=proj.path), "corrupt")


def test_text_file_is_not_a_recording(proj: Project, tmp_path: Path) -> None:
    text = tmp_path / "notes.sqlite"
    text.write_text("hello\n" * 50)
    assert_one_line_error(escope("replay", str(text), "--json", cwd=proj.path), "not an escope recording")


def test_foreign_sqlite_file(proj: Project, tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
        db.execute("INSERT INTO meta VALUES ('format', 'something else')")
    db.close()
    assert_one_line_error(escope("stats", str(other), cwd=proj.path), "not an escope recording", "wrong format")
    # a meta table of another shape is refused before a row of it is read
    loose = tmp_path / "loose.sqlite"
    with sqlite3.connect(loose) as db:
        db.execute("CREATE TABLE meta (key TEXT, value TEXT)")
        db.execute("INSERT INTO meta VALUES ('format', 'something else')")
    db.close()
    assert_one_line_error(escope("stats", str(loose), cwd=proj.path), "not an escope recording",
                          "meta is not WITHOUT ROWID")


def test_view_posing_as_a_table_is_refused(proj: Project, good: Path) -> None:
    with sqlite3.connect(good) as db:
        db.execute("DROP TABLE faults")
        db.execute("CREATE VIEW faults AS SELECT 'x' AS message, 1 AS count")
    db.close()
    assert_one_line_error(escope("stats", str(good), cwd=proj.path), "not an escope recording", "it has a view")


def test_newer_schema(proj: Project, good: Path) -> None:
    with sqlite3.connect(good) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.close()
    assert_one_line_error(escope("replay", str(good), "--json", cwd=proj.path), "schema 99",
                          "pip install -U pytest-escope")


def test_unknown_test(proj: Project) -> None:
    assert_one_line_error(escope("replay", "test_nothing_like_it", "--json", cwd=proj.path),
                          "no test matching 'test_nothing_like_it'", "escope list")


def test_passing_test_without_recording(proj: Project) -> None:
    assert_one_line_error(escope("stats", "test_passes", cwd=proj.path), "not kept", "--escope-keep=all")


def test_unknown_name(proj: Project) -> None:
    assert_one_line_error(escope("history", "test_fails", "nosuchvar", cwd=proj.path), "no variable 'nosuchvar'")


def test_bad_step(proj: Project) -> None:
    assert_one_line_error(escope("replay", "test_fails", "--step", "999999", "--json", cwd=proj.path),
                          "no step 999999", "pick a step from 0 to")
    assert_one_line_error(escope("replay", "test_fails", "--step", "-4", "--json", cwd=proj.path), "no step -4")


def test_unknown_node_and_kind(proj: Project) -> None:
    assert_one_line_error(escope("replay", "test_fails", "--at", "nowhere:99", "--json", cwd=proj.path),
                          "no statement with node id")
    assert_one_line_error(escope("events", "test_fails", "--kind", "teleport", cwd=proj.path),
                          "unknown event kind 'teleport'")


def test_usage_error_is_one_line(proj: Project) -> None:
    assert_one_line_error(escope("replay", "--step", "soon", cwd=proj.path), "not a whole number", "--help")
    assert_one_line_error(escope("frobnicate", cwd=proj.path), "invalid choice")


def test_no_escope_dir(tmp_path: Path) -> None:
    assert_one_line_error(escope("list", cwd=tmp_path), "no .escope directory", "pytest --escope")
    assert_one_line_error(escope("replay", "--json", cwd=tmp_path), "no .escope directory")


def test_unknown_run(proj: Project) -> None:
    assert_one_line_error(escope("list", "--run", "19990101", cwd=proj.path), "no run '19990101'")


def test_crashed_process_recording_still_replays(tmp_path: Path) -> None:
    """The process died (os._exit) after a chunk was written: complete=0,
    activations still open, and every command works on what was kept."""
    project = Project(tmp_path / "crash")
    project.write("test_crash.py", CRASH)
    res = project.run("--escope")
    assert res.returncode == 3, res.out
    (path,) = list(project.escope_dir.glob("runs/*/tests/*.sqlite"))
    stats = subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", "stats", str(path), "--json"],
                           capture_output=True, text=True, env=clean_env(), cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    assert '"complete": false' in stats.stdout and '"outcome": "crashed"' in stats.stdout
    state = subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", "replay", str(path), "--json"],
                           capture_output=True, text=True, env=clean_env(), cwd=tmp_path)
    assert state.returncode == 0, state.stderr
    assert '"function": "test_dies"' in state.stdout
    out = subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", "replay", str(path)],
                         input="r\nrr\nn\nq\n", capture_output=True, text=True, env=clean_env(), cwd=tmp_path)
    assert out.returncode == 0 and "Traceback" not in out.stderr
    assert "*** this frame never returns in the recording" in out.stdout
