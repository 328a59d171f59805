"""``RunSession`` (recorder/run_session.py) without pytest: the facade the
plugin and ``escope run`` share, driven by a plain Python process that
films a real function into a real run, as a front end would.  The files it
leaves are read back with the stdlib ``sqlite3``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import Rec, Run, clean_env, open_ro
from pytest_escope.recorder.git import git_commit

WORK = '''
def settle(amounts):
    balance = 0
    for a in amounts:
        balance += a
    if balance < 0:
        raise ValueError(f"overdrawn by {-balance}")
    return balance
'''

FRONT_END = '''
import json, os, sys
from pathlib import Path
from pytest_escope.recorder.config import RecorderConfig
from pytest_escope.recorder.run_session import RunSession
from pytest_escope.recorder.session import default_backend

root = Path.cwd()
escope_dir = root / ".escope"
if sys.argv[1] == "start":
    session = RunSession.start(escope_dir, args="front-end start", rootdir=root, git_commit="abc123",
                               strategy="balanced")
else:
    session = RunSession.join(escope_dir, sys.argv[2])
worker = sys.argv[3]
# xdist gives each test to one worker: a joining worker's tests have ids of their own
suffix = "" if worker == "main" else f"[{worker}]"


def start(name):
    return session.start_test("work::" + name + suffix, worker=worker, attempt=0, keep_in_memory=True,
                              config=None, custom=None)


session.open_recorder(RecorderConfig(rootdir=root, backend=default_backend(), extra_excluded_dirs=(escope_dir,)))
sys.path.insert(0, str(root))
import work

out = {"run_id": session.run_id}
rec = start("settle")
rec.collector.phase("call", True)
exc = None
try:
    work.settle([10, -30, 5])
except ValueError as e:
    exc = e
rec.stop()
rec.collector.phase("call", False, "failed", 1)
done = session.finish_test(rec, keep=True, outcome="failed", failure="ValueError: overdrawn by 15",
                           failure_step=rec.collector.failure_step(exc), phases={"call": "failed"})
session.index_test("work::settle" + suffix, worker=worker, outcome="failed", phases={"call": "failed"}, duration_ns=1,
                   done=done, dropped=0, failure="ValueError: overdrawn by 15", started_ns=rec.started_ns)
out["settle"] = {"events": done.events, "size": done.size, "recording": done.recording}

rec = start("passes")
work.settle([1, 2])
rec.stop()
done = session.finish_test(rec, keep=False, outcome="passed", failure="", failure_step=None,
                           phases={"call": "passed"})
session.index_test("work::passes" + suffix, worker=worker, outcome="passed", phases={"call": "passed"}, duration_ns=1,
                   done=done, dropped=0, failure=None, started_ns=rec.started_ns)
out["passes"] = {"events": done.events, "size": done.size, "recording": done.recording}

# a test whose process "dies" inside it: its row stays running until the run is settled
rec = start("dies")
rec.stop()
rec.discard()
out["bytes_used"] = session.bytes_used()
if sys.argv[1] == "start":
    session.close_recorder()
    session.settle_running()
    session.finish({"exitstatus": "1"})
session.close()
print(json.dumps(out))
'''


def _front_end(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", FRONT_END, *args], cwd=root, env=clean_env(**env),
                          capture_output=True, text=True, timeout=300)


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "work.py").write_text(textwrap.dedent(WORK).lstrip(), encoding="utf-8")
    return root


def test_a_front_end_films_a_run_through_the_facade(tmp_path: Path) -> None:
    root = _project(tmp_path)
    res = _front_end(root, "start", "", "main")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    run = Run(root / ".escope" / "runs" / out["run_id"])
    assert (root / ".escope" / "latest").read_text().strip() == out["run_id"]
    facts = run.facts()
    assert facts["run_id"] == out["run_id"] and facts["args"] == "front-end start"
    assert facts["rootdir"] == str(root) and facts["git_commit"] == "abc123" and facts["strategy"] == "balanced"
    assert facts["exitstatus"] == "1" and int(facts["finished_unix_ns"]) >= int(facts["started_unix_ns"])
    rows = run.tests()
    assert {tid: r["outcome"] for tid, r in rows.items()} == {
        "work::settle": "failed", "work::passes": "passed", "work::dies": "crashed"}
    failed = rows["work::settle"]
    assert failed["recording"] == out["settle"]["recording"] and failed["events"] == out["settle"]["events"] > 0
    path = run.path / failed["recording"]
    assert failed["bytes"] == out["settle"]["size"] == path.stat().st_size
    assert out["bytes_used"] == failed["bytes"]
    assert failed["call"] == "failed" and failed["failure"] == "ValueError: overdrawn by 15"
    rec = Rec(path)
    assert rec.meta["test_id"] == "work::settle" and rec.meta["run_id"] == out["run_id"]
    assert rec.meta["worker"] == "main" and rec.meta["kind"] == "test" and rec.meta["outcome"] == "failed"
    assert rec.history("balance", "settle")[-1] == "-15"
    # a passing test under keep=failed leaves a row and no file
    assert rows["work::passes"]["recording"] is None and out["passes"]["recording"] is None
    assert out["passes"]["events"] > 0 and rows["work::passes"]["bytes"] == 0
    assert sorted(p.name for p in (run.path / "tests").iterdir()) == [Path(failed["recording"]).name]


def test_a_joined_run_gets_the_worker_rows(tmp_path: Path) -> None:
    root = _project(tmp_path)
    first = json.loads(_front_end(root, "start", "", "main").stdout)
    res = _front_end(root, "join", first["run_id"], "gw1")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["run_id"] == first["run_id"]
    run = Run(root / ".escope" / "runs" / first["run_id"])
    db = open_ro(run.index_path)  # Run.tests() keys rows by test id alone: read every worker's
    try:
        rows = set(db.execute("SELECT test_id, worker, outcome FROM tests"))
    finally:
        db.close()
    assert ("work::settle[gw1]", "gw1", "failed") in rows and ("work::settle", "main", "failed") in rows
    # the joining process does not settle the run: its unfinished test stays running
    assert ("work::dies[gw1]", "gw1", "running") in rows and ("work::dies", "main", "crashed") in rows
    assert len(list((run.path / "tests").iterdir())) == 2  # one kept recording per worker
    assert (root / ".escope" / "latest").read_text().strip() == first["run_id"]


def test_a_start_that_fails_leaves_no_row_and_no_file(tmp_path: Path) -> None:
    root = _project(tmp_path)
    res = _front_end(root, "start", "", "main", ESCOPE_TEST_FAULT="start")
    assert res.returncode != 0 and "injected" in res.stderr.lower()
    run_dirs = list((root / ".escope" / "runs").iterdir())
    assert len(run_dirs) == 1
    run = Run(run_dirs[0])
    assert run.tests() == {} and list((run.path / "tests").iterdir()) == []


def test_git_commit_reads_a_branch_a_packed_ref_and_a_detached_head(tmp_path: Path) -> None:
    assert git_commit(tmp_path) == ""  # no .git
    git = tmp_path / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    assert git_commit(tmp_path) == ""  # a branch with no commit yet
    (git / "packed-refs").write_text("# pack-refs with: peeled\n" + "b" * 40 + " refs/heads/main\n")
    assert git_commit(tmp_path) == "b" * 40
    (git / "refs" / "heads" / "main").write_text("a" * 40 + "\n")
    assert git_commit(tmp_path) == "a" * 40  # a loose ref wins over the packed one
    (git / "HEAD").write_text("c" * 40 + "\n")
    assert git_commit(tmp_path) == "c" * 40
