"""The interactive time-travel session: pdb's commands, forward and back.

Built on ``cmd.Cmd``, as pdb is: each command is a ``do_*`` method whose
docstring is its help (first line: the summary ``help`` lists), aliases are
the same method under another name, and an empty line repeats the last
command when that command is marked ``@repeatable``.

On a terminal the session reads with ``readline`` (line editing, tab
completion of commands and local names, history kept across sessions in
``~/.escope_history`` as pdb keeps ``~/.pdb_history``), and Ctrl-C at the
prompt drops the line and prompts again.  When stdin is not a terminal the
commands are read line by line and each is echoed after the prompt, so a
piped session reads like the terminal one (docs/replay.md has one).
"""

from __future__ import annotations

import cmd
import json
import os
import re
import sys
from pathlib import Path
from typing import IO, Any, Callable, TypeVar

from . import navigation as nav
from .errors import EscopeError
from .history import PAGE as HISTORY_PAGE
from .history import history
from .recording import Recording
from .render import (Style, event_lines, history_lines, locals_lines, lookup, pretty, source_window,
                     stop_display, term_width, value_text, where)
from .state import State
from .values import parse_path

PROMPT = "(escope) "

#: Where the session keeps its command history between runs (``$ESCOPE_HISTORY`` moves it).
HISTORY_FILE = "~/.escope_history"
HISTORY_LENGTH = 1000

_IDENT = re.compile(r"[^\W\d]\w*")

F = TypeVar("F", bound=Callable[..., Any])


def repeatable(fn: F) -> F:
    """An empty line runs this command again (pdb's Enter after ``n``)."""
    fn.repeatable = True  # type: ignore[attr-defined]
    return fn


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def history_path() -> Path:
    return Path(os.environ.get("ESCOPE_HISTORY") or HISTORY_FILE).expanduser()


class Session(cmd.Cmd):
    """One interactive replay of one recording."""

    prompt = PROMPT

    def __init__(self, rec: Recording, start: int, out: IO[str], style: Style,
                 failure_step: int | None = None, inp: IO[str] | None = None) -> None:
        super().__init__(completekey="tab", stdin=inp or sys.stdin, stdout=out)
        self.use_rawinput = _isatty(self.stdin)
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

    # -- io ------------------------------------------------------------------------

    def say(self, *lines: str) -> None:
        for line in lines:
            self.out.write((line if "\x1b" in line else self.st.cut(line)) + "\n")
        self.out.flush()

    def run(self, inp: IO[str] | None = None) -> int:
        if inp is not None:
            self.stdin = inp
            self.use_rawinput = _isatty(inp)
        self.say(self.st(f"escope replay of {self.rec.test_id} ({self.rec.outcome}); "
                         f"steps {self.rec.first_step}-{self.rec.last_step}; help: h", "dim"))
        self.show()
        readline = self._start_readline()
        try:
            while True:
                try:
                    self.cmdloop()
                    return 0
                except KeyboardInterrupt:
                    # pdb's behaviour: Ctrl-C drops what was typed (or stops
                    # a long command) and the session goes on
                    self.out.write("\n")
                    self.out.flush()
        finally:
            if readline is not None:
                try:
                    readline.write_history_file(str(history_path()))
                except OSError:
                    pass  # a read-only home is no reason to fail the session

    def _start_readline(self) -> Any:
        if not self.use_rawinput:
            return None
        try:
            import readline
        except ImportError:
            return None
        readline.set_history_length(HISTORY_LENGTH)
        try:
            readline.read_history_file(str(history_path()))
        except OSError:
            pass
        return readline

    def precmd(self, line: str) -> str:
        if not self.use_rawinput:
            self.say("" if line == "EOF" else line)
        self.st.width = term_width(self.out)  # the terminal may have been resized since
        return line.strip()

    def onecmd(self, line: str) -> bool:
        try:
            return bool(super().onecmd(line))
        except EscopeError as exc:
            self.say(self.st(f"*** {exc.message()}", "red"))
            return False

    def emptyline(self) -> bool:
        name = self.parseline(self.lastcmd)[0] if self.lastcmd else None
        fn = getattr(self, "do_" + name, None) if name else None
        if fn is not None and getattr(fn, "repeatable", False):
            return self.onecmd(self.lastcmd)
        return False

    def default(self, line: str) -> bool:
        """A bare local name or path prints its value, as pdb does."""
        root = _IDENT.match(line)
        if root is not None and root.group(0) in self.frame.locals:
            self.do_p(line)
            return False
        name = line.split()[0] if line.split() else line
        self.say(f"*** unknown command {name!r}; type h for the list")
        return False

    # -- completion -----------------------------------------------------------------

    def _commands(self) -> list[str]:
        return sorted(n[3:] for n in self.get_names() if n.startswith("do_") and n != "do_EOF")

    def _names(self, text: str) -> list[str]:
        """Local names of the selected frame; after a dot, the recorded fields."""
        if "." in text or "[" in text:
            head, _, tail = text.rpartition(".")
            try:
                form = lookup(self.frame, head) if head else {}
            except EscopeError:
                return []
            fields = form.get("fields") if isinstance(form, dict) else None
            return [f"{head}.{k}" for k in (fields or {}) if k.startswith(tail)]
        return [n for n in self.frame.locals if n.startswith(text)]

    def completenames(self, text: str, *ignored: Any) -> list[str]:
        return [c for c in self._commands() if c.startswith(text)] + self._names(text)

    def completedefault(self, text: str, line: str, begidx: int, endidx: int) -> list[str]:
        return self._names(text)

    def complete_b(self, text: str, line: str, begidx: int, endidx: int) -> list[str]:
        functions = sorted({v[2] for v in self.rec.codes.values()})
        return [f for f in functions if f.startswith(text)] + self._names(text)

    def complete_help(self, text: str, *ignored: Any) -> list[str]:
        return [c for c in self._commands() if c.startswith(text)]

    # -- moving ----------------------------------------------------------------------

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

    @repeatable
    def do_n(self, arg: str) -> None:
        """n(ext): next step in the selected frame, stepping over calls"""
        self.move(nav.over(self.rec, self.step, True, self.frame.act), "at the end of the recording")

    @repeatable
    def do_rn(self, arg: str) -> None:
        """rn: previous step in the selected frame, stepping over calls"""
        self.move(nav.over(self.rec, self.step, False, self.frame.act), "at the start of the recording")

    @repeatable
    def do_s(self, arg: str) -> None:
        """s(tep): next step on this thread, into calls"""
        self.move(nav.thread_step(self.rec, self.step, True), "at the end of the recording")

    @repeatable
    def do_rs(self, arg: str) -> None:
        """rs: previous step on this thread"""
        self.move(nav.thread_step(self.rec, self.step, False), "at the start of the recording")

    @repeatable
    def do_r(self, arg: str) -> None:
        """r(eturn): to where the selected frame returns"""
        self.move(nav.to_return(self.rec, self.step, self.frame.act), "this frame never returns in the recording")

    @repeatable
    def do_rr(self, arg: str) -> None:
        """rr: back to where the selected frame was called"""
        self.move(nav.to_call(self.rec, self.step, self.frame.act), "at the start of the recording")

    def _continue(self, forward: bool) -> None:
        hit = nav.breakpoint_hit(self.rec, self.breakpoints, self.step, forward)
        target = hit[0] if hit else None
        reason = f"breakpoint {hit[1]}" if hit else ""
        watch = None
        for w in self.watches:
            c = nav.watch_change(self.rec, w, self.step, forward)
            if c is not None and (target is None or (c < target if forward else c > target)):
                target, reason, watch = c, f"watch {w.text}", w
        if target is None:
            end = self.rec.last_step if forward else self.rec.first_step
            if end == self.step:
                self.say(f"*** at the {'end' if forward else 'start'} of the recording")
                return
            target, reason = end, "end of the recording" if forward else "start of the recording"
        if watch is not None:
            before = nav.watch_value(self.rec, watch, target - 1)[0]
            after = nav.watch_value(self.rec, watch, target)[0]
            self.say(self.st(f"watch {watch.text}: {value_text(before)} -> {value_text(after)}", "yellow"))
        else:
            self.say(self.st(f"stopped: {reason}", "yellow"))
        self.goto(target)

    @repeatable
    def do_c(self, arg: str) -> None:
        """c(ontinue): to the next breakpoint or watch change (or the end)"""
        self._continue(True)

    @repeatable
    def do_rc(self, arg: str) -> None:
        """rc: back to the previous breakpoint or watch change (or the start)"""
        self._continue(False)

    def do_goto(self, arg: str) -> None:
        """goto N | start | failure | end: jump to a step"""
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

    def do_j(self, arg: str) -> None:
        """j(ump) LINE: to the next step at LINE in this file (else the last one before)

        pdb's j sets the next line to run; here the film already holds every
        step, so j goes to the next time LINE ran in the selected frame's
        file, or back to the last time when it never runs again.  goto N
        jumps to a step number."""
        try:
            line = int(arg)
        except ValueError:
            self.say("*** j takes a line number (goto N jumps to step N)")
            return
        f = self.frame
        codes = nav.file_codes(self.rec, f.file) or frozenset({f.code})
        nav.check_line(self.rec, codes, line)
        target = nav.line_step(self.rec, codes, line, self.step)
        if target is None:
            self.say(f"*** line {line} of {f.file} never ran in this recording")
            return
        self.goto(target)

    # -- breakpoints and watches ---------------------------------------------------

    def do_b(self, arg: str) -> None:
        """b [FILE:LINE | LINE | FUNCTION][, CONDITION]: set a breakpoint; b lists them

        b(reak) FUNCTION stops where it is called.  CONDITION compares
        recorded values: locals and paths (a.b, a[0]), numbers, strings,
        True, False, None, with == != < <= > >= and and/or/not, e.g.
        b 36, rate > 5.  Nothing is evaluated by Python."""
        if not arg:
            if not self.breakpoints:
                self.say("no breakpoints; set one with: b FILE:LINE, b LINE or b FUNCTION")
            for b in self.breakpoints:
                self.say(str(b))
            return
        b = nav.make_breakpoint(self.rec, self.bp_number + 1, arg, self.frame.code)
        self.bp_number += 1
        self.breakpoints.append(b)
        self.say(f"breakpoint {b}; c / rc run to it")

    def do_cl(self, arg: str) -> None:
        """cl(ear) [N]: clear breakpoint N (all when no N)"""
        if not arg:
            self.breakpoints.clear()
            self.say("cleared all breakpoints")
            return
        keep = [b for b in self.breakpoints if str(b.number) != arg]
        if len(keep) == len(self.breakpoints):
            self.say(f"*** no breakpoint {arg}")
        self.breakpoints = keep

    def do_watch(self, arg: str) -> None:
        """watch NAME: c and rc stop where NAME changes; watch alone lists"""
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
        """unwatch [NAME]: stop watching NAME (all when no NAME)"""
        self.watches = [w for w in self.watches if arg and w.text != arg]
        self.say("watches: " + (", ".join(w.text for w in self.watches) or "none"))

    # -- looking around ------------------------------------------------------------

    def do_w(self, arg: str) -> None:
        """w(here): the call stack; > marks the selected frame"""
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
        """u(p) [N]: select an outer frame"""
        self._select(-1, arg)

    def do_d(self, arg: str) -> None:
        """d(own) [N]: select an inner frame"""
        self._select(1, arg)

    @repeatable
    def do_l(self, arg: str) -> None:
        """l(ist) [FIRST[, LAST]]: source around the line; again to continue"""
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
        """ll (longlist): the whole source of the current function"""
        f = self.frame
        c = self.rec.codes.get(f.code)
        first = c[3] if c else f.line
        row = self.rec.q1("SELECT max(last_line) FROM nodes WHERE file = ? AND qualname = ?", (c[0], c[2])) if c else None
        last = row[0] if row and row[0] else f.line
        self.say(*source_window(self.rec, f.code, f.line, 0, 0, self.st, first, max(last, f.line)))

    def do_p(self, arg: str) -> None:
        """p [NAME | a.b | a[0] | a['k']]: a recorded value; p alone: every local

        A bare NAME (or path) prints it too, unless it is a command's name."""
        if not arg:
            self.say(*locals_lines(self.frame, self.st))
            return
        self.say(self.st.cut(value_text(lookup(self.frame, arg))))

    def do_pp(self, arg: str) -> None:
        """pp NAME: a recorded value, expanded as a tree"""
        if not arg:
            self.do_p(arg)
            return
        self.say(*pretty(lookup(self.frame, arg), self.st))

    def do_history(self, arg: str) -> None:
        """history NAME [STEP]: the values NAME took in this frame (from STEP on)

        A page at a time; the hint under it shows the next page."""
        if not arg:
            self.say("*** history takes a name: history NAME [STEP]")
            return
        name, since = arg, None
        parts = arg.rsplit(None, 1)
        if len(parts) == 2 and parts[1].isdigit():
            name, since = parts[0], int(parts[1])
        f = self.frame
        root = parse_path(name).root
        owners = self._frames_with(root)
        if f.frame not in owners:
            self._not_local(root, owners)
            return
        hist = history(self.rec, name, frame=f.frame, since=since)
        entries, more = hist.page(HISTORY_PAGE)
        if not entries:
            self.say(f"{name} never changed in {f.function}" + (f" from step {since} on" if since else ""))
            return
        self.say(*history_lines(entries, self.st))
        if more:
            self.say(self.st(f"{len(entries)} values shown; more: history {name} {entries[-1].step + 1}", "dim"))
        else:
            self.say(self.st(f"{len(entries)} value{'s' if len(entries) != 1 else ''}; goto STEP to see one", "dim"))

    def _frames_with(self, root: str) -> dict[int, str]:
        """The frames (number -> function) that ever bound ``root``."""
        nid = self.rec.name_ids().get(root)
        if nid is None:
            return {}
        rows = self.rec.q("SELECT DISTINCT frame FROM bindings WHERE name = ? LIMIT 21", (nid,))
        return {r[0]: self.rec.function(self.rec.frame_code(r[0])) for r in rows}

    def _not_local(self, root: str, owners: dict[int, str]) -> None:
        f = self.frame
        head = f"*** {root} is not a local of {f.function} (frame {f.frame})"
        if not owners:
            self.say(head, f"    no frame of this recording has a local {root}")
            return
        shown = list(owners.items())[:20]
        where_ = ", ".join(f"{fn} (frame {n})" for n, fn in shown) + (", …" if len(owners) > 20 else "")
        on_stack = [i for i, s in enumerate(self.state.stack) if s.frame in owners]
        if on_stack:
            hop = on_stack[-1] - self.selected
            how = f"{'d' if hop > 0 else 'u'} {abs(hop)} selects {self.state.stack[on_stack[-1]].function}"
        else:
            how = f"goto {self.rec.q1('SELECT min(step) FROM bindings WHERE frame = ?', (shown[0][0],))[0]} " \
                  f"reaches {shown[0][1]}"
        self.say(head, f"    it is one in: {where_}", f"    {how}")

    def do_events(self, arg: str) -> None:
        """events [N]: the N steps around this one (default 10)"""
        n = int(arg) if arg.isdigit() else 10
        since = max(self.rec.first_step, self.step - n // 2)
        evs = self.rec.events(since=since, limit=n + 1)
        self.say(*event_lines(evs, self.st, current=self.step))

    def do_json(self, arg: str) -> None:
        """json: the state at this step as JSON (the shape of escope replay --json)"""
        self.say(json.dumps(self.state.to_json(), indent=2, ensure_ascii=False))

    def do_help(self, arg: str) -> None:
        """h(elp) [COMMAND]: the list of commands, or one command's help"""
        if arg:
            fn = getattr(self, "do_" + arg, None)
            if fn is None or not fn.__doc__:
                self.say(f"*** no help for {arg!r}; type h for the list")
                return
            self.say(*(line.strip() for line in fn.__doc__.splitlines()))
            return
        self.say("commands (pdb's, plus their reverse twins); h COMMAND for more:")
        for fn in self._documented():
            self.say("  " + self.st.cut(fn.__doc__.splitlines()[0], self.st.width - 2))

    def _documented(self) -> list[Callable[..., Any]]:
        """Each command once (not its aliases), in the order of this class."""
        seen, out = set(), []
        for name, fn in vars(type(self)).items():
            if name.startswith("do_") and callable(fn) and fn.__doc__ and fn not in seen:
                seen.add(fn)
                out.append(getattr(self, name))
        return out

    def do_q(self, arg: str) -> bool:
        """q(uit): leave the session (also Ctrl-D)"""
        return True

    def do_EOF(self, arg: str) -> bool:
        return True

    # pdb's long names and aliases: the same methods under other names
    do_next = do_n
    do_step = do_s
    do_return = do_r
    do_cont = do_continue = do_c
    do_jump = do_j
    do_g = do_goto
    do_break = do_b
    do_clear = do_cl
    do_where = do_bt = do_w
    do_up = do_u
    do_down = do_d
    do_list = do_l
    do_longlist = do_ll
    do_h = do_help
    do_quit = do_exit = do_q
