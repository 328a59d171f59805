"""The interactive time-travel session: pdb's commands, forward and back.

It reads commands line by line from stdin, so it works the same on a
terminal and when commands are piped in (tests drive it that way).  When
stdin is not a terminal each command is echoed after the prompt, so a
piped session reads like the terminal one (docs/replay.md has one).
"""

from __future__ import annotations

import json
import sys
from typing import IO, Callable

from . import navigation as nav
from .errors import EscopeError
from .history import PAGE as HISTORY_PAGE
from .history import history
from .recording import Recording
from .render import (Style, event_lines, history_lines, locals_lines, lookup, pretty, source_window,
                     stop_display, value_text, where)
from .state import State

PROMPT = "(escope) "

HELP = {
    "n": "n(ext): next step in this frame, stepping over calls",
    "s": "s(tep): next step on this thread, into calls",
    "r": "r(eturn): to where the current frame returns",
    "c": "c(ontinue): to the next breakpoint or watch change (or the end)",
    "rn": "rn: previous step in this frame, stepping over calls",
    "rs": "rs: previous step on this thread",
    "rr": "rr: back to where the current frame was called",
    "rc": "rc: back to the previous breakpoint or watch change (or the start)",
    "b": "b [FILE:LINE | LINE | FUNCTION]: set a breakpoint; b alone lists them",
    "cl": "cl [N]: clear breakpoint N (all when no N)",
    "w": "w(here): the call stack; > marks the selected frame",
    "u": "u(p) [N]: select an outer frame",
    "d": "d(own) [N]: select an inner frame",
    "l": "l(ist) [FIRST[, LAST]]: source around the line; again to continue",
    "ll": "ll: the whole source of the current function",
    "p": "p [NAME | a.b | a[0] | a['k']]: a recorded value; p alone prints all locals",
    "pp": "pp NAME: a recorded value, expanded as a tree",
    "goto": "goto N | start | failure | end: jump to a step",
    "history": "history NAME [STEP]: every value NAME took in the selected frame (from STEP on), a page at a time",
    "watch": "watch NAME: c and rc stop where NAME changes; watch alone lists",
    "unwatch": "unwatch [NAME]: stop watching NAME (all when no NAME)",
    "events": "events [N]: the N steps around this one (default 10)",
    "q": "q(uit): leave the session",
}

ALIASES = {
    "next": "n", "step": "s", "return": "r", "cont": "c", "continue": "c", "break": "b", "clear": "cl",
    "where": "w", "bt": "w", "up": "u", "down": "d", "list": "l", "longlist": "ll", "quit": "q", "exit": "q",
    "h": "help", "?": "help", "g": "goto", "j": "goto", "jump": "goto",
}


class Session:
    """One interactive replay of one recording."""

    def __init__(self, rec: Recording, start: int, out: IO[str], style: Style,
                 failure_step: int | None = None) -> None:
        self.rec = rec
        self.out = out
        self.st = style
        self.failure_step = failure_step
        self.step = start
        self.state: State = rec.state_at(start)
        self.selected = len(self.state.stack) - 1
        self.breakpoints: list[nav.Breakpoint] = []
        self.watches: list[nav.Watch] = []
        self.bp_number = 0
        self.list_next: int | None = None
        self.last = ""

    # -- io ------------------------------------------------------------------------

    def say(self, *lines: str) -> None:
        for line in lines:
            self.out.write((line if "\x1b" in line else self.st.cut(line)) + "\n")
        self.out.flush()

    def read(self, inp: IO[str]) -> str | None:
        if inp.isatty():
            try:
                return input(PROMPT)
            except EOFError:
                self.say("")
                return None
        self.out.write(PROMPT)
        line = inp.readline()
        if not line:
            self.say("")
            return None
        self.say(line.rstrip("\n"))
        return line.rstrip("\n")

    def run(self, inp: IO[str] | None = None) -> int:
        inp = inp or sys.stdin
        self.say(self.st(f"escope replay of {self.rec.test_id} ({self.rec.outcome}); "
                         f"steps {self.rec.first_step}-{self.rec.last_step}; help: h", "dim"))
        self.show()
        while True:
            line = self.read(inp)
            if line is None:
                return 0
            line = line.strip() or self.last
            if not line:
                continue
            self.last = line if line.split()[0] in ("n", "s", "rn", "rs", "l", "c", "rc", "r", "rr") else ""
            try:
                if self.dispatch(line) is False:
                    return 0
            except EscopeError as exc:
                self.say(self.st(f"*** {exc.message()}", "red"))

    # -- dispatch ------------------------------------------------------------------

    def dispatch(self, line: str) -> bool | None:
        cmd, _, arg = line.partition(" ")
        cmd = ALIASES.get(cmd, cmd)
        arg = arg.strip()
        handler: Callable[[str], bool | None] | None = getattr(self, "do_" + cmd, None)
        if handler is None:
            self.say(f"*** unknown command {cmd!r}; type h for the list")
            return None
        return handler(arg)

    def move(self, target: int | None, what: str) -> None:
        if target is None:
            self.say(f"*** {what}")
            return
        self.goto(target)

    def goto(self, step: int) -> None:
        self.state = self.rec.state_at(step)
        self.step = step
        self.selected = len(self.state.stack) - 1
        self.list_next = None
        self.show()

    def show(self) -> None:
        self.say(*stop_display(self.rec, self.state, self.st, self.selected, self.failure_step))

    @property
    def frame(self):  # type: ignore[no-untyped-def]
        return self.state.stack[self.selected]

    # -- motions -------------------------------------------------------------------

    def do_n(self, arg: str) -> None:
        self.move(nav.over(self.rec, self.step, True), "at the end of the recording")

    def do_rn(self, arg: str) -> None:
        self.move(nav.over(self.rec, self.step, False), "at the start of the recording")

    def do_s(self, arg: str) -> None:
        self.move(nav.thread_step(self.rec, self.step, True), "at the end of the recording")

    def do_rs(self, arg: str) -> None:
        self.move(nav.thread_step(self.rec, self.step, False), "at the start of the recording")

    def do_r(self, arg: str) -> None:
        self.move(nav.to_return(self.rec, self.step), "this frame never returns in the recording")

    def do_rr(self, arg: str) -> None:
        self.move(nav.to_call(self.rec, self.step), "at the start of the recording")

    def _continue(self, forward: bool) -> None:
        hit = nav.breakpoint_hit(self.rec, self.breakpoints, self.step, forward)
        target = hit[0] if hit else None
        reason = f"breakpoint {hit[1]}" if hit else ""
        for w in self.watches:
            c = nav.watch_change(self.rec, w, self.step, forward)
            if c is not None and (target is None or (c < target if forward else c > target)):
                target, reason = c, f"watch {w.text}"
        if target is None:
            end = self.rec.last_step if forward else self.rec.first_step
            if end == self.step:
                self.say(f"*** at the {'end' if forward else 'start'} of the recording")
                return
            target, reason = end, "end of the recording" if forward else "start of the recording"
        before = None
        if reason.startswith("watch"):
            w = next(w for w in self.watches if reason == f"watch {w.text}")
            before = nav.watch_value(self.rec, w, target - 1)[0] if forward else \
                nav.watch_value(self.rec, w, target - 1)[0]
            after = nav.watch_value(self.rec, w, target)[0]
            self.say(self.st(f"watch {w.text}: {value_text(before)} -> {value_text(after)}", "yellow"))
        else:
            self.say(self.st(f"stopped: {reason}", "yellow"))
        self.goto(target)

    def do_c(self, arg: str) -> None:
        self._continue(True)

    def do_rc(self, arg: str) -> None:
        self._continue(False)

    def do_goto(self, arg: str) -> None:
        if arg in ("start", "begin", "first"):
            self.goto(self.rec.first_step)
        elif arg in ("end", "last"):
            self.goto(self.rec.last_step)
        elif arg in ("failure", "fail", "f"):
            f = self.rec.failure()
            if f is None:
                self.say(f"*** the test {self.rec.outcome}; there is no failure to go to")
            else:
                self.goto(f.step)
        else:
            try:
                step = int(arg)
            except ValueError:
                self.say("*** goto takes a step number, start, failure or end")
                return
            self.rec.check_step(step)
            self.goto(step)

    # -- breakpoints and watches ---------------------------------------------------

    def do_b(self, arg: str) -> None:
        if not arg:
            if not self.breakpoints:
                self.say("no breakpoints; set one with: b FILE:LINE, b LINE or b FUNCTION")
            for b in self.breakpoints:
                self.say(str(b))
            return
        self.bp_number += 1
        b = nav.make_breakpoint(self.rec, self.bp_number, arg, self.frame.code)
        self.breakpoints.append(b)
        self.say(f"breakpoint {b}; c / rc run to it")

    def do_cl(self, arg: str) -> None:
        if not arg:
            self.breakpoints.clear()
            self.say("cleared all breakpoints")
            return
        keep = [b for b in self.breakpoints if str(b.number) != arg]
        if len(keep) == len(self.breakpoints):
            self.say(f"*** no breakpoint {arg}")
        self.breakpoints = keep

    def do_watch(self, arg: str) -> None:
        if not arg:
            if not self.watches:
                self.say("no watches; add one with: watch NAME")
            for w in self.watches:
                self.say(str(w))
            return
        f = self.frame
        w = nav.make_watch(self.rec, arg, f.frame, f.function)
        self.watches.append(w)
        now = nav.watch_value(self.rec, w, self.step)[0]
        self.say(f"watching {w}: {value_text(now)}", "c / rc stop where it changes")

    def do_unwatch(self, arg: str) -> None:
        self.watches = [w for w in self.watches if arg and w.text != arg]
        self.say("watches: " + (", ".join(w.text for w in self.watches) or "none"))

    # -- looking around ------------------------------------------------------------

    def do_w(self, arg: str) -> None:
        self.say(*where(self.state, self.selected, self.st))

    def _select(self, delta: int, arg: str) -> None:
        n = int(arg) if arg.isdigit() else 1
        new = max(0, min(len(self.state.stack) - 1, self.selected + delta * n))
        if new == self.selected:
            self.say(f"*** {'oldest' if delta < 0 else 'newest'} frame")
            return
        self.selected = new
        self.list_next = None
        self.show()

    def do_u(self, arg: str) -> None:
        self._select(-1, arg)

    def do_d(self, arg: str) -> None:
        self._select(1, arg)

    def do_l(self, arg: str) -> None:
        f = self.frame
        if arg:
            parts = [p.strip() for p in arg.split(",")]
            if arg == ".":
                first, last = f.line - 5, f.line + 5
            else:
                try:
                    first = int(parts[0])
                    last = int(parts[1]) if len(parts) > 1 and parts[1] else first + 10
                    if len(parts) == 1:
                        first, last = first - 5, first + 5
                except ValueError:
                    self.say("*** l takes a line number, FIRST, LAST, or .")
                    return
        elif self.list_next is not None:
            first, last = self.list_next, self.list_next + 10
        else:
            first, last = f.line - 5, f.line + 5
        self.say(*source_window(self.rec, f.code, f.line, 0, 0, self.st, first, last))
        self.list_next = last + 1

    def do_ll(self, arg: str) -> None:
        f = self.frame
        c = self.rec.codes.get(f.code)
        first = c[3] if c else f.line
        row = self.rec.q1("SELECT max(last_line) FROM nodes WHERE file = ? AND qualname = ?", (c[0], c[2])) if c else None
        last = row[0] if row and row[0] else f.line
        self.say(*source_window(self.rec, f.code, f.line, 0, 0, self.st, first, max(last, f.line)))

    def do_p(self, arg: str) -> None:
        if not arg:
            self.say(*locals_lines(self.frame, self.st))
            return
        self.say(self.st.cut(value_text(lookup(self.frame, arg))))

    def do_pp(self, arg: str) -> None:
        if not arg:
            self.do_p(arg)
            return
        self.say(*pretty(lookup(self.frame, arg), self.st))

    def do_history(self, arg: str) -> None:
        if not arg:
            self.say("*** history takes a name: history NAME [STEP]")
            return
        name, since = arg, None
        parts = arg.rsplit(None, 1)
        if len(parts) == 2 and parts[1].isdigit():
            name, since = parts[0], int(parts[1])
        hist = history(self.rec, name, frame=self.frame.frame, since=since)
        entries, more = hist.page(HISTORY_PAGE)
        if not entries:
            self.say(f"{name} never changed in {self.frame.function}" + (f" from step {since} on" if since else ""))
            return
        self.say(*history_lines(entries, self.st))
        if more:
            self.say(self.st(f"{len(entries)} values shown; more: history {name} {entries[-1].step + 1}", "dim"))
        else:
            self.say(self.st(f"{len(entries)} values; goto STEP to see one", "dim"))

    def do_events(self, arg: str) -> None:
        n = int(arg) if arg.isdigit() else 10
        since = max(self.rec.first_step, self.step - n // 2)
        evs = self.rec.events(since=since, limit=n + 1)
        self.say(*event_lines(evs, self.st, current=self.step))

    def do_json(self, arg: str) -> None:
        self.say(json.dumps(self.state.to_json(), indent=2, ensure_ascii=False))

    def do_help(self, arg: str) -> None:
        if arg:
            key = ALIASES.get(arg, arg)
            self.say(HELP.get(key, f"*** no help for {arg!r}"))
            return
        self.say("commands (pdb's, plus their reverse twins):")
        for key in HELP:
            self.say("  " + self.st.cut(HELP[key], 78))

    def do_q(self, arg: str) -> bool:
        return False
