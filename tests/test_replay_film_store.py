"""A recording of schema 3 is replayed where it lies: the state at a step
and every motion come from the chunk holding the step and its key frame,
with the same answers as the unpacked film (docs/recording-format.md,
"keyframes"; docs/replay.md)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from pytest_escope.recorder import collector, schema
from pytest_escope.replay import navigation as nav
from pytest_escope.replay.opening import open_recording
from pytest_escope.replay.recording import Recording

from conftest import Project
from reliability import cli, quiet_env

PROGRAM = '''
import threading


def numbers(n):
    seen = []
    for i in range(n):
        seen.append(i)
        yield len(seen)


def helper(i, box):
    box["n"] = i
    if i % 97 == 0:
        try:
            raise ValueError(i)
        except ValueError as exc:
            caught = exc
    return i * 2


def worker(out):
    for k in range(300):
        out.append(k)


def test_film():
    gen = numbers(10_000)
    box = dict()
    total = 0
    out = []
    thread = threading.Thread(target=worker, args=(out,))
    thread.start()
    for i in range({n}):
        total += helper(i, box) + next(gen)
        temp = i
        del temp
    thread.join()
    assert total < 0
'''


@pytest.fixture(scope="module")
def film(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A failing test of some 15,000 events: several chunks, a generator
    suspended across them, a second thread, exceptions caught and one not."""
    project = Project(tmp_path_factory.mktemp("film") / "proj")
    project.write("test_film.py", PROGRAM.replace("{n}", "900"))
    res = project.run("--escope", env=quiet_env())
    assert res.returncode == 1, res.out[-2000:]
    run = project.latest()
    return run.path / run.tests()["test_film.py::test_film"]["recording"]


def _unpacked(path: Path) -> Recording:
    conn, meta = open_recording(path)
    return Recording(conn, meta, path)


def _sample(rec: Recording) -> list[int]:
    """Every 5th step, and the steps on both sides of each chunk boundary."""
    assert rec.store is not None
    steps = set(range(rec.first_step, rec.last_step + 1, 5))
    for base in rec.store.bases:
        steps.update(s for s in range(base - 2, base + 3) if rec.first_step <= s <= rec.last_step)
    return sorted(steps)


def test_the_film_is_several_chunks_each_with_its_key_frame(film: Path) -> None:
    db = sqlite3.connect(f"file:{film}?mode=ro", uri=True)
    try:
        chunks = db.execute("SELECT chunk, steps FROM chunks ORDER BY chunk").fetchall()
        frames = db.execute("SELECT chunk FROM keyframes ORDER BY chunk").fetchall()
        version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    finally:
        db.close()
    assert version == ("3",)
    assert len(chunks) >= 4  # the test thread's chunks hold at most FLUSHED_CHUNK events
    assert [c for c, _ in chunks] == [c for (c,) in frames]
    assert max(steps for _, steps in chunks) <= max(2 * schema.CHUNK_STEPS, collector.FLUSHED_CHUNK)


def test_state_and_motions_read_from_the_chunks_match_the_unpacked_film(film: Path) -> None:
    with Recording.open(film) as rec, _unpacked(film) as old:
        assert rec.store is not None and old.store is None
        assert (rec.first_step, rec.last_step) == (old.first_step, old.last_step)
        assert rec.failure() == old.failure()
        for step in _sample(rec):
            assert rec.state_at(step).to_json() == old.state_at(step).to_json(), step
            for forward in (True, False):
                assert nav.over(rec, step, forward) == nav.over(old, step, forward), (step, forward)
                assert nav.thread_step(rec, step, forward) == nav.thread_step(old, step, forward), (step, forward)
            assert nav.to_return(rec, step) == nav.to_return(old, step), step
            assert nav.to_call(rec, step) == nav.to_call(old, step), step
        # all of it without an unpacked copy
        assert rec._rows_conn is None


def test_a_generator_resumed_chunks_later_shows_all_its_locals(film: Path) -> None:
    with Recording.open(film) as rec:
        code = next(c for c, v in rec.codes.items() if v[1] == "numbers")
        late = [s for s in range(rec.last_step - 3 * schema.CHUNK_STEPS, rec.last_step)
                if rec.act(rec.event_row(s)[1]).code == code and rec.event_row(s)[0] == schema.LINE]
        assert late
        frame = rec.state_at(late[-1]).frame
        assert frame.function == "numbers"
        assert set(frame.locals) >= {"n", "seen", "i"}
        assert frame.locals["n"].repr == "10000"


def test_a_schema_2_recording_is_unpacked_and_replays_the_same(film: Path, tmp_path: Path) -> None:
    old = tmp_path / "v2.sqlite"
    shutil.copyfile(film, old)
    db = sqlite3.connect(old)
    db.execute("DROP TABLE keyframes")
    db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with Recording.open(film) as rec, Recording.open(old) as v2:
        assert v2.store is None
        for step in range(rec.first_step, rec.last_step + 1, 97):
            assert rec.state_at(step).to_json() == v2.state_at(step).to_json(), step


def test_history_and_events_still_answer_through_the_rows(film: Path) -> None:
    with Recording.open(film) as rec, _unpacked(film) as old:
        assert [(v.step, v.value.repr) for v in rec.history("total")[:20]] == \
            [(v.step, v.value.repr) for v in old.history("total")[:20]]
        assert [e.step for e in rec.events(kind="exception")] == [e.step for e in old.events(kind="exception")]


def test_the_cli_prints_the_failure_state_from_the_chunks(film: Path) -> None:
    res = cli("replay", str(film), "--print", cwd=film.parent)
    assert res.returncode == 0, res.stderr
    assert "test_film" in res.stdout and "AssertionError" in res.stdout


@pytest.mark.parametrize("column, value", [("data", b"\x00not zlib"), ("act_ends", "[[1]"),
                                           ("first_act", "many")])
def test_a_damaged_key_frame_is_one_line_and_status_2(film: Path, tmp_path: Path, column: str,
                                                        value: object) -> None:
    bad = tmp_path / "bad.sqlite"
    shutil.copyfile(film, bad)
    db = sqlite3.connect(bad)
    db.execute(f"UPDATE keyframes SET {column} = ?", (value,))
    db.commit()
    db.close()
    res = cli("replay", str(bad), "--step", "3000", "--print", cwd=tmp_path)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "corrupt" in res.stderr


def test_breakpoints_and_watches_read_from_the_chunks_match_the_unpacked_film(film: Path) -> None:
    with Recording.open(film) as rec, _unpacked(film) as old:
        test_code = next(c for c, v in rec.codes.items() if v[1] == "test_film")
        frame = rec.state_at(rec.failure().step).frame.frame
        total_line = next(i + 1 for i, text in enumerate(rec.source_lines(test_code)) if "total +=" in text)
        starts = list(range(rec.first_step, rec.last_step, 1_013))
        for spec, watch in (("helper", "total"), (str(total_line), "box"), ("helper, i == 500", "out")):
            bps = [nav.make_breakpoint(rec, 1, spec, test_code)]
            old_bps = [nav.make_breakpoint(old, 1, spec, test_code)]
            new_w = nav.make_watch(rec, watch, frame, "test_film")
            old_w = nav.make_watch(old, watch, frame, "test_film")
            for step in starts:
                for forward in (True, False):
                    hit, old_hit = nav.breakpoint_hit(rec, bps, step, forward), nav.breakpoint_hit(old, old_bps, step,
                                                                                                forward)
                    assert (hit and hit[0]) == (old_hit and old_hit[0]), (spec, step, forward)
                    assert nav.watch_change(rec, new_w, step, forward) == nav.watch_change(old, old_w, step, forward)
            assert nav.nearest_line_steps(rec, frozenset({test_code}), total_line, starts[3]) == \
                nav.nearest_line_steps(old, frozenset({test_code}), total_line, starts[3])
        assert rec._rows_conn is None
