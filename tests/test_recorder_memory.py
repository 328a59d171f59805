"""Memory: a long test's film never piles up in memory.  The collector hands
chunks of at most 100,000 events, or of snapshots of at most 8 M characters,
to the writer, which takes one at a time; the writer remembers a bounded
number of distinct scalars.  A test of a few million events, or one that
changes a big object at every step, peaks within 256 MB of the same test run
plainly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import INNER_ADDOPTS, Project, clean_env

#: CALLS calls: 2 events each under minimal, 6 under balanced
PROGRAM = '''
def step(i, acc):
    acc = acc + i * 3
    return acc


def test_long():
    acc = 0
    for i in range({calls}):
        acc = step(i, acc)
    assert acc > 0
'''

#: an object of 40 shown entries changed twice an iteration: two snapshots
#: of about 3,000 characters each (text and detail), 7 events an iteration
BIG_OBJECT = '''
class Board:
    def __init__(self):
        self.cells = {{"cell%03d" % i: "x" * 20 for i in range(40)}}
        self.turn = 0

    def play(self, i):
        self.turn = i
        self.cells["cell%03d" % (i % 40)] = "y%019d" % i


def test_long():
    board = Board()
    for i in range({plays}):
        board.play(i)
    assert board.turn == {plays} - 1
'''

BOUND_KB = 256 * 1024


def _peak_kb(project: Project, *args: str) -> int:
    """Peak RSS of one pytest process, from the kernel's own count."""
    script = (
        "import resource, subprocess, sys\n"
        "proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "print(proc.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-2000:])\n"
    )
    cmd = [sys.executable, "-c", script, sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
           *INNER_ADDOPTS.split(), "-q", *args]
    res = subprocess.run(cmd, cwd=project.path, env=clean_env(), capture_output=True, text=True, timeout=900)
    code, peak = res.stdout.split()
    assert code == "0", res.stderr
    return int(peak)


def _events(project: Project) -> int:
    rec = project.latest().recording("test_long")
    try:
        return int(rec.meta["event_count"])
    finally:
        rec.close()


def test_a_long_test_peaks_within_the_documented_bound(tmp_path: Path) -> None:
    """1.8 M events, six times what the collector and the writer may hold
    at once (more than the whole film was once held in memory)."""
    project = Project(tmp_path / "proj")
    project.write("test_long.py", PROGRAM.format(calls=300_000))
    plain = _peak_kb(project)
    recorded = _peak_kb(project, "--escope", "--escope-keep=all")
    assert recorded - plain <= BOUND_KB, f"plain {plain} kB, recorded {recorded} kB"
    assert _events(project) > 1_500_000


def test_big_snapshots_at_every_step_peak_within_the_bound(tmp_path: Path) -> None:
    """80,000 plays: about 160,000 snapshots, 480 M characters of text and
    detail, in 480,000 events (a chunk by event count alone would hold
    100 M characters, and the writer holds a few copies while packing)."""
    project = Project(tmp_path / "proj")
    project.write("test_long.py", BIG_OBJECT.format(plays=80_000))
    plain = _peak_kb(project)
    recorded = _peak_kb(project, "--escope", "--escope-keep=all")
    assert recorded - plain <= BOUND_KB, f"plain {plain} kB, recorded {recorded} kB"
    assert _events(project) > 450_000
