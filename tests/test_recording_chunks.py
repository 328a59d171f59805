"""The packed film (schema 2): chunks round-trip exactly, a real recording
stays small, and a big film is unpacked once, into the cache, by the real
CLI (docs/recording-format.md, "chunks" and "Unpacking")."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import sqlite3
from pathlib import Path

import pytest

from pytest_escope.recorder import schema

from conftest import Project, cache_dir_for_tests, clean_env, open_ro
from reliability import cli, quiet_env

LOOP = '''
def accumulate(n):
    total = 0
    seen = []
    for i in range(n):
        total += i
        if i % 1000 == 0:
            seen.append(total)
    return total, seen


def test_loop():
    total, seen = accumulate({n})
    assert total == -1
'''


def escope(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=300)


def record_loop(tmp_path: Path, n: int) -> tuple[Project, Path]:
    """A failing test looping ``n`` times, recorded; its project and recording."""
    project = Project(tmp_path / "proj")
    project.write("test_loop.py", LOOP.format(n=n))
    res = project.run("--escope", env=quiet_env())
    assert res.returncode == 1, res.out[-2000:]
    run = project.latest()
    return project, run.path / run.tests()["test_loop.py::test_loop"]["recording"]


def _fresh_db() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.executescript(schema.TABLES_SCHEMA)
    return db


def test_a_chunk_round_trips_every_row() -> None:
    base = 1000
    events = ([1, 2, 2, 3], [7, 7, 9, 7], [10, 11, 11, 12], [5_000, 6_999, 6_000, 1_000_000], [0, 41, 3, 43])
    tables = {
        "frames": [(3, 1, 1000), (4, 2, 1002)],
        "activations": [(7, 3, None, 1, None, 0, 1000, 1003), (9, 4, 7, 1, 2, 1, 1002, None)],
        "bindings": [(3, 1, 1001, 41), (3, 2, 1001, None), (4, 1, 1003, 43)],
        "vals": [(41, None, 1001, "int", "1", None, 0), (43, 5, 1003, "list", "[1, 'é\\u2028']", '{"len":2}', 1)],
    }
    blob = schema.pack_chunk(base, events, tables, [(5, 1002)])
    db = _fresh_db()
    db.execute("INSERT INTO activations VALUES (5, 1, NULL, 1, NULL, 0, 10, NULL)")
    db.execute("INSERT INTO chunks (first_step, steps, data) VALUES (?, ?, ?)", (base, 4, blob))
    assert schema.unpack_chunks(db) == 4
    assert db.execute("SELECT * FROM events ORDER BY step").fetchall() == [
        (1000, 1, 7, 10, 5_000, 41), (1001, 2, 7, 11, 6_000, None),
        (1002, 2, 9, 11, 6_000, None), (1003, 3, 7, 12, 1_000_000, 43)]
    assert db.execute("SELECT * FROM frames").fetchall() == tables["frames"]
    assert db.execute("SELECT * FROM activations WHERE act != 5").fetchall() == tables["activations"]
    assert db.execute("SELECT end_step FROM activations WHERE act = 5").fetchone() == (1002,)
    assert db.execute("SELECT * FROM bindings").fetchall() == tables["bindings"]
    assert db.execute("SELECT * FROM vals ORDER BY value").fetchall() == tables["vals"]
    assert db.execute("SELECT count(*) FROM chunks").fetchone() == (0,)


@pytest.mark.parametrize("data", [b"\x00\x01", "text", 12345])
def test_a_chunk_that_does_not_decode_is_a_chunk_error(data) -> None:
    db = _fresh_db()
    db.execute("INSERT INTO chunks (first_step, steps, data) VALUES (0, 1, ?)", (data,))
    with pytest.raises(schema.ChunkError, match="chunk 1"):
        schema.unpack_chunks(db)


def test_a_real_recording_is_packed_and_under_40_bytes_per_event(tmp_path: Path) -> None:
    _, path = record_loop(tmp_path, 20_000)
    raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    assert raw.execute("SELECT meta.value FROM meta WHERE key = 'schema_version'").fetchone() == (str(schema.SCHEMA_VERSION),)
    assert raw.execute("SELECT count(*) FROM events").fetchone() == (0,)
    chunks, steps = raw.execute("SELECT count(*), sum(steps) FROM chunks").fetchone()
    events = int(dict(raw.execute("SELECT key, value FROM meta"))["event_count"])
    raw.close()
    assert chunks >= 1 and steps == events > 60_000
    assert path.stat().st_size / events < 40, (path.stat().st_size, events)
    # unpacked, it is the film: every iteration's line steps and the list's snapshots
    db = open_ro(path)
    assert db.execute("SELECT count(*) FROM events").fetchone() == (events,)
    assert db.execute("SELECT count(*) FROM vals WHERE type = 'list'").fetchone()[0] >= 20
    assert db.execute("SELECT min(step), max(step) FROM events").fetchone() == (0, events - 1)


def _as_schema_2(path: Path) -> Path:
    """A copy of a recording as schema 2 wrote it (no key frames): the
    films that are still unpacked into the cache to be read as rows."""
    old = path.with_name("v2-" + path.name)
    shutil.copyfile(path, old)  # as it lies: open_ro would unpack it
    db = sqlite3.connect(old)
    db.execute("DROP TABLE keyframes")
    db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    return old


def test_a_big_film_is_unpacked_once_into_the_cache(tmp_path: Path) -> None:
    """A schema-2 film is unpacked once, into a private cache entry; a
    schema-3 film answers the same question where it lies, writing nothing."""
    project, film = record_loop(tmp_path, 30_000)  # past opening.CACHE_FROM_STEPS
    cache = Path(cache_dir_for_tests())
    before = set(cache.glob("*.sqlite"))
    in_place = cli("history", str(film), "total", "--json", cwd=project.path)
    assert in_place.returncode == 0, in_place.stderr
    assert set(cache.glob("*.sqlite")) == before
    path = _as_schema_2(film)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    first = cli("history", str(path), "total", "--json", cwd=project.path)
    assert first.returncode == 0, first.stderr
    added = set(cache.glob("*.sqlite")) - before
    assert len(added) == 1
    (entry,) = added
    made = entry.stat().st_mtime_ns
    second = cli("history", str(path), "total", "--json", cwd=project.path)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == json.loads(first.stdout)
    assert set(cache.glob("*.sqlite")) - before == {entry}
    assert entry.stat().st_mtime_ns >= made
    page = json.loads(first.stdout)
    assert [v["value"]["repr"] for v in page[:4]] == ["0", "1", "3", "6"]
    assert page == json.loads(in_place.stdout)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert oct(entry.stat().st_mode & 0o777) == "0o600"


def test_a_version_1_recording_still_replays(tmp_path: Path) -> None:
    """Schema 1 had the film in the tables and no chunks: the same film,
    rewritten that way, replays to the same answers."""
    project, packed = record_loop(tmp_path, 300)
    old = tmp_path / "v1.sqlite"
    db = open_ro(packed)
    db.execute("VACUUM INTO ?", (str(old),))
    db.close()
    db = sqlite3.connect(old)
    db.execute("DROP TABLE chunks")
    db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    for args in (["history", "{}", "total", "--json"], ["replay", "{}", "--json"], ["events", "{}", "--json"]):
        new = cli(*[a.format(packed) for a in args], cwd=project.path)
        was = cli(*[a.format(old) for a in args], cwd=project.path)
        assert new.returncode == was.returncode == 0, (args, new.stderr, was.stderr)
        assert json.loads(was.stdout) == json.loads(new.stdout), args


def test_a_damaged_cache_entry_is_made_again(tmp_path: Path) -> None:
    project, film = record_loop(tmp_path, 30_000)
    path = _as_schema_2(film)
    cache = tmp_path / "film-cache"
    env = clean_env(ESCOPE_FILM_CACHE=str(cache))
    first = escope("history", str(path), "total", "--json", cwd=project.path, env=env)
    assert first.returncode == 0, first.stderr
    (entry,) = cache.glob("*.sqlite")
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    entry.write_bytes(entry.read_bytes()[:5000])
    again = escope("history", str(path), "total", "--json", cwd=project.path, env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == json.loads(first.stdout)
    assert entry.stat().st_size > 5000


def test_the_cache_keeps_the_most_recently_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_escope.replay import opening
    for i in range(6):
        entry = tmp_path / f"{i}.sqlite"
        entry.write_bytes(b"x" * 100)
        os.utime(entry, (1_000_000 + i, 1_000_000 + i))
    monkeypatch.setattr(opening, "CACHE_MAX_ENTRIES", 3)
    opening._prune_cache(tmp_path, keep=tmp_path / "0.sqlite")
    assert sorted(p.name for p in tmp_path.glob("*.sqlite")) == ["0.sqlite", "4.sqlite", "5.sqlite"]
    monkeypatch.setattr(opening, "CACHE_MAX_BYTES", 250)
    opening._prune_cache(tmp_path, keep=tmp_path / "0.sqlite")
    assert sorted(p.name for p in tmp_path.glob("*.sqlite")) == ["0.sqlite", "5.sqlite"]


#: Records work.run() in-process (argv: work dir, strategy, spill_events
#: and optionally max_events) and keeps the chunks the collector spills in
#: ``chunks``.  No spill by time: what the counts do is what is tested.
CHUNKS_OF_WORK = r'''
import atexit, gc, hashlib, json, shutil, sys, tempfile, threading
from pathlib import Path
from pytest_escope.recorder.config import RecorderConfig
from pytest_escope.recorder.session import Recorder
from pytest_escope.recorder import collector
from pytest_escope.recorder.store import RecordingWriter, _ChunkRows
sys.path.insert(0, sys.argv[1])
import work

d = Path(tempfile.mkdtemp())
atexit.register(shutil.rmtree, d, True)
cfg = RecorderConfig(rootdir=Path(sys.argv[1]), strategy=sys.argv[2], spill_events=int(sys.argv[3]),
                     max_events=int(sys.argv[4]) if len(sys.argv) > 4 else 0, spill_seconds=3600.0,
                     flush_seconds=0)
r = Recorder(cfg, d / "cache").recording(d / "unused.sqlite", {"nodeid": "x"}, keep_in_memory=True)
collector.SPILL_CHARS = 1 << 62  # these tests count events: no spill by snapshot size
chunks = []
r.collector.sink = chunks.append
r.start()
work.run()
r.stop()
r.collector.spill()
'''

#: Writes the same chunks twice: with the compiled event loop of the writer
#: and with the Python one.  Prints one JSON line: both files' chunk blobs.
TWO_WRITERS = CHUNKS_OF_WORK + r'''
blobs = {}
for pure in (False, True):
    w = RecordingWriter(d / f"{pure}.sqlite", {"test_id": "x"}, r.collector.renderer)
    w.pure = pure
    for c in chunks:
        w.put(c)
    w.close({"outcome": "passed"})
    assert w.error is None, w.error
    import sqlite3
    db = sqlite3.connect(d / f"{pure}.sqlite")
    blobs[str(pure)] = [hashlib.sha256(b).hexdigest() for (b,) in db.execute("SELECT data FROM chunks ORDER BY chunk")]
    blobs[str(pure) + "_names"] = db.execute("SELECT * FROM names ORDER BY name").fetchall()
    blobs[str(pure) + "_lines"] = db.execute("SELECT * FROM lines ORDER BY file, line").fetchall()
    blobs[str(pure) + "_keyframes"] = [list(r[:-1]) + [hashlib.sha256(r[-1]).hexdigest()]
                                       for r in db.execute("SELECT * FROM keyframes ORDER BY chunk")]
print(json.dumps({"chunks": len(chunks), "events": r.event_count, **blobs}))
'''

WORK = '''
import threading


def squares(n):
    for i in range(n):
        yield i * i, str(i), float(i) / 3, b"x" * (i % 3), None if i % 2 else True


def counts(n):
    for i in range(n):
        yield (i % 50) if i % 3 else (str(i % 7) if i % 2 else i / 4)


def delegate(n):
    yield from counts(n)
    return "done"


class Bag:
    def __init__(self):
        self.items = []

    def add(self, x):
        self.items.append(x)
        return len(self.items)


def risky(i):
    if i % 7 == 0:
        raise ValueError(f"seven {i}")
    return {"i": i, "half": i / 2}


def worker(out):
    for i in range(300):
        out.append(i)


def run():
    bag = Bag()
    seen = []
    for sq, text, third, raw, flag in squares(3000):
        n = bag.add((sq, text))
        try:
            seen.append(risky(n))
        except ValueError as exc:
            seen.append(str(exc))
    # scalars yielded through `yield from`: the compact forms of the film
    seen.append(sum(1 for _ in delegate(2000)))
    out = []
    t = threading.Thread(target=worker, args=(out,), name="side")
    t.start()
    t.join()
    return len(seen) + len(out)
'''


#: Prints the size of each chunk the collector spilled, in order.
CHUNK_SIZES = CHUNKS_OF_WORK + r'''
print(json.dumps({"events": r.event_count, "sizes": [c["count"] for c in chunks]}))
'''


@pytest.mark.parametrize("max_events", [0, 5000])
def test_chunks_grow_with_the_recording(tmp_path: Path, max_events: int) -> None:
    """A chunk is spilled when memory holds half as many events as the file
    (at least ``spill_events``): a long test is written in a few big chunks,
    which cost the writer less per event, and a killed test still has two
    thirds of its steps on disk.  ``--escope-max-events`` caps the growth:
    only the newest events are kept, so a chunk is never bigger than that."""
    (tmp_path / "work.py").write_text(WORK)
    proc = subprocess.run([sys.executable, "-c", CHUNK_SIZES, str(tmp_path), "balanced", "1000",
                           str(max_events)], capture_output=True, text=True, env=clean_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    sizes, events = got["sizes"], got["events"]
    assert sum(sizes) == events > 40_000
    written = 0
    for size in sizes[:-1]:  # the last is what the final spill found
        limit = max(1000, written // 2)
        if max_events:
            limit = min(limit, max_events)
        # spilled at the first segment boundary past the limit
        assert limit <= size < limit + 1000, (sizes, written)
        written += size
    if max_events:
        assert max(sizes[:-1]) < max_events + 1000
        assert len(sizes) > events // (max_events + 1000)
    else:
        assert sizes[-2] > 10_000
        assert len(sizes) < 20  # a chunk of 1,000 each time would be 40 or more


#: Splits one real chunk with the compiled writer loop and with the Python
#: one; prints what each made and how many objects the garbage collector
#: tracks after the compiled split.
SPLIT_ONE_CHUNK = CHUNKS_OF_WORK + r'''
from pytest_escope.recorder import _hotpath
from pytest_escope.recorder.store import _FilmTables, _sealed_logs
chunk = chunks[0]
parts = _sealed_logs(chunk["events"])
out = {"events": sum(len(p) for p in parts), "parts": sorted({type(p).__name__ for p in chunk["events"]}),
       "tracked_parts": sum(gc.is_tracked(p) for p in chunk["events"])}
for name, cls in (("c", _hotpath.FilmTables), ("py", _FilmTables)):
    w = RecordingWriter(d / f"{name}.sqlite", {"test_id": "x"}, r.collector.renderer)
    rows = _ChunkRows()
    w._tables = tables = cls(w.code_file, w.scalar_vids, r.collector.renderer.max_size, 50_000)
    tables.new_chunk()
    gc.collect()
    before = len(gc.get_objects())
    tables.split(parts, chunk["base"], lambda step, value, payload: w._payload(rows, None, step, value, payload),
                 w.scalar_vids_by_value, w.names, rows.new_names, rows.val_rows, w.seen_lines, rows.new_lines)
    out[name + "_tracked"] = len(gc.get_objects()) - before
    out[name] = {t: tables.rows(t) for t in ("frames", "activations", "bindings", "act_ends", "value_pairs")}
    out[name + "_vals"] = len(rows.val_rows)
print(json.dumps(out))
'''


def test_the_compiled_writer_keeps_rows_as_c_integers(tmp_path: Path) -> None:
    """The compiled writer loop keeps a chunk's frames, activations,
    bindings and event values as C integers (``_hotpath.FilmTables``): a
    generator step makes no object for the garbage collector to walk or
    for the writer to free under the GIL (a 1.4M-event chunk's rows as
    tuples took 150 ms per full collection).  Its rows are the Python
    loop's rows, in the same order."""
    pytest.importorskip("pytest_escope.recorder._hotpath")
    (tmp_path / "work.py").write_text(WORK)
    proc = subprocess.run([sys.executable, "-c", SPLIT_ONE_CHUNK, str(tmp_path), "minimal", str(10**9)],
                          capture_output=True, text=True, env=clean_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["events"] > 9000 and len(got["c"]["activations"]) > 3000
    # the film in memory is EventLog segments: arrays, no object per event
    assert got["parts"] == ["EventLog"] and got["tracked_parts"] == 0
    assert got["c"] == got["py"] and got["c_vals"] == got["py_vals"]
    assert len(got["c"]["value_pairs"]) > 3000
    # the rendered values (text) are objects, the rows are not
    assert got["c_tracked"] <= got["c_vals"] + 50, got["c_tracked"]
    assert got["py_tracked"] > len(got["py"]["activations"])


@pytest.mark.parametrize("strategy", ["minimal", "balanced", "full_trace"])
def test_compiled_writer_loop_writes_the_same_bytes(tmp_path: Path, strategy: str) -> None:
    """The compiled writer (``_hotpath.FilmTables``, ``event_columns``) and
    the Python one (``store._FilmTables``) turn the same chunks of a real
    recording into byte-identical chunk blobs."""
    pytest.importorskip("pytest_escope.recorder._hotpath")
    (tmp_path / "work.py").write_text(WORK)
    proc = subprocess.run([sys.executable, "-c", TWO_WRITERS, str(tmp_path), strategy, "3000"],
                          capture_output=True, text=True, env=clean_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["chunks"] >= 3 and got["events"] > 9000
    # each spill is written as chunks of about schema.CHUNK_STEPS events
    assert got["False"] == got["True"] and len(got["False"]) >= got["chunks"]
    assert got["False_keyframes"] == got["True_keyframes"] and len(got["False_keyframes"]) == len(got["False"])
    assert got["False_names"] == got["True_names"]
    assert got["False_lines"] == got["True_lines"] and got["False_lines"]


class _MyInt(int):
    """An int subclass: the compiled writer leaves its rendering to Python."""


def _random_scalar(rnd: random.Random) -> object:
    """A scalar of a kind the writer renders: the edges of each type, texts
    past the renderer's max_size, escapes, and types the compiled writer
    leaves to Python (ints past 64 bits, subclasses, complex)."""
    return rnd.choice([
        lambda: rnd.choice([2**63 - 1, -2**63, -2**63 + 1, -2**63 + 2, 2**63, -2**63 - 1, 2**64, 0, -1]),
        lambda: rnd.choice([2**100, -(10**40), 10**1000, 1 << 3001]),
        lambda: rnd.randint(-10**6, 10**6),
        lambda: rnd.randint(-2**62, 2**62),
        lambda: rnd.choice([float("nan"), float("inf"), float("-inf"), -0.0, 0.0, 1e300, 5e-324, 1e16, 0.1]),
        lambda: rnd.uniform(-1e9, 1e9),
        lambda: "".join(rnd.choice("ab'\"\\\x00\x1f\x7f\n\té漢😀\ud800\udfff\u2028") for _ in range(rnd.randint(0, 30))),
        lambda: "x" * rnd.randint(0, 40),
        lambda: bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 30))),
        lambda: rnd.choice([True, False, None]),
        lambda: rnd.choice([_MyInt(rnd.randint(-5, 5)), complex(1, -0.0)]),
    ])()


def _scalar_chunks(rnd: random.Random, count: int) -> list[dict]:
    """Chunks of line steps whose payloads bind and return random scalars
    ("s", "R"), beside bindings of known ids ("b"), snapshots ("v"), frames
    and activations; the same scalar often comes back."""
    chunks = []
    step = 0
    seen: list = []
    for _ in range(count):
        events = []
        for i in range(rnd.randint(1, 300)):
            act = 1 + step // 50
            items: list = []
            if step % 50 == 0:
                items += [("F", act, 1), ("A", act, act, None, 1, None, 0)]
            for _ in range(rnd.randint(0, 4)):
                scalar = rnd.choice(seen) if seen and rnd.random() < 0.4 else _random_scalar(rnd)
                seen.append(scalar)
                r = rnd.random()
                if r < 0.6:
                    items.append(("s", act, rnd.choice("abcdef"), scalar))
                elif r < 0.8:
                    items.append(("R", scalar))
                elif r < 0.9:
                    items.append(("b", act, "g", rnd.choice([None, 3, 5])))
                else:
                    items.append(("v", 2 * step + 1, 7, "list", "[1]", '{"len":1}', 0))
            ev = (schema.LINE, act, 10 + i % 7, 1000 + step)
            events.append(ev + (None, tuple(items)) if items else ev)
            step += 1
        chunks.append({"base": step - len(events), "count": len(events), "events": (tuple(events),)})
    return chunks


def test_the_compiled_writer_renders_scalars_as_python_does(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled writer renders the builtin scalars it has not seen
    (``_hotpath.FilmTables``, in C) as ``RecordingWriter._scalar_vid``
    does in Python: the same text, truncation and flags, the same value
    ids from the shared counter, the same memo entries, the same val
    rows, so every chunk blob is byte-identical.  Small ``max_size`` and
    memo bounds so texts get cut and the memos fill up."""
    pytest.importorskip("pytest_escope.recorder._hotpath")
    from pytest_escope.recorder import store
    from pytest_escope.recorder.values import Renderer
    for trial, (max_size, memo) in enumerate([(12, 40), (1, 10), (1000, 50_000), (5, 50_000)]):
        monkeypatch.setattr(store, "SCALAR_MEMO", memo)
        chunks = _scalar_chunks(random.Random(trial), 6)
        got = {}
        for pure in (False, True):
            path = tmp_path / f"{trial}-{pure}.sqlite"
            w = store.RecordingWriter(path, {"test_id": "x"}, Renderer(max_size=max_size))
            w.pure = pure
            for chunk in chunks:
                w.put(chunk)
            w.close({"outcome": "passed"})
            assert w.error is None, w.error
            db = sqlite3.connect(path)
            blobs = [b for (b,) in db.execute("SELECT data FROM chunks ORDER BY chunk")]
            got[pure] = (blobs, [schema._decode_chunk(b) for b in blobs],
                         db.execute("SELECT * FROM names ORDER BY name").fetchall())
            db.close()
        assert got[False][1] == got[True][1], trial
        assert got[False] == got[True], trial
        vals = [doc["vals"] for doc in got[False][1] if "vals" in doc]
        assert vals, trial  # scalars were rendered
    assert "\u2026" in str(vals)  # a text was cut


def test_compiled_int_columns_pack_the_same_bytes() -> None:
    """``_hotpath.json_int_column`` writes exactly what the JSON encoder
    writes for every column it takes (None, negatives, the int64 edges),
    and declines what it cannot (ints past 64 bits, None in a difference
    column) so Python writes those."""
    hot = pytest.importorskip("pytest_escope.recorder._hotpath")
    from pytest_escope.recorder.values import _encode_json
    rnd = random.Random(7)
    edges = [2**63 - 1, -2**63, 2**63, -2**63 - 1, 2**80, 0, -1]
    for trial in range(200):
        n = rnd.randint(0, 40)

        def ints(k: int, none: bool = False) -> list:
            out: list = []
            for _ in range(k):
                r = rnd.random()
                out.append(None if none and r < 0.15 else rnd.choice(edges) if trial % 5 == 0 and r < 0.3
                           else rnd.randint(-10**12, 10**12))
            return out

        events = (ints(n), ints(n), ints(n), ints(n), ints(2 * (n // 3)))
        tables = {
            "frames": [tuple(ints(3)) for _ in range(rnd.randint(0, 4))],
            "activations": [tuple(ints(2) + ints(4, none=True) + ints(1) + ints(1, none=True))
                            for _ in range(rnd.randint(0, 4))],
            "bindings": [tuple(ints(3) + ints(1, none=True)) for _ in range(rnd.randint(0, 4))],
            "vals": [(rnd.randint(0, 99), None, rnd.randint(0, 9), "str", "'é\u2028\"'", None, 0)
                     for _ in range(rnd.randint(0, 3))],
        }
        ends = [tuple(ints(2)) for _ in range(rnd.randint(0, 3))]
        base = rnd.randint(0, 10**9)
        got = []
        for int_column in (None, hot.json_int_column):
            try:
                got.append(schema.pack_chunk(base, events, tables, ends, encode=_encode_json,
                                             int_column=int_column))
            except (TypeError, OverflowError) as exc:
                got.append(type(exc).__name__)
        assert got[0] == got[1], trial
    assert hot.json_int_column([1, None, 3], 1, 0) is None  # differences never hold None
    assert hot.json_int_column([2**64], 0, 0) is None
    assert hot.json_int_column([5, 7, 4], 1, 0) == "[5,2,-3]"
    assert hot.json_int_column([1999, 3000, 2500], 3, 0) == "[1,2,-1]"
    assert hot.json_int_column([None, 12], 2, 10) == "[null,2]"
    # one item of each row, read in place: tuples and lists alike
    assert hot.json_int_column([(1, 20), [3, 40], (5, None)], 2, 10, 1) == "[10,30,null]"
    assert hot.json_int_column([(1, 2), (3,)], 0, 0, 1) is None  # a short row: Python decides
    assert hot.json_int_column([(-2**63, 0)], 0, 0, 0) == "[-9223372036854775808]"
    # every column of the rows in one pass: a list, None where Python must write it
    assert hot.json_int_column([(1, "a", 5), [3, 4, 9]], (0, 0, 1), 0) == ["[1,3]", None, "[5,4]"]
    assert hot.json_int_column([(1, 2), (3,)], (0, 0), 0) == ["[1,3]", None]
    assert hot.json_int_column([], (2, 3), 7) == ["[]", "[]"]


def test_compiled_text_columns_are_what_the_json_encoder_writes() -> None:
    """``_hotpath.json_text_column`` writes a column of str or None cells
    exactly as the writer's JSON encoder writes the list (quotes,
    backslashes and control characters escaped, everything else as it
    is), and declines what it cannot: a lone surrogate, a cell of another
    type, a short row."""
    hot = pytest.importorskip("pytest_escope.recorder._hotpath")
    from pytest_escope.recorder.values import _encode_json
    rnd = random.Random(5)
    alphabet = "ab'\"\\/\x00\x01\x08\x0c\x1f\x7f\x80\n\r\té漢😀\u2028\ufeff"
    for trial in range(300):
        rows = [(rnd.randint(0, 9), None if rnd.random() < 0.2 else
                 "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12))))
                for _ in range(rnd.randint(0, 30))]
        assert hot.json_text_column(rows, 1) == _encode_json([r[1] for r in rows]), trial
    assert hot.json_text_column([(1, "a"), (2, "\ud800")], 1) is None
    assert hot.json_text_column([(1, "a"), (2, 3)], 1) is None
    assert hot.json_text_column([(1, "a"), (2,)], 1) is None
    assert hot.json_text_column([], 3) == "[]"


def test_the_event_log_keeps_what_a_list_of_tuples_would() -> None:
    """``_hotpath.EventLog`` is the film in memory when the extension is
    built: it takes the tuples a list took, gives them back alike, moves
    its events into a sealed segment atomically, and writes the four event
    columns exactly as the JSON encoder writes the lists."""
    hot = pytest.importorskip("pytest_escope.recorder._hotpath")
    from pytest_escope.recorder.values import _encode_json
    rnd = random.Random(11)
    for trial in range(100):
        log = hot.EventLog()
        tuples = []
        t = rnd.randint(0, 10**15)
        for _ in range(rnd.randint(0, 3000)):
            t += rnd.randint(0, 10**7)
            line = None if rnd.random() < 0.05 else rnd.choice([rnd.randint(0, 5000), -2**63 + 1, 2**63 - 1])
            ev = (rnd.randint(1, 11), rnd.randint(0, 2**62), line, t)
            if rnd.random() < 0.4:
                payload = rnd.choice([None, (("s", 1, "x", "é" * 3),), (("R", 2**70),), ()])
                ev += (rnd.choice([None, rnd.randint(0, 99)]), payload)
                if ev[4] is None and ev[5] is None:
                    ev = ev[:4]  # (.., None, None) is a plain step: read back as one
            log.append(ev)
            tuples.append(ev)
        assert len(log) == len(tuples) and log.tolist() == tuples
        segment = log.seal()
        assert len(log) == 0 and not log and segment.tolist() == tuples
        for change in (lambda: segment.append((2, 1, 1, 1)), segment.seal, segment.clear):
            with pytest.raises(RuntimeError):  # the writer reads it without the GIL
                change()
        assert segment.tolist() == tuples
        cols = hot.event_columns((segment,), 0)
        if not tuples:
            assert cols == ("[]", "[]", "[]", "[]")
            continue
        kinds, acts, lines, times = (list(c) for c in zip(*[ev[:4] for ev in tuples]))
        expect = (
            _encode_json(kinds),
            _encode_json([acts[0]] + [b - a for a, b in zip(acts, acts[1:])]),
            _encode_json(lines),
            _encode_json([times[0] // 1000] + [b // 1000 - a // 1000 for a, b in zip(times, times[1:])]),
        )
        assert cols == expect, trial
    assert hot.event_columns((hot.EventLog(),), 0) is None  # not sealed: it may still grow
    log = hot.EventLog()
    for bad in [(1, 2, 3), (1, 2, 3, 4, 5), [1, 2, 3, 4], (1, 2, 3, 2**64), (1, 2, "3", 4), (1.0, 2, 3, 4)]:
        with pytest.raises(TypeError):
            log.append(bad)
    assert len(log) == 0
    log.append((2, 1, 7, 5, "v", ("p",)))
    log.clear()
    assert log.tolist() == []
