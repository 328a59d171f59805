"""Untrusted recordings: opening one never executes anything from it, and a
crafted or damaged file gives one clear error or a correct partial answer
in bounded time and memory (docs/reliability.md, "Untrusted recordings").

Every read command runs through the real CLI entry point (``cli.main``) in
a subprocess with an address-space limit and a timeout: a traceback, a
crash, a hang or a runaway allocation fails the test.
"""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import zlib
from pathlib import Path

import apsw
import pytest

from conftest import Project, module_project
from pytest_escope.recorder import schema
from reliability import quiet_env

ROOT = Path(__file__).resolve().parents[1]

SUITE = '''
def helper(items):
    total = 0
    for x in items:
        total += x
    return total


def test_fails():
    data = [1, 2, 3]
    got = helper(data)
    assert got == 7
'''

#: Runs every read command on each path with cli.main, under RLIMIT_AS;
#: prints JSON {path: [[command, rc, stderr], ...]} for anything other
#: than rc 0 or a one-line "escope: error:" with rc 2.
CHECKER = r'''
import contextlib, io, json, os, resource, sys, traceback
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from pytest_escope.replay import cli

def check(path):
    bad = []
    for args in (["stats", path, "--json"], ["replay", path, "--json"], ["replay", path, "--print"],
                 ["replay", path, "--step", "0", "--json"], ["replay", path, "--step", "99999999999", "--json"],
                 ["events", path, "--json", "--limit", "100"], ["events", path, "--kind", "call,return"],
                 ["flow", path, "--json"], ["history", path, "total", "--json"], ["history", path, "data"],
                 ["export", path, "--html", "-o", path + ".html"]):
        if args[0] == "export" and os.environ.get("SKIP_EXPORT"):
            continue
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = cli.main(args)
        except SystemExit as exc:
            rc = exc.code
        except BaseException:
            rc = "traceback"
            err.write(traceback.format_exc())
        text = err.getvalue()
        one_line = len(text.splitlines()) == 1 and text.startswith("escope: error: ")
        if not (rc == 0 or (rc == 2 and one_line)):
            bad.append([args[0], rc, text[-800:]])
    # the interactive session, driven by stdin
    sys.stdin = io.StringIO("rn\nrs\nn\ns\nr\nrr\nw\nu\nd\ngoto start\ngoto failure\nq\n")
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli.main(["replay", path])
    except SystemExit as exc:
        rc = exc.code
    except BaseException:
        rc = "traceback"
        err.write(traceback.format_exc())
    if rc not in (0, 2) or "Traceback" in err.getvalue():
        bad.append(["interactive", rc, err.getvalue()[-800:]])
    return bad

print(json.dumps({p: check(p) for p in sys.argv[1:]}))
'''


def check(paths: list[Path], cwd: Path, timeout: float = 300, **env: str) -> dict[str, list]:
    res = subprocess.run([sys.executable, "-c", CHECKER, *map(str, paths)], cwd=cwd, capture_output=True,
                         text=True, env=quiet_env(**env), timeout=timeout)
    assert res.returncode == 0, res.stderr[-3000:]
    return {Path(k).name: v for k, v in json.loads(res.stdout).items() if v}


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Path]:
    project = module_project(tmp_path_factory, "untrusted")
    project.write("test_it.py", SUITE)
    res = project.run("--escope", env=quiet_env())
    assert res.returncode == 1, res.out[-2000:]
    (path,) = project.escope_dir.glob("runs/*/tests/*.sqlite")
    return project, path


def crafted(good: tuple[Project, Path], tmp_path: Path, name: str, *sql: str, unpack: bool = True) -> Path:
    """A copy of the good recording changed by ``sql``.  Its chunks are first
    unpacked into the tables (a layout the writer also leaves behind, after
    --escope-max-events) so the SQL reaches real rows; ``unpack=False``
    keeps the film packed, for edits of the chunks themselves."""
    _, src = good
    path = tmp_path / f"{name}.sqlite"
    shutil.copyfile(src, path)
    db = sqlite3.connect(path)
    if unpack:
        schema.unpack_chunks(db)
        db.commit()
    db.executescript(";\n".join(sql))
    db.commit()
    db.close()
    return path


def test_the_good_recording_passes_the_checker(good, tmp_path: Path) -> None:
    project, src = good
    path = tmp_path / "copy.sqlite"
    shutil.copyfile(src, path)
    assert check([path], project.path) == {}


def test_no_code_from_the_file_runs(good, tmp_path: Path) -> None:
    """Triggers and views in the schema: nothing fires, nothing is written."""
    project, _ = good
    sentinel = tmp_path / "sentinel.txt"
    path = crafted(good, tmp_path, "triggers",
                   "CREATE TABLE log (x)",
                   "CREATE TRIGGER t1 AFTER INSERT ON events BEGIN INSERT INTO log VALUES (1); END",
                   "CREATE TRIGGER t2 BEFORE DELETE ON meta BEGIN SELECT load_extension('evil'); END",
                   "CREATE TRIGGER t3 AFTER UPDATE ON vals BEGIN SELECT raise(ABORT, 'boom'); END",
                   f"CREATE VIEW v1 AS SELECT load_extension('{sentinel}')",
                   "CREATE VIEW v2 AS SELECT * FROM events, events, events")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert check([path], project.path) == {}
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert not sentinel.exists() and not Path(str(path) + "-journal").exists()


def test_connections_are_read_only_and_defensive(good) -> None:
    from pytest_escope.replay.opening import connect_readonly, open_recording
    _, path = good
    conn, meta = open_recording(path)
    try:
        assert conn.execute("PRAGMA trusted_schema").fetchall() == [(0,)]
        with pytest.raises(apsw.ReadOnlyError):
            conn.execute("INSERT INTO meta VALUES ('x', 'y')")
        with pytest.raises(apsw.Error):
            conn.execute("SELECT load_extension('/nonexistent/evil')").fetchall()
        assert conn.config(apsw.SQLITE_DBCONFIG_DEFENSIVE, -1) == 1
    finally:
        conn.close()
    conn = connect_readonly(path)
    conn.close()


def test_replay_source_has_no_code_loaders() -> None:
    """No pickle, marshal, eval or exec anywhere in replay/: values are text and JSON."""
    banned_modules = {"pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle"}
    for path in sorted((ROOT / "replay").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not {a.name.split(".")[0] for a in node.names} & banned_modules, path
            elif isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] not in banned_modules, path
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("eval", "exec", "compile", "__import__"), (path, node.lineno)
            elif isinstance(node, ast.Attribute):
                assert node.attr not in ("enable_load_extension",) or "False" in ast.unparse(
                    next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.func is node)), path


CRAFTED = {
    "absurd_meta": ["UPDATE meta SET value = '100000000000000000000000000000' WHERE key IN "
                    "('event_count', 'first_step', 'failure_step', 'dropped_events', 'threads')"],
    "negative_meta": ["UPDATE meta SET value = '-7' WHERE key IN ('event_count', 'first_step', 'failure_step')"],
    "text_meta": ["UPDATE meta SET value = 'banana' WHERE key IN ('event_count', 'first_step', 'failure_step', "
                  "'started_unix_ns', 'complete')"],
    "huge_steps": ["UPDATE events SET step = step + 4611686018427387904 WHERE step > 3"],
    "wrong_types": ["UPDATE events SET kind = 'call', line = x'00ff', time_ns = 'soon' WHERE step % 2 = 0",
                    "UPDATE vals SET detail = '{not json', repr = x'deadbeef', type = 12",
                    "UPDATE names SET text = name * 1000",
                    "UPDATE bindings SET value = 'v', frame = 3.5"],
    "unknown_kinds": ["UPDATE events SET kind = 99 WHERE step % 3 = 0"],
    "dangling_refs": ["UPDATE events SET act = 424242 WHERE step % 2 = 1",
                      "UPDATE bindings SET value = 999999",
                      "UPDATE activations SET frame = 777"],
    "parent_self_cycle": ["UPDATE activations SET parent = act"],
    "parent_two_cycle": ["UPDATE activations SET parent = CASE WHEN act % 2 = 1 THEN act + 1 ELSE act - 1 END"],
    "huge_texts": ["UPDATE vals SET repr = printf('%.*c', 20000000, 'x') WHERE value = (SELECT min(value) FROM vals)",
                   "UPDATE files SET source = zeroblob(30000000)"],
    "bad_source": ["UPDATE files SET source = x'789c0000', sha256 = 'nope'"],
    "empty_tables": ["DELETE FROM events", "DELETE FROM activations"],
    "detail_bomb": ["UPDATE vals SET detail = '{\"items\":' || replace(printf('%.*c', 100000, '['), ' ', '[') "
                    "|| replace(printf('%.*c', 100000, ']'), ' ', ']') || '}'"],
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_file(case: str, good, tmp_path: Path) -> None:
    project, _ = good
    path = crafted(good, tmp_path, case, *CRAFTED[case])
    assert check([path], project.path) == {}


def _chunk_json(doc: str) -> str:
    return "x'" + zlib.compress(doc.encode()).hex() + "'"


#: Damaged or hostile chunks (the packed film, schema 2).
CRAFTED_CHUNKS = {
    "not_zlib": ["UPDATE chunks SET data = x'00112233445566778899'"],
    "text_data": ["UPDATE chunks SET data = 'hello'"],
    "not_json": ["UPDATE chunks SET data = " + _chunk_json('{not json')],
    "json_list": ["UPDATE chunks SET data = " + _chunk_json('[1, 2, 3]')],
    "short_columns": ["UPDATE chunks SET data = " + _chunk_json('{"events": [[2, 2], [1], [3, 4], [5, 6], []]}')],
    "string_differences": ["UPDATE chunks SET data = "
                           + _chunk_json('{"events": [[2, 2], ["aa", "bb"], [3, 4], [5, 6], []]}')],
    "nested_values": ["UPDATE chunks SET data = "
                      + _chunk_json('{"events": [[2, 2], [1, 0], [[3], {}], [5, 6], [0, [1]]]}')],
    "value_outside": ["UPDATE chunks SET data = "
                      + _chunk_json('{"events": [[2, 2], [1, 0], [3, 4], [5, 6], [99, 1]]}')],
    "text_first_step": ["UPDATE chunks SET first_step = 'soon'"],
    "duplicate_chunks": ["INSERT INTO chunks (first_step, steps, data) SELECT first_step, steps, data FROM chunks"],
    "huge_steps": ["UPDATE chunks SET steps = 4611686018427387904, first_step = 4611686018427387904"],
    "trigger_on_unpack": ["CREATE TABLE log (x)",
                          "CREATE TRIGGER t1 AFTER INSERT ON events BEGIN INSERT INTO log VALUES (1); END"],
}


@pytest.mark.parametrize("case", sorted(CRAFTED_CHUNKS))
def test_crafted_chunks(case: str, good, tmp_path: Path) -> None:
    project, src = good
    assert sqlite3.connect(src).execute("SELECT count(*) FROM chunks").fetchone()[0] >= 1
    path = crafted(good, tmp_path, case, *CRAFTED_CHUNKS[case], unpack=False)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert check([path], project.path) == {}
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_a_chunk_bomb_is_refused(good, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk that inflates past CHUNK_LIMIT is refused before it is parsed."""
    from pytest_escope.replay.errors import RecordingError
    from pytest_escope.replay.opening import open_recording
    bomb = zlib.compress(b"[" * (1 << 22), 9)
    path = crafted(good, tmp_path, "bomb", f"UPDATE chunks SET data = x'{bomb.hex()}'", unpack=False)
    monkeypatch.setattr(schema, "CHUNK_LIMIT", 1 << 20)
    with pytest.raises(RecordingError, match="corrupt.*allowed size"):
        open_recording(path)


def test_stack_far_deeper_than_replay_allows(good, tmp_path: Path) -> None:
    """Activations each the parent of the next, three times deeper than
    replay's MAX_STACK_DEPTH: one clear error or an answer, in bounded time.
    (The HTML export is linear in the events and slow: left out.)"""
    from pytest_escope.replay.recording import MAX_STACK_DEPTH
    project, _ = good
    n = 3 * MAX_STACK_DEPTH
    path = crafted(good, tmp_path, "deep",
                   "DELETE FROM events", "DELETE FROM activations",
                   f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) "
                   "INSERT INTO activations (act, frame, parent, thread, task, depth, start_step, end_step) "
                   "SELECT i, 1, CASE WHEN i = 1 THEN NULL ELSE i - 1 END, 1, NULL, i - 1, i - 1, NULL FROM n",
                   f"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {n - 1}) "
                   "INSERT INTO events SELECT i, 1, i + 1, 1, i, NULL FROM n",
                   f"UPDATE meta SET value = '{n}' WHERE key = 'event_count'",
                   f"UPDATE meta SET value = '{n - 1}' WHERE key = 'failure_step'")
    assert check([path], project.path, timeout=600, SKIP_EXPORT="1") == {}


#: Mutates a real recording many ways (random bytes, random cells) and runs
#: every command on each mutant, with hypothesis.
FUZZ = r'''
import json, shutil, sqlite3, subprocess, sys, os
from pathlib import Path
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

SRC = Path(sys.argv[1])
WORK = Path(sys.argv[2])
CHECKER = sys.argv[3]
TABLES = {"meta": ["value"], "events": ["step", "kind", "act", "line", "time_ns", "value"],
          "activations": ["act", "frame", "parent", "thread", "depth", "start_step", "end_step"],
          "frames": ["frame", "code", "first_step"], "codes": ["code", "file", "qualname", "first_line"],
          "vals": ["value", "obj", "step", "type", "repr", "detail", "flags"],
          "bindings": ["frame", "name", "step", "value"], "names": ["name", "text"],
          "files": ["path", "source"], "lines": ["file", "line", "node"], "phases": ["start_step", "end_step"],
          "nodes": ["first_line", "node_id"], "chunks": ["first_step", "steps", "data"]}
values = st.one_of(st.none(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=True), st.text(max_size=40),
                   st.binary(max_size=40), st.sampled_from(["", "1", "0", "-1", "{}", "[", "9" * 30]))
cell = st.tuples(st.sampled_from(sorted(TABLES)), st.data())
byte_edit = st.tuples(st.integers(0, 1 << 30), st.integers(0, 255))
n = [0]
batch = []


def run_batch():
    res = subprocess.run([sys.executable, "-c", CHECKER, *batch], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    bad = {k: v for k, v in json.loads(res.stdout).items() if v}
    if bad:
        # mutants are checked ten at a time, so shrinking would blame the
        # wrong example: name the bad files (kept in WORK) and stop
        print("BAD", json.dumps(bad, indent=1))
        sys.exit(1)
    batch.clear()


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "40")), deadline=None, database=None,
          suppress_health_check=list(HealthCheck), phases=[Phase.generate])
@given(edits=st.lists(byte_edit, max_size=12), cells=st.lists(st.tuples(st.sampled_from(sorted(TABLES)),
       st.integers(0, 10), values, st.integers(0, 6)), max_size=6))
def fuzz(edits, cells):
    n[0] += 1
    path = WORK / f"m{n[0]}.sqlite"
    shutil.copyfile(SRC, path)
    if cells:
        db = sqlite3.connect(path)
        for table, row, value, col_i in cells:
            cols = TABLES[table]
            col = cols[col_i % len(cols)]
            try:
                db.execute(f"UPDATE {table} SET {col} = ? WHERE rowid IN (SELECT rowid FROM {table} "
                           f"LIMIT 1 OFFSET ?)", (value, row))
            except sqlite3.Error:
                pass
        db.commit()
        db.close()
    if edits:
        data = bytearray(path.read_bytes())
        for offset, byte in edits:
            data[offset % len(data)] = byte
        path.write_bytes(bytes(data))
    batch.append(str(path))
    if len(batch) >= 10:
        run_batch()


fuzz()
if batch:
    run_batch()
print("fuzzed", n[0])
'''


def test_fuzz_mutated_recordings(good, tmp_path: Path) -> None:
    project, src = good
    res = subprocess.run([sys.executable, "-c", FUZZ, str(src), str(tmp_path), CHECKER], cwd=project.path,
                         capture_output=True, text=True, env=quiet_env(), timeout=1200)
    assert res.returncode == 0, (res.stdout[-8000:], res.stderr[-3000:])
    assert "fuzzed" in res.stdout


# -- schema-level mutations: a file's schema must be escope's own -------------------

#: A column or table SQLite would compute on read: 400 MB per row.
_BOMB = "zeroblob(400000000)"


def _rebuilt(table: str, create: str, columns: str) -> list[str]:
    """SQL replacing ``table`` by ``create`` (of ``{table}_new``), keeping
    the rows of ``columns``."""
    return [create, f"INSERT INTO {table}_new ({columns}) SELECT {columns} FROM {table}",
            f"DROP TABLE {table}", f"ALTER TABLE {table}_new RENAME TO {table}"]


#: Recordings whose schema is not escope's.  Each must be refused with one
#: line naming the schema, before a row is read.
SCHEMA_MUTATIONS = {
    "generated_meta_value": _rebuilt(
        "meta", f"CREATE TABLE meta_new (key TEXT PRIMARY KEY, value TEXT AS ({_BOMB})) WITHOUT ROWID", "key"),
    "generated_lines_node": _rebuilt(
        "lines", "CREATE TABLE lines_new (file INTEGER NOT NULL, line INTEGER NOT NULL, "
                 f"node INTEGER AS ({_BOMB}), PRIMARY KEY (file, line)) WITHOUT ROWID", "file, line"),
    "generated_vals_repr": _rebuilt(
        "vals", "CREATE TABLE vals_new (value INTEGER PRIMARY KEY, obj INTEGER, step INTEGER NOT NULL, "
                f"type TEXT NOT NULL, repr TEXT AS ({_BOMB}), detail TEXT, flags INTEGER NOT NULL DEFAULT 0)",
        "value, obj, step, type, detail, flags"),
    "view": [f"CREATE VIEW v AS SELECT {_BOMB} AS x FROM events"],
    "trigger": ["CREATE TABLE log (x)",
                f"CREATE TRIGGER t AFTER INSERT ON events BEGIN INSERT INTO log VALUES ({_BOMB}); END"],
    "huge_declared_type": _rebuilt(
        "names", "CREATE TABLE names_new (name INTEGER PRIMARY KEY, text " + "T" * 200_000 + " NOT NULL UNIQUE)",
        "name, text"),
    "without_rowid_events": _rebuilt(
        "events", "CREATE TABLE events_new (step INTEGER PRIMARY KEY, kind INTEGER NOT NULL, act INTEGER NOT NULL, "
                  "line INTEGER NOT NULL, time_ns INTEGER NOT NULL, value INTEGER) WITHOUT ROWID",
        "step, kind, act, line, time_ns, value"),
    "rowid_meta": _rebuilt("meta", "CREATE TABLE meta_new (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                           "key, value"),
    "extra_column": ["ALTER TABLE vals ADD COLUMN extra TEXT"],
}

#: The CLI, in a child whose address space is capped: a bomb that gets
#: through dies of it, and its peak resident size is measured either way.
_CAPPED_CLI = r'''
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from pytest_escope.replay import cli
sys.exit(cli.main(sys.argv[1:]))
'''


def capped_cli(*args: str, cwd: Path) -> tuple[int, str, int]:
    """(exit status, stderr, peak resident size in kB) of one escope command."""
    import os
    import tempfile
    import threading
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen([sys.executable, "-c", _CAPPED_CLI, *args], cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err, env=quiet_env())
        watchdog = threading.Timer(120, proc.kill)  # a hang is a failure, not a stuck suite
        watchdog.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            watchdog.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return proc.returncode, err.read(), usage.ru_maxrss


def _archive_with_index(good_archive: Path, index: Path, out: Path) -> None:
    """``good_archive`` with its run index replaced by ``index``, the
    manifest's size and sha256 made to match (a crafted archive, not a
    damaged one)."""
    import io
    import tarfile
    with tarfile.open(good_archive) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    manifest = json.loads(members[0][1])
    data = index.read_bytes()
    (name,) = [n for n in manifest["files"] if n.endswith("/index.sqlite")]
    manifest["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    with tarfile.open(out, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for member, blob in members:
            blob = json.dumps(manifest).encode() if member.name.endswith("MANIFEST.json") else \
                data if member.name == name else blob
            member.size = len(blob)
            tar.addfile(member, io.BytesIO(blob))


def _assert_refused(rc: int, err: str, rss_kb: int, what: str) -> None:
    lines = err.splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("escope: error: "), (rc, err[-2000:])
    assert "not escope's" in lines[0], lines[0]
    assert rss_kb < 300_000, (what, rss_kb)


@pytest.mark.parametrize("case", sorted(SCHEMA_MUTATIONS))
def test_a_recording_with_another_schema_is_refused(case: str, good, tmp_path: Path) -> None:
    """Generated columns, views, triggers, huge declared types, WITHOUT
    ROWID where escope makes rowid tables and back, extra columns: one line
    and exit status 2 from every command, in bounded memory, before a row
    is read (a generated column would compute 400 MB per row)."""
    project, _ = good
    path = crafted(good, tmp_path, case, *SCHEMA_MUTATIONS[case])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for args in (["stats", str(path)], ["replay", str(path), "--print"], ["events", str(path), "--limit", "5"],
                 ["export", str(path), "--html", "-o", str(tmp_path / "film.html")]):
        rc, err, rss = capped_cli(*args, cwd=project.path)
        _assert_refused(rc, err, rss, args[0])
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert not (tmp_path / "film.html").exists()


def test_a_hot_journal_does_not_skip_the_schema_check(good, tmp_path: Path) -> None:
    """A recording with a hot journal is rolled back in a private copy
    first: the copy is checked before a row of it is read."""
    project, _ = good
    path = crafted(good, tmp_path, "journal", *SCHEMA_MUTATIONS["generated_meta_value"])
    Path(str(path) + "-journal").write_bytes(b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7" + bytes(504))
    for args in (["stats", str(path)], ["replay", str(path), "--print"]):
        rc, err, rss = capped_cli(*args, cwd=project.path)
        _assert_refused(rc, err, rss, args[0])


@pytest.mark.parametrize("case", ["generated_value", "view", "without_rowid_tests"])
def test_an_archive_whose_index_has_another_schema_is_refused(case: str, good, tmp_path: Path) -> None:
    """The same for a run index, in a run dir and in an archive whose
    manifest matches it."""
    project, _ = good
    archive = tmp_path / "good.tar.gz"
    packed = subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", "pack", "--all", "-o", str(archive)],
                            cwd=project.path, capture_output=True, text=True, env=quiet_env(), timeout=120)
    assert packed.returncode == 0, packed.stderr
    run_dir = tmp_path / "run"
    shutil.copytree(next(project.escope_dir.glob("runs/*")), run_dir)
    index = run_dir / "index.sqlite"
    db = sqlite3.connect(index)
    db.executescript(";\n".join({
        "generated_value": _rebuilt("run", f"CREATE TABLE run_new (key TEXT PRIMARY KEY, value TEXT AS ({_BOMB})) "
                                           "WITHOUT ROWID", "key"),
        "view": [f"CREATE VIEW v AS SELECT {_BOMB} AS x"],
        "without_rowid_tests": ["CREATE TABLE t2 AS SELECT * FROM tests", "DROP TABLE tests",
                                "CREATE TABLE tests (test_id TEXT NOT NULL, worker TEXT NOT NULL, "
                                "outcome TEXT NOT NULL, "
                                "setup TEXT, call TEXT, teardown TEXT, duration_ns INTEGER, "
                                "events INTEGER NOT NULL DEFAULT 0, dropped INTEGER NOT NULL DEFAULT 0, "
                                "bytes INTEGER NOT NULL DEFAULT 0, recording TEXT, failure TEXT, started_ns INTEGER, "
                                "attempt INTEGER NOT NULL DEFAULT 0, "
                                "PRIMARY KEY (test_id, worker, attempt)) WITHOUT ROWID",
                                "INSERT INTO tests SELECT * FROM t2", "DROP TABLE t2"],
    }[case]))
    db.commit()
    db.close()
    crafted_archive = tmp_path / "crafted.tar.gz"
    _archive_with_index(archive, index, crafted_archive)
    for args in (["list", "--run", str(run_dir)], ["stats", "--run", str(run_dir)],
                 ["list", "--run", str(crafted_archive)], ["replay", "--run", str(crafted_archive), "--print"]):
        rc, err, rss = capped_cli(*args, cwd=project.path)
        _assert_refused(rc, err, rss, " ".join(args[:1]))


def test_lengths_are_bounded_on_every_connection(good) -> None:
    """What the schema check cannot see (a huge value in a plain column) is
    bounded by SQLITE_LIMIT_LENGTH on every connection to a file."""
    from pytest_escope.replay.opening import connect_readonly
    from pytest_escope.replay.schema_check import MAX_LENGTH
    _, path = good
    conn = connect_readonly(path)
    try:
        assert conn.limit(apsw.SQLITE_LIMIT_LENGTH, -1) == MAX_LENGTH
        with pytest.raises(apsw.TooBigError):
            conn.execute(f"SELECT zeroblob({MAX_LENGTH + 1})").fetchall()
    finally:
        conn.close()
