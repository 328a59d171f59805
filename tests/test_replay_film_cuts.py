"""A film read where it lies gives the same answers however the recorder cut
its spills: chunks of 1, 7 or 2,500 events, each written with its key frame,
read the same as the unpacked film at every step (a thread that hands the
writer whatever the test filmed so far cuts chunks of any size at any
time; docs/recording-format.md, "keyframes")."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pytest_escope.recorder import schema
from pytest_escope.replay import navigation as nav
from pytest_escope.replay.recording import Recording

from conftest import Project
from reliability import quiet_env
from test_replay_film_store import PROGRAM, _unpacked

#: Makes the collector spill after each of these many events in turn, so
#: the writer gets chunks cut at sizes nothing else chooses (counted in
#: events, never in time).
CUTS = '''
import itertools

from pytest_escope.recorder import collector

SIZES = itertools.cycle([{sizes}])
_init = collector.Collector.__init__
_serve = collector.Collector.serve


def _init_cut(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    self.hot_limit = 1
    self.spill_limit = next(SIZES)
    self.spill_every_ns = self.spill_at = 1 << 62


def _serve_cut(self):
    # the flusher thread takes the chunks: the next cut once it took one
    base = self.base
    _serve(self)
    if self.base != base:
        self.spill_limit = next(SIZES)


def _no_timed_flush(self):
    return False  # chunks cut by events only, never by the 25 ms flush


collector.Collector.__init__ = _init_cut
collector.Collector.serve = _serve_cut
collector.Collector.flush = _no_timed_flush
'''


def _record(project: Project, sizes: str, iterations: int, pure: bool) -> Path:
    project.write("conftest.py", CUTS.replace("{sizes}", sizes))
    project.write("test_film.py", PROGRAM.replace("{n}", str(iterations)))
    env = quiet_env(ESCOPE_PURE_PYTHON="1") if pure else quiet_env()
    res = project.run("--escope", env=env)
    assert res.returncode == 1, res.out[-2000:]
    run = project.latest()
    return run.path / run.tests()["test_film.py::test_film"]["recording"]


def _chunk_sizes(path: Path) -> list[int]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        sizes = [n for (n,) in db.execute("SELECT steps FROM chunks ORDER BY chunk")]
        keyframes = [n for (n,) in db.execute("SELECT steps FROM keyframes ORDER BY chunk")]
    finally:
        db.close()
    assert sizes == keyframes  # every written chunk has its key frame
    return sizes


@pytest.mark.parametrize("sizes, iterations, pure", [
    ("7, 1, 64, 3, 2500, 90, 300, 11", 150, False),
    ("7, 1, 64, 3, 2500, 90, 300, 11", 150, True),
    ("1, 1, 2, 1, 5", 25, False),
], ids=["mixed", "mixed-python-writer", "tiny"])
def test_chunks_cut_at_any_size_read_as_the_unpacked_film(tmp_path: Path, sizes: str, iterations: int,
                                                           pure: bool) -> None:
    path = _record(Project(tmp_path / "proj"), sizes, iterations, pure)
    chunk_sizes = _chunk_sizes(path)
    # the flusher thread's own filmed steps (the patch above is in scope) join some cuts
    assert min(chunk_sizes) <= 7 and len(chunk_sizes) > 5
    assert max(chunk_sizes) < 2 * schema.CHUNK_STEPS  # whole segments: a 2,500 spill is two chunks
    with Recording.open(path) as rec, _unpacked(path) as old:
        assert rec.store is not None and old.store is None
        assert (rec.first_step, rec.last_step) == (old.first_step, old.last_step)
        assert rec.last_step - rec.first_step + 1 == sum(chunk_sizes)
        assert rec.failure() == old.failure()
        for step in range(rec.first_step, rec.last_step + 1):
            assert rec.state_at(step).to_json() == old.state_at(step).to_json(), step
            for forward in (True, False):
                assert nav.over(rec, step, forward) == nav.over(old, step, forward), (step, forward)
            assert nav.to_return(rec, step) == nav.to_return(old, step), step
            assert nav.to_call(rec, step) == nav.to_call(old, step), step
        assert rec._rows_conn is None
