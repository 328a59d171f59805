"""The command line's own contract: every printed next command works when
pasted (filters, --run and --escope-dir kept), --limit 0, --version, help
that an installed user can read, paths versus test names, and runs that
hold no test."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Project, clean_env

SUITE = '''
def double(x):
    return 2 * x


def walk(n):
    total = 0
    for i in range(n):
        total += double(i)
    return total


def fact(n):
    return 1 if n <= 1 else n * fact(n - 1)


def test_walk():
    assert walk(12) == 1


def test_fact():
    assert fact(4) == 24
'''


def escope(*args: str, cwd: Path, stdin: str = "q\n") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", *args], cwd=cwd, input=stdin,
                          capture_output=True, text=True, env=clean_env(), timeout=120)


def hint_of(stdout: str, program: str = "escope") -> str:
    """The command on the last line (``label: command``, or the command
    alone on the line under ``label:``)."""
    lines = stdout.rstrip("\n").splitlines()
    if lines[-1].startswith("  ") and lines[-2].endswith(":"):
        command = lines[-1].strip()
    else:
        command = lines[-1].split(": ", 1)[1]
    assert command.startswith(program + " "), lines[-1]
    return command


def paste(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run a printed command as a user pasting it would."""
    res = escope(*shlex.split(command)[1:], cwd=cwd)
    assert res.returncode == 0 and "error" not in res.stderr, f"{command}\n{res.stdout}\n{res.stderr}"
    return res


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = Project(tmp_path_factory.mktemp("hints") / "proj")
    project.write("test_hints.py", SUITE)
    res = project.run("--escope", "--escope-keep=all")
    assert "1 failed, 1 passed" in res.stdout, res.out
    return project


def test_events_more_keeps_the_filters(proj: Project) -> None:
    res = escope("events", "test_walk", "--kind", "call", "--limit", "5", cwd=proj.path)
    command = hint_of(res.stdout)
    steps = [int(line.split()[0]) for line in res.stdout.splitlines()[:5]]
    assert command == f"escope events test_hints.py::test_walk --kind call --limit 5 --since {steps[-1] + 1}"
    more = paste(command, proj.path)
    rows = more.stdout.splitlines()[:5]
    assert all(" call " in r for r in rows) and int(rows[0].split()[0]) > steps[-1]
    # the last page ends with a command that opens a step
    last = escope("events", "test_walk", "--kind", "call", "--limit", "50", cwd=proj.path)
    assert hint_of(last.stdout).startswith("escope replay test_hints.py::test_walk --step ")
    paste(hint_of(last.stdout), proj.path)


def test_hints_keep_run_and_escope_dir(proj: Project, tmp_path: Path) -> None:
    packed = escope("pack", "--all", "-o", str(tmp_path / "X.tar.gz"), cwd=proj.path)
    assert packed.returncode == 0, packed.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    listed = escope("list", "--run", str(tmp_path / "X.tar.gz"), cwd=elsewhere)
    command = hint_of(listed.stdout)
    assert command == f"escope replay test_hints.py::test_walk --run {tmp_path / 'X.tar.gz'}"
    assert "escope replay of test_hints.py::test_walk" in paste(command, elsewhere).stdout
    d = str(proj.escope_dir)
    for cmd in (["events", "test_walk", "--kind", "call", "--limit", "3", "--escope-dir", d],
                ["events", "test_walk", "--limit", "500", "--escope-dir", d],
                ["history", "test_walk", "total", "--limit", "2", "--escope-dir", d],
                ["history", "test_walk", "total", "--escope-dir", d],
                ["flow", "test_walk", "--escope-dir", d],
                ["stats", "test_walk", "--escope-dir", d],
                ["list", "--escope-dir", d],
                ["replay", "test_walk", "--print", "--escope-dir", d],
                ["replay", "test_walk", "--print", "--run", str(tmp_path / "X.tar.gz")]):
        res = escope(*cmd, cwd=elsewhere)
        assert res.returncode == 0, (cmd, res.stderr)
        command = hint_of(res.stdout)
        assert "--escope-dir" in command or "--run" in command, (cmd, command)
        paste(command, elsewhere)


def test_pack_gc_and_export_hints(proj: Project, tmp_path: Path) -> None:
    d = str(proj.escope_dir)
    out = tmp_path / "with space" / "Y.tar.gz"
    out.parent.mkdir()
    packed = escope("pack", "--escope-dir", d, "-o", str(out), cwd=tmp_path)
    assert packed.returncode == 0, packed.stderr
    assert "escope replay of test_hints.py::test_walk" in paste(hint_of(packed.stdout), tmp_path).stdout
    gc = escope("gc", "--dry-run", "--escope-dir", d, cwd=tmp_path)
    assert gc.returncode == 0, gc.stderr
    assert "failed   test_hints.py::test_walk" in paste(hint_of(gc.stdout), tmp_path).stdout
    page = tmp_path / "with space" / "film.html"
    exported = escope("export", "test_walk", "--html", "-o", str(page), "--escope-dir", d, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert "open it in any browser (it needs no network):" in exported.stdout
    opener = {"darwin": "open", "win32": "start"}.get(sys.platform, "xdg-open")
    # one command and one path: nothing after it that a shell would choke on
    assert shlex.split(hint_of(exported.stdout, opener)) == [opener, str(page)] and page.is_file()


def test_history_more_keeps_limit_and_frame(proj: Project) -> None:
    first = json.loads(escope("history", "test_fact", "n", "--json", cwd=proj.path).stdout)
    frame = first[0]["frame"]
    res = escope("history", "test_walk", "i", "--limit", "3", cwd=proj.path)
    command = hint_of(res.stdout)
    assert " --limit 3" in command and command.endswith("--since " + command.rsplit(" ", 1)[1])
    again = paste(command, proj.path)
    assert "values shown" in again.stdout or "values; see one" in again.stdout
    framed = escope("history", "test_fact", "n", "--frame", str(frame), cwd=proj.path)
    paste(hint_of(framed.stdout), proj.path)


def test_a_recording_path_stays_a_path_in_hints(proj: Project) -> None:
    path = next(proj.escope_dir.glob("runs/*/tests/*test_walk*.sqlite"))
    for cmd in (["events", str(path), "--limit", "4"], ["stats", str(path)], ["flow", str(path)],
                ["replay", str(path), "--print"], ["history", str(path), "total"]):
        res = escope(*cmd, cwd=proj.path)
        assert res.returncode == 0, res.stderr
        command = hint_of(res.stdout)
        assert shlex.split(command)[2] == str(path), command
        paste(command, proj.path)


def test_error_fixes_keep_run_and_escope_dir(proj: Project, tmp_path: Path) -> None:
    d = str(proj.escope_dir)
    run = proj.run_dirs()[0].name
    for cmd, fix in ((["stats", "nosuch", "--escope-dir", d], f"see the tests with: escope list --escope-dir {d}"),
                     (["stats", "nosuch", "--run", run, "--escope-dir", d],
                      f"see the tests with: escope list --run {run} --escope-dir {d}"),
                     (["stats", "--run", "nope", "--escope-dir", d],
                      f"see the runs with: escope list --all --escope-dir {d}")):
        res = escope(*cmd, cwd=tmp_path)
        assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
        assert res.stderr.rstrip().endswith(fix), res.stderr
        paste(fix.split(": ", 1)[1], tmp_path)


def test_flow_hint_names_a_real_function(proj: Project) -> None:
    command = hint_of(escope("flow", "test_walk", cwd=proj.path).stdout)
    assert "FUNCTION" not in command
    assert "call" in paste(command, proj.path).stdout


def test_events_limit_zero_lists_every_event(proj: Project) -> None:
    every = json.loads(escope("events", "test_walk", "--json", cwd=proj.path).stdout)
    assert len(every) > 60
    text = escope("events", "test_walk", "--limit", "0", cwd=proj.path)
    assert text.returncode == 0, text.stderr
    rows = text.stdout.splitlines()[:-1]
    assert len(rows) == len(every) and "no events match" not in text.stdout
    assert hint_of(text.stdout).startswith("escope replay ")
    limited = json.loads(escope("events", "test_walk", "--json", "--limit", "0", cwd=proj.path).stdout)
    assert limited == every
    bad = escope("events", "test_walk", "--limit", "-1", cwd=proj.path)
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1 and "Traceback" not in bad.stderr


def test_version_and_help(proj: Project) -> None:
    from importlib.metadata import version
    res = escope("--version", cwd=proj.path)
    assert res.returncode == 0 and res.stdout.strip() == f"escope (pytest-escope) {version('pytest-escope')}"
    commands = ["list", "replay", "events", "history", "flow", "stats", "run", "pack", "export", "gc", "help"]
    for cmd in [[], *[[c] for c in commands]]:
        out = escope(*cmd, "--help", cwd=proj.path).stdout
        assert "docs/" not in out, cmd
        assert out.rstrip().endswith("more: escope help TOPIC (test, session, json), escope help COMMAND"), cmd
    for topic in ("test", "session", "json"):
        res = escope("help", topic, cwd=proj.path)
        assert res.returncode == 0 and len(res.stdout.splitlines()) > 5, topic
    assert "rr: back to where the selected frame was called" in escope("help", "session", cwd=proj.path).stdout
    assert "--limit N" in escope("help", "events", cwd=proj.path).stdout
    listing = escope("help", cwd=proj.path).stdout
    assert all(t in listing for t in ("test", "session", "json")) and "pack" in listing
    bad = escope("help", "nope", cwd=proj.path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "topics: test, session, json" in bad.stderr


def test_paths_are_never_taken_for_test_names(proj: Project, tmp_path: Path) -> None:
    missing = escope("replay", "gone.sqlite", "--json", cwd=proj.path)
    assert missing.returncode == 2 and "gone.sqlite: no such recording" in missing.stderr
    # test_hints.py is a unique part of both test ids and a file that exists: a path
    source = escope("stats", "test_hints.py", cwd=proj.path)
    assert source.returncode == 2 and len(source.stderr.splitlines()) == 1
    assert "test_hints.py: not an SQLite file, so not a recording" in source.stderr
    folder = escope("stats", ".escope", cwd=proj.path)
    assert folder.returncode == 2 and ".escope: a directory, so not a recording" in folder.stderr
    # an exact test id still wins (escope run names a script's recording by its path)
    (tmp_path / "prog.py").write_text("x = 1\ny = x + 1\n")
    assert escope("run", "prog.py", cwd=tmp_path).returncode == 0
    assert json.loads(escope("stats", "prog.py", "--json", cwd=tmp_path).stdout)["kind"] == "script"


def test_a_run_with_no_tests_does_not_hide_the_failures(tmp_path: Path) -> None:
    project = Project(tmp_path / "proj")
    project.write("test_hints.py", SUITE)
    assert "1 failed" in project.run("--escope").stdout
    empty = project.run("--escope", "-k", "nothing_has_this_name")
    assert empty.returncode == 5, empty.out  # pytest: no tests collected
    assert len(project.run_dirs()) == 2
    state = json.loads(escope("replay", "--json", cwd=project.path).stdout)
    assert state["test"] == "test_hints.py::test_walk" and state["exception"]["type"] == "AssertionError"
    listed = escope("list", cwd=project.path)
    assert "failed   test_hints.py::test_walk" in listed.stdout
    assert f"newer runs without tests, passed over: {project.run_dirs()[1].name}" in listed.stdout
    paste(hint_of(listed.stdout), project.path)
    # every run: the failure is in a run that is not the latest, so the hint names it
    every = hint_of(escope("list", "--all", cwd=project.path).stdout)
    assert every == f"escope replay test_hints.py::test_walk --run {project.run_dirs()[0].name}"
    paste(every, project.path)
    # and gc keeps the run a bare escope replay opens, however few it is told to keep
    assert escope("gc", "--keep-last", "1", cwd=project.path).returncode == 0
    assert len(project.run_dirs()) == 2
    assert json.loads(escope("replay", "--json", cwd=project.path).stdout)["test"] == "test_hints.py::test_walk"
