"""Load: 10,000 small tests, and one test with 10,000,000 line events, both
recorded to the end with memory bounded by the buffer settings
(docs/reliability.md, "Load"; figures in docs/performance.md, "## Load").

Slow (minutes): run with ESCOPE_LOAD_TESTS=1.  Peak RSS is measured for
each inner session on its own (a fresh parent process reads
``RUSAGE_CHILDREN``), with and without escope; figures are printed, and
appended as JSON lines to $ESCOPE_LOAD_REPORT when it is set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import Project
from reliability import cli_json, count, meta, quiet_env, summary

pytestmark = pytest.mark.skipif(os.environ.get("ESCOPE_LOAD_TESTS") != "1",
                                reason="load tests take minutes; run with ESCOPE_LOAD_TESTS=1")

MEASURE = r'''
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": proc.returncode, "wall_s": wall, "peak_rss_kb": rss,
                  "stdout": proc.stdout[-20000:], "stderr": proc.stderr[-5000:]}))
'''


def measured(project: Project, *args: str, timeout: float = 3600) -> dict:
    cmd = [sys.executable, "-c", MEASURE, sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    res = subprocess.run(cmd, cwd=project.path, capture_output=True, text=True, env=quiet_env(), timeout=timeout)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


def report(name: str, **figures: object) -> None:
    line = json.dumps({"case": name, "python": sys.version.split()[0], **figures})
    print(line)
    out = os.environ.get("ESCOPE_LOAD_REPORT")
    if out:
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


MANY = '''
import pytest


def square(i):
    return i * i


@pytest.mark.parametrize("i", range(10_000))
def test_small(i):
    v = square(i)
    assert v >= 0 and (i % 2500 != 7 or v < 0)
'''


def test_ten_thousand_small_tests(project: Project) -> None:
    project.write("test_many.py", MANY)
    plain = measured(project, "-q")
    rec = measured(project, "-q", "--escope")
    assert plain["rc"] == rec["rc"] == 1
    assert summary("= " + plain["stdout"].splitlines()[-1] + " =") == \
        summary("= " + rec["stdout"].splitlines()[-1] + " =") == "4 failed, 9996 passed"
    run = project.latest()
    tests = run.tests()
    assert len(tests) == 10_000
    assert sum(1 for r in tests.values() if r["outcome"] == "failed") == 4
    assert all(r["outcome"] in ("passed", "failed") for r in tests.values())
    kept = list((run.path / "tests").iterdir())
    assert len(kept) == 4 and all(meta(p)["complete"] == "1" for p in kept)
    report("10k small tests", plain_s=round(plain["wall_s"], 1), escope_s=round(rec["wall_s"], 1),
           plain_rss_mb=plain["peak_rss_kb"] // 1024, escope_rss_mb=rec["peak_rss_kb"] // 1024,
           index_kb=run.index_path.stat().st_size // 1024)
    # memory: the index rows go to disk, nothing per test stays in memory
    assert rec["peak_rss_kb"] < plain["peak_rss_kb"] + 150 * 1024


LONG = '''
def test_long():
    k = 0
    for i in range(5_000_000):
        k += i
    assert k < 0
'''


def test_ten_million_line_events(project: Project) -> None:
    project.write("test_long.py", LONG)
    plain = measured(project, "-q")
    rec = measured(project, "-q", "--escope")
    assert plain["rc"] == rec["rc"] == 1, rec["stderr"]
    path = project.latest().recording("test_long").path
    m = meta(path)
    assert m["complete"] == "1" and int(m["event_count"]) >= 10_000_000
    assert count(path, "events") == int(m["event_count"])
    stats = cli_json("stats", str(path), cwd=project.path)
    assert stats["complete"] is True
    state = cli_json("replay", str(path), cwd=project.path)
    assert state["stack"][-1]["function"] == "test_long"
    size = path.stat().st_size
    capped_dir = project.path.parent / "capped"
    capped = measured(project, "-q", "--escope", f"--escope-dir={capped_dir}", "--escope-max-events=100000")
    assert capped["rc"] == 1
    (cpath,) = capped_dir.glob("runs/*/tests/*.sqlite")
    cm = meta(cpath)
    assert count(cpath, "events") <= 100_000
    assert int(cm["dropped_events"]) == int(cm["event_count"]) - 100_000
    assert cli_json("replay", str(cpath), cwd=project.path)["stack"][-1]["function"] == "test_long"
    report("10M line events", events=int(m["event_count"]), plain_s=round(plain["wall_s"], 1),
           escope_s=round(rec["wall_s"], 1), capped_s=round(capped["wall_s"], 1),
           plain_rss_mb=plain["peak_rss_kb"] // 1024, escope_rss_mb=rec["peak_rss_kb"] // 1024,
           capped_rss_mb=capped["peak_rss_kb"] // 1024, file_mb=size // (1 << 20),
           capped_file_mb=cpath.stat().st_size // (1 << 20))
    # memory is bounded by the buffers (100,000 events in memory, 4 chunks
    # queued), not by the 10M events of the film
    assert rec["peak_rss_kb"] < plain["peak_rss_kb"] + 600 * 1024
    assert capped["peak_rss_kb"] < plain["peak_rss_kb"] + 600 * 1024
