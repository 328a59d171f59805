"""The questions over a whole film -- ``history``, ``events``, ``flow``,
``stats`` -- read a schema-3 recording where it lies: nothing is unpacked,
nothing lands in the film cache, and every answer equals the one the
unpacked, indexed copy gives (docs/recording-format.md, "Reading a film")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_escope.replay.opening import open_recording
from pytest_escope.replay.recording import Recording

from conftest import Project, clean_env
from reliability import cli, quiet_env
from test_replay_film_store import PROGRAM


@pytest.fixture(scope="module")
def film(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A failing test of some 15,000 events over several chunks: a
    generator suspended across them, a second thread, a dict and lists
    changed in place, a name deleted, exceptions caught and one not."""
    project = Project(tmp_path_factory.mktemp("film") / "proj")
    project.write("test_film.py", PROGRAM.replace("{n}", "900"))
    res = project.run("--escope", env=quiet_env())
    assert res.returncode == 1, res.out[-2000:]
    run = project.latest()
    return run.path / run.tests()["test_film.py::test_film"]["recording"]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty film cache for this test (and the temporary directory
    small films are unpacked into), both watched."""
    root = tmp_path / "cache"
    root.mkdir()
    monkeypatch.setenv("ESCOPE_FILM_CACHE", str(root))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return root


def _unpacked(path: Path) -> Recording:
    conn, meta = open_recording(path)
    return Recording(conn, meta, path)


def _entries(h: object) -> list[tuple]:
    return [(e.step, e.node, e.function, e.frame, e.value.to_json()) for e in h]  # type: ignore[attr-defined]


def _written(cache: Path) -> set[str]:
    """Files in the film cache and the temporary directory."""
    return {str(p) for p in cache.parent.rglob("*") if p.is_file()}


def test_history_of_every_name_equals_the_unpacked_film(film: Path, cache: Path) -> None:
    with Recording.open(film) as rec, _unpacked(film) as old:
        before = _written(cache)  # the reference copy's own unpacking, not rec's
        assert rec.store is not None and old.store is None
        names = sorted(rec.name_ids())
        assert {"total", "box", "out", "seen", "gen", "temp", "caught"} <= set(names)
        for name in names:
            assert _entries(rec.history(name)) == _entries(old.history(name)), name
            assert rec.history(name).bindings() == old.history(name).bindings(), name
        assert rec._rows_conn is None
        assert _written(cache) == before


@pytest.mark.parametrize("name", ["total", "box", "out", "seen", "i", "temp", "box.n", "caught"])
def test_history_since_a_step_and_in_one_frame_equals_the_unpacked_film(film: Path, cache: Path,
                                                                        name: str) -> None:
    with Recording.open(film) as rec, _unpacked(film) as old:
        before = _written(cache)  # the reference copy's own unpacking, not rec's
        span = rec.last_step - rec.first_step
        for since in [rec.first_step + span * k // 13 for k in range(1, 13)] + [rec.store.bases[2]]:
            got = rec.history(name, since=since)
            assert _entries(got[:7]) == _entries(old.history(name, since=since)[:7]), (name, since)
            assert _entries(got) == _entries(old.history(name, since=since)), (name, since)
            assert got.bindings() == old.history(name, since=since).bindings(), (name, since)
        frames = {e.frame for e in old.history(name)}
        for frame in sorted(frames)[:5]:
            assert _entries(rec.history(name, frame=frame)) == _entries(old.history(name, frame=frame)), frame
            mid = rec.first_step + span // 2
            assert _entries(rec.history(name, frame=frame, since=mid)) == \
                _entries(old.history(name, frame=frame, since=mid)), frame
        assert rec._rows_conn is None
        assert _written(cache) == before


def test_history_pages_equal_the_unpacked_film(film: Path, cache: Path) -> None:
    with Recording.open(film) as rec, _unpacked(film) as old:
        before = _written(cache)  # the reference copy's own unpacking, not rec's
        for name in ("total", "out", "box"):
            for limit in (1, 5, 50):
                new_page, new_more = rec.history(name).page(limit)
                old_page, old_more = old.history(name).page(limit)
                assert (_entries(new_page), new_more) == (_entries(old_page), old_more)
            assert _entries(rec.history(name, limit=30)) == _entries(old.history(name, limit=30))
        assert _written(cache) == before


FILTERS = [
    {},
    {"kind": "call"},
    {"kind": "return,exception"},
    {"kind": "call", "function": "helper"},
    {"function": "numbers"},
    {"frame": "worker"},
    {"thread": "MainThread", "kind": "return"},
    {"node": "test_film.py:test_film:34:aug_assign"},
    {"since": 4000, "limit": 100},
    {"since": 9000, "until": 9500, "kind": "line"},
    {"kind": "exception", "limit": 3},
    {"since": 10**9},
    {"until": -5},
    {"since": 6000, "until": 5000},
    {"limit": 0},
]


@pytest.mark.parametrize("filters", FILTERS, ids=[json.dumps(f) for f in FILTERS])
def test_events_equal_the_unpacked_film(film: Path, cache: Path, filters: dict) -> None:
    with Recording.open(film) as rec, _unpacked(film) as old:
        before = _written(cache)  # the reference copy's own unpacking, not rec's
        new = [e.to_json() for e in rec.events(**filters)]
        assert new == [e.to_json() for e in old.events(**filters)]
        last = min(filters.get("until", rec.last_step), rec.last_step)
        empty = filters.get("limit") == 0 or filters.get("since", 0) > last or last < 0
        assert bool(new) != empty
        assert rec._rows_conn is None
        assert _written(cache) == before


def test_events_of_a_frame_number_equal_the_unpacked_film(film: Path, cache: Path) -> None:
    with Recording.open(film) as rec, _unpacked(film) as old:
        before = _written(cache)  # the reference copy's own unpacking, not rec's
        frame = rec.state_at(rec.failure().step).frame.frame
        assert [e.to_json() for e in rec.events(frame=frame, limit=300)] == \
            [e.to_json() for e in old.events(frame=frame, limit=300)]
        gen_frame = old.events(function="numbers", limit=1)[0].frame
        assert [e.to_json() for e in rec.events(frame=gen_frame)] == [e.to_json() for e in old.events(frame=gen_frame)]
        assert _written(cache) == before


def test_flow_and_stats_equal_the_unpacked_film(film: Path, cache: Path) -> None:
    with Recording.open(film) as rec, _unpacked(film) as old:
        before = _written(cache)  # the reference copy's own unpacking, not rec's
        assert rec.flow() == old.flow()
        assert rec.stats() == old.stats()
        assert rec._rows_conn is None
        assert _written(cache) == before


def test_the_cli_answers_without_writing_to_the_cache(film: Path, cache: Path) -> None:
    env = clean_env(ESCOPE_FILM_CACHE=str(cache), TMPDIR=str(cache.parent / "tmp"))
    for argv in (["history", str(film), "total"], ["history", str(film), "out", "--since", "5000", "--json"],
                 ["events", str(film), "--kind", "call", "--function", "helper", "--limit", "5"],
                 ["events", str(film), "--thread", "MainThread", "--since", "3000", "--limit", "20", "--json"],
                 ["flow", str(film)], ["stats", str(film), "--json"]):
        res = subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", *argv], cwd=film.parent,
                             capture_output=True, text=True, env=env, timeout=120)
        assert res.returncode == 0, (argv, res.stderr)
        assert res.stdout.strip(), argv
    assert _written(cache) == set()


def test_a_bad_history_or_events_argument_is_one_line_and_status_2(film: Path, cache: Path) -> None:
    for argv in (["history", str(film), "nosuchname"], ["events", str(film), "--kind", "nosuchkind"],
                 ["events", str(film), "--function", "nosuchfunction"], ["events", str(film), "--frame", "999999"]):
        res = cli(*argv, cwd=film.parent)
        assert res.returncode == 2, (argv, res.stdout, res.stderr)
        assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_a_crafted_chunk_makes_history_and_events_one_line_and_status_2(film: Path, tmp_path: Path) -> None:
    """Bindings whose steps lie outside their chunk, and events naming an
    activation that is nowhere: "corrupt", never a traceback."""
    import shutil
    import sqlite3
    import zlib
    bad = tmp_path / "bad.sqlite"
    shutil.copyfile(film, bad)
    db = sqlite3.connect(bad)
    chunk, data = db.execute("SELECT chunk, data FROM chunks ORDER BY chunk LIMIT 1").fetchone()
    doc = json.loads(zlib.decompress(data))
    doc["bindings"][2][0] += 10_000_000
    doc["events"][1][0] += 10_000_000
    db.execute("UPDATE chunks SET data = ? WHERE chunk = ?",
               (zlib.compress(json.dumps(doc, separators=(",", ":")).encode()), chunk))
    db.commit()
    db.close()
    failed: list[str] = []
    for argv in (["history", str(bad), "total"], ["history", str(bad), "out", "--since", "9000"],
                 ["events", str(bad), "--function", "helper", "--limit", "5"], ["flow", str(bad)],
                 ["stats", str(bad)]):
        res = cli(*argv, cwd=tmp_path)
        assert "Traceback" not in res.stderr, (argv, res.stderr[-2000:])
        if res.returncode == 0:  # rows moved out of every window read are simply not seen
            assert res.stdout.strip(), argv
            continue
        assert res.returncode == 2, (argv, res.stdout[-500:], res.stderr[-2000:])
        assert len(res.stderr.strip().splitlines()) == 1, (argv, res.stderr)
        assert "corrupt" in res.stderr or "missing" in res.stderr, (argv, res.stderr)
        failed.append(argv[0])
    assert "events" in failed, failed  # the activation its events name is nowhere


@pytest.mark.parametrize("max_steps", [100_000, 3_000, 700])
def test_the_html_film_data_equals_the_unpacked_film(film: Path, cache: Path, max_steps: int) -> None:
    from pytest_escope.replay.film import film_data
    with Recording.open(film) as rec, _unpacked(film) as old:
        before = _written(cache)
        assert film_data(rec, max_steps=max_steps) == film_data(old, max_steps=max_steps)
        assert rec._rows_conn is None
        assert _written(cache) == before


def test_escope_export_html_writes_the_page_and_nothing_else(film: Path, cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "page" / "film.html"
    env = clean_env(ESCOPE_FILM_CACHE=str(cache), TMPDIR=str(cache.parent / "tmp"))
    res = subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", "export", str(film), "--html", "-o",
                          str(out), "--max-steps", "2000"], cwd=film.parent, capture_output=True, text=True,
                         env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert out.stat().st_size > 10_000 and "test_film" in out.read_text()
    assert _written(cache) == {str(out)}


def test_a_schema_2_recording_still_answers_through_its_unpacked_rows(film: Path, cache: Path,
                                                                     tmp_path: Path) -> None:
    """Older files keep the old path: unpacked once, then read as rows, with
    the answers the chunks give for the same film."""
    import shutil
    import sqlite3
    old = tmp_path / "v2.sqlite"
    shutil.copyfile(film, old)
    db = sqlite3.connect(old)
    db.execute("DROP TABLE keyframes")
    db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with Recording.open(film) as rec, Recording.open(old) as v2:
        assert v2.store is None and v2.film_rows() is None
        for name in ("total", "out", "box.n"):
            assert _entries(v2.history(name)) == _entries(rec.history(name)), name
            assert _entries(v2.history(name, since=7000)[:20]) == _entries(rec.history(name, since=7000)[:20])
        assert [e.to_json() for e in v2.events(kind="call", limit=50)] == \
            [e.to_json() for e in rec.events(kind="call", limit=50)]
        assert v2.flow() == rec.flow()
        assert {k: v for k, v in v2.stats().items() if k not in ("path", "bytes", "bytes_per_event")} == \
            {k: v for k, v in rec.stats().items() if k not in ("path", "bytes", "bytes_per_event")}
        assert rec._rows_conn is None
    assert _written(cache)  # the schema-2 film was unpacked
