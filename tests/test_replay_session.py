"""The interactive session as pdb users expect it, on a real recording:
driven through its real stdin (piped), and through a pseudo-terminal for
what only a terminal has (readline editing, history, completion, Ctrl-C,
the terminal's width)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from conftest import Project, clean_env

SUITE = '''
def fact(n):
    if n <= 1:
        return 1
    result = n * fact(n - 1)
    return result


def pricing(days):
    rate = 0
    for day in range(days):
        rate = rate + 2
        label = "day %d" % day
    return rate


def test_prices():
    note = "n" * 150
    total = pricing(5)
    f = fact(3)
    assert total == 99
'''

STEP = re.compile(r"step (\d+)/")


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = Project(tmp_path_factory.mktemp("session") / "proj")
    project.write("test_session.py", SUITE)
    res = project.run("--escope")
    assert "1 failed" in res.stdout, res.out
    return project


def escope(proj: Project, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", *args], cwd=proj.path, input=stdin,
                          capture_output=True, text=True, env=clean_env(), timeout=120)


def session(proj: Project, *commands: str, start: str = "0") -> dict[str, str]:
    """Run commands piped into ``escope replay``; the output of each, keyed
    by the command (a repeated command gets ``#2``, ``#3``...)."""
    res = escope(proj, "replay", "test_prices", "--step", start, stdin="\n".join([*commands, "q"]) + "\n")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    out: dict[str, str] = {}
    blocks = res.stdout.split("(escope) ")
    out["<start>"] = blocks[0]
    for b in blocks[1:]:
        cmd = b.splitlines()[0] if b.strip() else ""
        key, n = cmd, 1
        while key in out:
            n += 1
            key = f"{cmd}#{n}"
        out[key] = b
    return out


def step_of(text: str) -> int:
    return int(STEP.search(text).group(1))


def test_b_refuses_a_line_past_the_end_of_the_file(proj: Project) -> None:
    out = session(proj, "b 999", "b 0", "b test_session.py:999", "b", "b 11")
    assert "*** line 999 is not in test_session.py; it has lines 1-20" in out["b 999"]
    assert "*** line 0 is not in test_session.py" in out["b 0"]
    assert "*** line 999 is not in test_session.py" in out["b test_session.py:999"]
    assert "no breakpoints" in out["b"]
    assert "breakpoint 1: test_session.py:11" in out["b 11"]  # numbering is not spent by a refusal


def test_up_shows_the_selected_frames_line_not_the_inner_return(proj: Project) -> None:
    out = session(proj, "b 13", "c", "s", "u", "d")
    assert "[return]" in out["s"] and "return value: 10" in out["s"]
    up = out["u"]
    assert "test_prices  test_session.py:18" in up and "frame 1 of 2" in up
    assert "[return]" not in up and "return value" not in up
    assert "[return]" in out["d"] and "return value: 10" in out["d"]


def test_rr_and_r_act_on_the_selected_frame(proj: Project) -> None:
    # stop in fact(1), the innermost of fact(3) -> fact(2) -> fact(1)
    out = session(proj, "b fact, n == 1", "c", "p n", "u", "p n", "rr", "p n", "u", "r")
    assert out["p n"].splitlines()[1] == "1"
    assert out["p n#2"].splitlines()[1] == "2"
    # rr went back to the call of fact(2), the selected frame, not of fact(1)
    assert "[call]" in out["rr"] and out["p n#3"].splitlines()[1] == "2"
    # r on the selected fact(3) runs to where it returns, 6
    assert "[return]" in out["r"] and "return value: 6" in out["r"]


def test_j_goes_to_a_line_and_goto_to_a_step(proj: Project) -> None:
    out = session(proj, "j 12", "p day", "j 12", "p day", "goto end", "j 12", "p day", "j 999", "j 3", "goto 12")
    assert "test_session.py:12" in out["j 12"] and out["p day"].splitlines()[1] == "0"
    assert out["p day#2"].splitlines()[1] == "1"  # the next time line 12 runs
    # nothing after the end: the latest time before it
    assert "test_session.py:12" in out["j 12#3"] and out["p day#3"].splitlines()[1] == "4"
    assert "*** line 999 is not in test_session.py" in out["j 999"]
    assert "test_session.py:3" in out["j 3"]
    assert step_of(out["goto 12"]) == 12


def test_a_bare_local_name_prints_its_value(proj: Project) -> None:
    out = session(proj, "b 12", "c", "rate", "day", "rate[:3]", "nosuch")
    assert out["rate"].splitlines()[1] == "2"
    assert out["day"].splitlines()[1] == "0"
    assert "*** only constant indexes" in out["rate[:3]"]  # a slice is not a path: nothing is evaluated
    assert "*** unknown command 'nosuch'" in out["nosuch"]


def test_breakpoint_conditions_over_recorded_values(proj: Project) -> None:
    out = session(proj, "b 12, rate > 5", "c", "p rate", "c", "p rate", "cl",
                  "goto start", "b 12, rate > 5 and not day == 2", "c", "p day",
                  "cl", "goto start", "b 11, label == 'day 1'", "c", "p label",
                  "cl", "goto end", "b 12, rate <= 2 or rate == 8", "rc", "p rate", "rc", "p rate",
                  "cl", "b 12, rate >", "b 12, __import__('os').system('true')", "b 12, rate + 1 > 2", "b 12,",
                  "b 12, nosuch == 1", "goto start", "c", "b")
    assert "breakpoint 1: test_session.py:12 if rate > 5" in out["b 12, rate > 5"]
    assert out["p rate"].splitlines()[1] == "6" and out["p rate#2"].splitlines()[1] == "8"
    assert out["p day"].splitlines()[1] == "3"
    assert out["p label"].splitlines()[1] == "'day 1'"
    assert out["p rate#3"].splitlines()[1] == "8" and out["p rate#4"].splitlines()[1] == "2"
    assert "*** cannot read the condition 'rate >'" in out["b 12, rate >"]
    assert "is more than a comparison" in out["b 12, __import__('os').system('true')"]
    assert "is more than a comparison" in out["b 12, rate + 1 > 2"]
    assert "*** a comma needs a condition" in out["b 12,"]
    # a name the frame never binds makes the condition false: c runs to the end
    assert "stopped: end of the recording" in out["c#5"]
    assert "if nosuch == 1" in out["b"]


def test_history_of_a_name_that_is_not_a_local_here(proj: Project) -> None:
    out = session(proj, "history rate", "history zzz", "b 12", "c", "history rate", "history day")
    assert "*** rate is not a local of test_prices (frame" in out["history rate"]
    assert "it is one in: pricing (frame" in out["history rate"]
    assert "*** zzz is not a local of test_prices" in out["history zzz"]
    assert "no frame of this recording has a local zzz" in out["history zzz"]
    assert "5 values" in out["history day"] and " 4" in out["history day"]
    assert "never changed" not in out["history rate#2"] and "'10'" not in out["history rate#2"]


def test_history_of_a_recursive_function_shows_the_frame(proj: Project) -> None:
    res = escope(proj, "history", "test_prices", "n")
    assert res.returncode == 0, res.stderr
    values = [line for line in res.stdout.splitlines() if " fact " in line]
    frames = {re.search(r"frame (\d+)", line).group(1) for line in values}
    assert len(values) == 3 and len(frames) == 3, res.stdout
    plain = escope(proj, "history", "test_prices", "rate")  # one frame: no column
    assert "frame " not in plain.stdout


def test_at_time_never_reports_a_start_after_step_one(proj: Project) -> None:
    import json
    first = json.loads(escope(proj, "replay", "test_prices", "--step", "0", "--json").stdout)
    second = json.loads(escope(proj, "replay", "test_prices", "--step", "1", "--json").stdout)
    res = escope(proj, "replay", "test_prices", "--at-time", "0", "--json")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    said = int(re.search(r"starts at (\d+) ns", res.stderr).group(1))
    # a call is stamped once its frame is set up: step 0 can be later than step 1
    assert said == min(first["time_ns"], second["time_ns"])
    # and the time it names is one --at-time takes
    assert escope(proj, "replay", "test_prices", "--at-time", str(said), "--json").returncode == 0


def test_help_lists_every_command_and_each_has_its_own(proj: Project) -> None:
    out = session(proj, "help", "h j", "? b", "help nosuch")
    for cmd in ("n(ext)", "rn:", "rr:", "j(ump) LINE", "goto N", "history NAME", "watch NAME", "json:", "q(uit)"):
        assert cmd in out["help"]
    assert "goto N" in out["h j"] and "jumps to a step number" in out["h j"]
    assert "rate > 5" in out["? b"]
    assert "*** no help for 'nosuch'" in out["help nosuch"]


def test_enter_repeats_motions_only(proj: Project) -> None:
    out = session(proj, "n", "", "p day", "")
    assert step_of(out[""]) > step_of(out["n"])
    assert out["#2"].strip() == ""  # p is not repeated


# -- on a terminal --------------------------------------------------------------------


def _controlling_terminal() -> None:
    """In the child: the pty becomes its terminal, so Ctrl-C sends SIGINT."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


#: a prompt at the start of the text or of a line, after any bracketed-paste
#: switch readline writes before it
_PROMPT = re.compile(r"(?:\A|\n)(?:\x1b\[\?2004[hl])*\(escope\) ")


class Terminal:
    """``escope replay`` on a pseudo-terminal of a given size."""

    def __init__(self, proj: Project, home: Path, columns: int = 80) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
        env = clean_env(HOME=str(home), TERM="xterm", NO_COLOR="1")
        env.pop("COLUMNS", None)
        env.pop("ESCOPE_HISTORY", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "pytest_escope.replay.cli", "replay", "test_prices",
                                      "--step", "0"], cwd=proj.path, stdin=slave, stdout=slave, stderr=slave,
                                     env=env, preexec_fn=_controlling_terminal)
        os.close(slave)
        self.text = ""
        self.wait_prompt(1)

    def read_until(self, done, deadline: float = 60, must: bool = True) -> bool:  # type: ignore[no-untyped-def]
        import time
        end = time.monotonic() + deadline
        while not done(self.text):
            left = end - time.monotonic()
            if left <= 0 and not must:
                return False
            assert left > 0, f"the session stopped answering; it said:\n{self.text[-2000:]}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                self.text += data.decode("utf-8", "replace")
        return True

    @staticmethod
    def prompts(text: str) -> int:
        """How many prompts the session printed.  Only a prompt at the start
        of a line counts: readline redraws the line it is editing (``\r``,
        erase, prompt again) when it sees fit, and a redraw is no answer."""
        return len(_PROMPT.findall(text))

    def wait_prompt(self, count: int) -> None:
        self.read_until(lambda t: self.prompts(t) >= count)

    def type(self, keys: str, prompts: int | None = None) -> str:
        """Send keys; wait for the session's next prompt; what it printed."""
        before = len(self.text)
        count = self.prompts(self.text) + (1 if prompts is None else prompts)
        os.write(self.master, keys.encode())
        self.wait_prompt(count)
        return self.text[before:].replace("\r\n", "\n")

    def interrupt(self, typed: str) -> str:
        """Type ``typed``, then Ctrl-C; what the session printed until its
        next prompt.  CPython's readline notices SIGINT only while it waits
        for a key, so a Ctrl-C that lands while it is still handling the
        previous key waits for the next one: the test presses Ctrl-C again
        in that case, as a person would."""
        before = len(self.text)
        count = self.prompts(self.text) + 1
        os.write(self.master, typed.encode())
        self.read_until(lambda t: t.endswith(typed))
        for _ in range(10):
            os.write(self.master, b"\x03")
            if self.read_until(lambda t: self.prompts(t) >= count, deadline=5, must=False):
                break
        self.wait_prompt(count)
        return self.text[before:].replace("\r\n", "\n")

    def close(self) -> int:
        os.write(self.master, b"q\n")
        self.read_until(lambda t: False, deadline=60)
        rc = self.proc.wait(timeout=60)
        os.close(self.master)
        self.master = -1
        return rc

    def kill(self) -> None:
        """After a failed assertion: no session or descriptor is left behind."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)
        if self.master >= 0:
            os.close(self.master)
            self.master = -1


@pytest.fixture
def terminal(proj: Project):  # type: ignore[no-untyped-def]
    opened: list[Terminal] = []

    def start(home: Path, columns: int = 80) -> Terminal:
        opened.append(Terminal(proj, home, columns))
        return opened[-1]

    yield start
    for term in opened:
        term.kill()


def test_line_editing_history_completion_and_ctrl_c(terminal, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    term = terminal(tmp_path)
    term.type("j 11\n")
    assert "\n0\n" in term.type("p rate\n")
    again = term.type("\x1b[A\n")  # Up: the previous line, run again
    assert "unknown command" not in again and "\n0\n" in again
    completed = term.type("p ra\t\n")  # Tab completes the local name
    assert "p rate" in completed and "\n0\n" in completed
    term.type("histo\t rate\n")  # and the command
    assert "values" in term.text.split("history rate")[-1]
    cleared = term.interrupt("garbage")  # Ctrl-C: the line is dropped, the session goes on
    after = term.type("p day\n")
    assert "unknown command" not in cleared + after and "\n0\n" in after
    assert term.close() == 0
    saved = (tmp_path / ".escope_history").read_text()
    assert "p rate" in saved and "j 11" in saved and "garbage" not in saved

    # a second session finds the first one's commands with Up
    term = terminal(tmp_path)
    term.type("j 11\n")
    # Up past this session's j 11 and the first session's q: its p day
    back = term.type("\x1b[A\x1b[A\x1b[A\n")
    assert "p day" in back and "\n0\n" in back, back
    assert term.close() == 0


def test_history_file_that_cannot_be_written_is_silent(terminal, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "ro"
    home.mkdir()
    (home / ".escope_history").mkdir()  # a directory where the file should be: both read and write fail
    term = terminal(home)
    term.type("j 18\n")
    out = term.type("p note\n")
    assert term.close() == 0
    assert "Error" not in term.text and "Traceback" not in term.text and "nnn" in out


def test_output_uses_the_terminal_width(terminal, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    term = terminal(tmp_path, columns=200)
    term.type("j 20\n")
    out = term.type("p note\n")
    assert "'" + "n" * 150 + "'" in out
    every = term.type("p\n")  # the locals table too
    assert term.close() == 0
    assert any(len(line) > 80 and line.endswith("'") for line in every.splitlines())
    narrow = terminal(tmp_path, columns=80)
    narrow.type("j 20\n")
    cut = narrow.type("p note\n")
    assert "'" + "n" * 150 not in cut and "…" in cut
    assert all(len(line) <= 80 for line in cut.splitlines())
    fcntl.ioctl(narrow.master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))  # the user widens it
    assert "'" + "n" * 150 + "'" in narrow.type("p note\n")
    assert narrow.close() == 0
