"""The ``escope`` command line on real recordings: every command, the TEST
rule, the interactive session driven through real stdin, JSON shapes,
80 columns, colour, and ``escope run``."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_escope.replay import JSON_SCHEMA_VERSION

from conftest import Project, clean_env

SUITE = '''
class Invoice:
    def __init__(self, days):
        self.days = days
        self.fees = []

    def late_fee(self):
        fee = 0
        for day in range(self.days):
            if day > 2:
                fee += 5
                self.fees.append(fee)
        return fee


def test_late_fee():
    inv = Invoice(6)
    total = inv.late_fee()
    token = "s3cr3t"
    assert total == 20


def test_ok():
    inv = Invoice(1)
    assert inv.late_fee() == 0


def test_ok_again():
    assert Invoice(0).late_fee() == 0
'''

ANSI = re.compile(r"\x1b\[")


def escope(*args: str, cwd: Path, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", *args], cwd=cwd, input=stdin,
                          capture_output=True, text=True, env=env or clean_env(), timeout=120)


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = Project(tmp_path_factory.mktemp("cli") / "proj")
    project.write("test_invoice.py", SUITE)
    res = project.run("--escope", "--escope-keep=all")
    assert "1 failed, 2 passed" in res.stdout, res.out
    return project


def recording(proj: Project, part: str = "test_late_fee") -> Path:
    return next(proj.escope_dir.glob(f"runs/*/tests/*{part}-*.sqlite"))


def as_json(res: subprocess.CompletedProcess) -> Any:
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def assert_fits(text: str) -> None:
    for line in text.splitlines():
        assert len(line) <= 80, line


def test_list_shows_tests_outcomes_and_recordings(proj: Project) -> None:
    res = escope("list", cwd=proj.path)
    assert res.returncode == 0, res.stderr
    assert "failed   test_invoice.py::test_late_fee" in res.stdout
    assert "passed   test_invoice.py::test_ok" in res.stdout
    assert "tests/test_invoice.py_test_late_fee-" in res.stdout
    assert "escope replay test_invoice.py::test_late_fee" in res.stdout.splitlines()[-1]
    assert_fits(res.stdout)
    data = as_json(escope("list", "--failed", "--json", cwd=proj.path))
    assert data["schema_version"] == JSON_SCHEMA_VERSION == 2
    (run,) = data["runs"]
    assert [t["test"] for t in run["tests"]] == ["test_invoice.py::test_late_fee"]
    assert Path(run["tests"][0]["recording"]).is_file()


def test_replay_json_at_failure_is_the_default(proj: Project) -> None:
    data = as_json(escope("replay", "--json", cwd=proj.path))
    assert data["test"] == "test_invoice.py::test_late_fee"
    assert data["kind"] == "exception"
    assert data["exception"]["type"] == "AssertionError" and data["exception"]["step"] == data["step"]
    frame = data["stack"][-1]
    assert frame["function"] == "test_late_fee" and frame["node"] == "test_invoice.py:test_late_fee:19:assert"
    assert frame["locals"]["total"] == {"type": "int", "repr": "15"}
    assert frame["locals"]["token"] == {"type": "str", "repr": "<redacted>", "redacted": True}
    assert frame["locals"]["inv"]["fields"]["fees"]["repr"] == "[5, 10, 15]"
    same = as_json(escope("replay", "test_late_fee", "--at-failure", "--json", cwd=proj.path))
    assert same == data


def test_replay_step_at_and_at_time(proj: Project) -> None:
    at = as_json(escope("replay", "test_late_fee", "--at", "Invoice.late_fee:10:aug_assign", "--json",
                        cwd=proj.path))
    assert at["node"] == "test_invoice.py:Invoice.late_fee:10:aug_assign"
    assert [f["function"] for f in at["stack"]] == ["test_late_fee", "Invoice.late_fee"]
    assert at["stack"][-1]["locals"]["fee"]["repr"] == "0" and at["stack"][-1]["locals"]["day"]["repr"] == "3"
    step = as_json(escope("replay", "test_late_fee", "--step", str(at["step"]), "--json", cwd=proj.path))
    assert step == at
    timed = as_json(escope("replay", "test_late_fee", "--at-time", str(at["time_ns"]), "--json", cwd=proj.path))
    # the last step recorded at or before that time: times are kept to the
    # microsecond, so the steps after it may share it
    assert timed["time_ns"] == at["time_ns"] and timed["step"] >= at["step"]
    after = as_json(escope("replay", "test_late_fee", "--step", str(timed["step"] + 1), "--json", cwd=proj.path))
    assert after["time_ns"] > at["time_ns"]
    before = as_json(escope("replay", "test_late_fee", "--at-time", str(at["time_ns"] - 1), "--json", cwd=proj.path))
    assert before["step"] < at["step"] and before["time_ns"] < at["time_ns"]


def test_events_filters_combine(proj: Project) -> None:
    evs = as_json(escope("events", "test_late_fee", "--kind", "call,return", "--frame", "Invoice.late_fee",
                         "--json", cwd=proj.path))
    assert [e["kind"] for e in evs] == ["call", "return"]
    assert evs[0]["args"]["self"]["type"] == "Invoice" and evs[1]["value"] == {"type": "int", "repr": "15"}
    for key in ("step", "time_ns", "kind", "thread", "task", "function", "file", "line", "node"):
        assert key in evs[0]
    lines = as_json(escope("events", "test_late_fee", "--node", "late_fee:10:aug_assign", "--json", cwd=proj.path))
    assert len(lines) == 3 and {e["line"] for e in lines} == {10}
    window = as_json(escope("events", "test_late_fee", "--node", "late_fee:10:aug_assign", "--since",
                            str(lines[1]["step"]), "--until", str(lines[2]["step"]), "--limit", "1",
                            "--thread", "MainThread", "--json", cwd=proj.path))
    assert [e["step"] for e in window] == [lines[1]["step"]]
    text = escope("events", "test_late_fee", "--kind", "line", "--limit", "5", cwd=proj.path)
    assert text.returncode == 0 and len(text.stdout.splitlines()) == 7  # the hint is wider than 80: two lines
    assert text.stdout.splitlines()[-2:] == [
        "more:", f"  escope events test_invoice.py::test_late_fee --kind line --limit 5 --since "
                 f"{int(text.stdout.splitlines()[4].split()[0]) + 1}"]
    assert_fits(text.stdout)


def test_history_of_a_local_and_a_path(proj: Project) -> None:
    hist = as_json(escope("history", "test_late_fee", "fee", "--json", cwd=proj.path))
    assert [h["value"]["repr"] for h in hist] == ["0", "5", "10", "15"]
    assert hist[1]["node"] == "test_invoice.py:Invoice.late_fee:10:aug_assign"
    assert hist[1]["function"] == "Invoice.late_fee"
    fees = as_json(escope("history", "test_late_fee", "inv.fees", "--json", cwd=proj.path))
    assert [h["value"]["repr"] for h in fees] == ["[]", "[5]", "[5, 10]", "[5, 10, 15]"]
    assert {h["function"] for h in fees} == {"test_late_fee"}
    text = escope("history", "fee", cwd=proj.path)  # TEST omitted: the failed test
    assert text.returncode == 0 and "4 values" in text.stdout
    assert_fits(text.stdout)


def test_flow_and_stats(proj: Project) -> None:
    flow = as_json(escope("flow", "test_late_fee", "--json", cwd=proj.path))
    edges = {(e["caller"], e["callee"]): e["calls"] for e in flow["calls"]}
    assert edges[("test_late_fee", "Invoice.late_fee")] == 1
    assert edges[("test_late_fee", "Invoice.__init__")] == 1
    assert flow["threads"][0]["thread"] == "MainThread"
    stats = as_json(escope("stats", "test_late_fee", "--json", cwd=proj.path))
    assert stats["node_share"] == 1.0 and stats["events"] == stats["last_step"] + 1
    assert stats["kinds"]["call"] == 3 and stats["dropped_events"] == 0 and stats["bytes_per_event"] > 0
    for cmd in ("flow", "stats"):
        res = escope(cmd, "test_late_fee", cwd=proj.path)
        assert res.returncode == 0 and "escope " in res.stdout.splitlines()[-1]
        assert_fits(res.stdout)


def test_test_resolution(proj: Project) -> None:
    path = recording(proj)
    by_path = as_json(escope("replay", str(path), "--json", cwd=proj.path))
    by_id = as_json(escope("replay", "test_invoice.py::test_late_fee", "--json", cwd=proj.path))
    assert by_path == by_id
    amb = escope("stats", "test_ok", cwd=proj.path)
    assert amb.returncode == 2
    assert "matches 2 tests" in amb.stderr
    assert "  test_invoice.py::test_ok\n" in amb.stderr and "  test_invoice.py::test_ok_again\n" in amb.stderr
    run_dir = path.parent.parent
    other = as_json(escope("stats", "test_ok_again", "--run", str(run_dir), "--json", cwd=proj.path.parent))
    assert other["outcome"] == "passed"


def test_interactive_session_through_stdin(proj: Project) -> None:
    commands = "\n".join([
        "w", "p total", "n", "rn", "rs", "s", "u", "d", "b Invoice.late_fee", "rc", "p fee", "pp self",
        "watch fee", "c", "c", "rc", "history fee", "p self.fees[0]", "p nosuch", "goto failure", "l", "ll",
        "events 4", "zap", "help", "q"]) + "\n"
    res = escope("replay", "test_late_fee", cwd=proj.path, stdin=commands)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert_fits(out)
    assert not ANSI.search(out)
    blocks = out.split("(escope) ")
    first = blocks[0]
    assert "step " in first and "->   19      assert total == 20" in first
    assert "operands:" in first and "total = 15" in first and "20 = 20" in first
    by_cmd: dict[str, str] = {}
    for b in blocks[1:]:
        by_cmd.setdefault(b.splitlines()[0], b)  # the first time each command ran
    assert "> " in by_cmd["w"] and "test_late_fee  test_invoice.py:19" in by_cmd["w"]
    assert by_cmd["p total"].splitlines()[1] == "15"
    # n then rn comes back to the same step; rs goes back one step more
    step = re.compile(r"step (\d+)/")
    at_start = int(step.search(first).group(1))
    after_n = int(step.search(by_cmd["n"]).group(1))
    after_rn = int(step.search(by_cmd["rn"]).group(1))
    after_rs = int(step.search(by_cmd["rs"]).group(1))
    assert after_n > at_start and after_rn == at_start and after_rs == at_start - 1
    assert by_cmd["u"] == "u\n*** oldest frame\n"  # the test's frame is the outermost one filmed
    assert "breakpoint 1: function Invoice.late_fee" in by_cmd["b Invoice.late_fee"]
    assert "stopped: breakpoint" in by_cmd["rc"] and "Invoice.late_fee" in by_cmd["rc"]
    assert "Invoice" in by_cmd["pp self"] and ".fees = " in by_cmd["pp self"]
    assert "watching fee" in by_cmd["watch fee"]
    changes = [b for b in blocks[1:] if b.startswith("c\n")]
    assert "watch fee: <unbound> -> 0" in changes[0] and "watch fee: 0 -> 5" in changes[1]
    reverse = [b for b in blocks[1:] if b.startswith("rc\n")]
    assert "watch fee: <unbound> -> 0" in reverse[1]  # back from where fee became 5
    assert "at test_invoice.py:Invoice.late_fee:10:aug_assign" in by_cmd["history fee"]
    assert "*** no local 'nosuch'" in by_cmd["p nosuch"]
    assert "[exception]" in by_cmd["goto failure"]
    assert "def test_late_fee():" in by_cmd["ll"] and "token = " in by_cmd["ll"]
    assert "->" in by_cmd["events 4"]
    assert "*** unknown command 'zap'" in by_cmd["zap"]
    assert "rn: previous step in the selected frame" in by_cmd["help"]
    assert "json: the state at this step as JSON" in by_cmd["help"]


def test_reverse_watch_and_step_symmetry(proj: Project) -> None:
    commands = "b 10\nc\nc\ncl\nwatch fee\nrc\nrc\nr\nrr\nq\n"
    out = escope("replay", "test_late_fee", "--step", "0", cwd=proj.path, stdin=commands).stdout
    blocks = out.split("(escope) ")
    assert "breakpoint 1: test_invoice.py:10" in blocks[1]
    assert "->   10" in blocks[2] and "->   10" in blocks[3]
    assert "watch fee: 0 -> 5" in blocks[6]
    assert "watch fee: <unbound> -> 0" in blocks[7]
    assert "[return]" in blocks[8] and "return value: 15" in blocks[8]
    assert "[call]" in blocks[9] and "Invoice.late_fee" in blocks[9]


def test_colour_only_on_a_tty_and_never_with_no_color(proj: Project) -> None:
    plain = escope("list", cwd=proj.path)
    assert not ANSI.search(plain.stdout)

    def on_tty(env: dict[str, str]) -> str:
        master, slave = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-m", "pytest_escope.replay.cli", "list"], cwd=proj.path,
                                stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, env=env)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=60)
        os.close(master)
        return b"".join(chunks).decode()

    env = clean_env()
    env.pop("NO_COLOR", None)
    assert ANSI.search(on_tty(env))
    assert not ANSI.search(on_tty(clean_env(NO_COLOR="1")))


def test_escope_run_records_a_plain_program(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(
        "import sys\n"
        "def total(xs):\n"
        "    acc = 0\n"
        "    for x in xs:\n"
        "        acc += x\n"
        "    return acc\n"
        "items = [int(a) for a in sys.argv[1:]]\n"
        "result = total(items)\n"
        "if result > 5:\n"
        "    raise SystemExit(3)\n")
    res = escope("run", "prog.py", "2", "4", cwd=tmp_path)
    assert res.returncode == 3, res.stderr
    assert "escope replay " in res.stdout
    hist = as_json(escope("history", "prog.py", "acc", "--json", cwd=tmp_path))
    assert [h["value"]["repr"] for h in hist] == ["0", "2", "6"]
    stats = as_json(escope("stats", "prog.py", "--json", cwd=tmp_path))
    assert stats["kind"] == "script" and stats["node_share"] == 1.0
    ok = escope("run", "prog.py", "1", cwd=tmp_path)
    assert ok.returncode == 0
    state = as_json(escope("replay", "prog.py", "--step", "3", "--json", cwd=tmp_path))
    assert state["stack"][0]["function"] == "<module>"


def test_escope_run_uncaught_exception_is_the_failure(tmp_path: Path) -> None:
    (tmp_path / "boom.py").write_text("def f(n):\n    return 10 // n\nvalue = f(0)\n")
    res = escope("run", "boom.py", cwd=tmp_path)
    assert res.returncode == 1 and "ZeroDivisionError" in res.stderr and "Traceback" in res.stderr
    data = as_json(escope("replay", "--json", cwd=tmp_path))
    assert data["exception"]["type"] == "ZeroDivisionError"
    assert data["stack"][-1]["function"] == "f" and data["stack"][-1]["locals"]["n"]["repr"] == "0"


def test_recording_is_opened_read_only(proj: Project) -> None:
    path = recording(proj)
    before = (path.stat().st_mtime_ns, path.read_bytes())
    escope("replay", str(path), "--json", cwd=proj.path)
    escope("stats", str(path), cwd=proj.path)
    escope("replay", str(path), cwd=proj.path, stdin="n\nrn\nq\n")
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before
    assert not Path(str(path) + "-journal").exists()
