"""The ``escope`` command line.

Every command reads recording files only (``escope run`` is the one that
records: it calls the recorder's script runner, imported lazily).  Any
``EscopeError`` becomes one line ``escope: error: ...`` on stderr and exit
status 2, as do usage errors; no traceback reaches the user.  Commands that other modules add
(``pack``, ``export``, ``gc``) register through ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import IO, Any, Callable, Iterable, NoReturn, Sequence

import apsw

from .errors import AmbiguousTestError, EscopeError, UsageError
from .history import PAGE as HISTORY_PAGE
from .recording import Recording
from .render import (Style, event_lines, flow_lines, history_lines, run_lines, stats_lines, stop_display,
                     term_width, use_colour)
from .runs import NOT_PASSED, find_escope_dir, list_run_ids, read_run, resolve_run
from .state import JSON_SCHEMA_VERSION
from .values import parse_path

EXIT_ERROR = 2

#: Events ``escope events`` prints as text when no --limit is given.
EVENTS_PAGE = 50


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"escope: error: {message}; see: {self.prog} --help\n")
        raise SystemExit(EXIT_ERROR)


class Context:
    """What every command gets: parsed arguments and the output style."""

    def __init__(self, args: argparse.Namespace, out: IO[str]) -> None:
        self.args = args
        self.out = out
        self.st = Style(use_colour(out) and not getattr(args, "no_color", False), term_width(out))

    def say(self, *lines: str) -> None:
        for line in lines:
            self.out.write(line + "\n")

    def hint(self, label: str, command: str) -> None:
        """The next command to run: one line when it fits the width, else two
        (the command itself is never cut: it must work when pasted)."""
        line = f"{label}: {command}"
        self.say(line if len(line) <= self.st.width else f"{label}:\n  {command}")

    def carry(self) -> str:
        """``--run`` and ``--escope-dir`` as the user gave them, for a hint:
        the next command must open the same run."""
        out = ""
        for flag, attr in (("--run", "run"), ("--escope-dir", "escope_dir")):
            value = getattr(self.args, attr, None)
            if value:
                out += f" {flag} {shlex.quote(str(value))}"
        return out

    def test_ref(self, rec: Recording, typed: str | None = None) -> str:
        """How a hint names the test: the recording path the user typed (a
        test id could resolve to another run's recording), else its id."""
        if typed is not None and rec.entry is None:
            return shlex.quote(typed)
        return shlex.quote(rec.test_id)

    def json(self, data: Any) -> None:
        self.out.write(json.dumps(data, indent=2, ensure_ascii=False, default=_jsonable) + "\n")

    def json_list(self, items: Iterable[dict[str, Any]]) -> None:
        """A list output (``events``, ``history``): one item per line.  The
        same JSON as ``json()``, only laid out so that the json module's C
        encoder does the work (with ``indent`` it encodes in Python, several
        times slower on a long list), written as it goes."""
        write = self.out.write
        encode = json.JSONEncoder(ensure_ascii=False, default=_jsonable).encode
        first = True
        for item in items:
            write(("[\n  " if first else ",\n  ") + encode(item))
            first = False
        write("[]\n" if first else "\n]\n")

    @property
    def escope_dir(self) -> Path | None:
        d = getattr(self.args, "escope_dir", None)
        return find_escope_dir(d) if d else None

    def open(self, test: str | None) -> Recording:
        d = getattr(self.args, "escope_dir", None)
        return Recording.open(test, run=getattr(self.args, "run", None), escope_dir=d)


def _jsonable(value: Any) -> Any:
    """What JSON cannot hold, as text: a crafted recording can put a blob in
    any column, and a blob is data to show, never a reason for a traceback."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _common(p: argparse.ArgumentParser, *, test: bool = True, json_opt: bool = True) -> None:
    if test:
        p.add_argument("test", nargs="?", metavar="TEST",
                       help="test node id, a unique part of one, or a recording path "
                            "(default: the first failed test of the latest run)")
    p.add_argument("--run", default=argparse.SUPPRESS, metavar="RUN", help="run id, run directory or archive")
    p.add_argument("--escope-dir", default=argparse.SUPPRESS, metavar="DIR", help="escope directory")
    if json_opt:
        p.add_argument("--json", action="store_true", help="print JSON (see: escope help json)")
    p.add_argument("--no-color", action="store_true", default=argparse.SUPPRESS, help="never use colour")


# -- commands ------------------------------------------------------------------

def cmd_list(ctx: Context) -> int:
    a = ctx.args
    base = ctx.escope_dir
    if a.all and not getattr(a, "run", None):
        base = base or find_escope_dir()
        assert base is not None
        runs = [read_run(base / "runs" / i) for i in list_run_ids(base)]
        if not runs:
            raise UsageError(f"no runs in {base}", fix="record a run with: pytest --escope")
    else:
        runs = [resolve_run(getattr(a, "run", None), base)]
    if a.json:
        ctx.json({"schema_version": JSON_SCHEMA_VERSION, "runs": [
            {"run": r.run_id, "path": str(r.path), "facts": r.facts,
             "tests": [t.to_json() for t in r.tests if not a.failed or t.outcome in NOT_PASSED]}
            for r in reversed(runs)]})
        return 0
    for r in reversed(runs):
        ctx.say(*run_lines(r, ctx.st, failed_only=a.failed))
    if not a.all and runs[0].newer_empty:
        ctx.say(ctx.st(ctx.st.cut(f"newer runs without tests, passed over: {', '.join(runs[0].newer_empty)}"),
                       "dim"))
    # the newest run's first failure; a run that is not the latest is named
    failed = [(r, t) for r in reversed(runs) for t in r.failed() if t.recording]
    if failed:
        run, test = failed[0]
        pick = ctx.carry() if not a.all or getattr(a, "run", None) else \
            (f" --run {run.run_id}" if run.run_id != runs[-1].run_id else "") + ctx.carry()
        ctx.hint("replay a failure", f"escope replay {shlex.quote(test.test_id)}{pick}")
    elif not a.all:
        ctx.say(f"no failed test recorded; older runs: escope list --all{ctx.carry()}")
    return 0


def _start_step(rec: Recording, a: argparse.Namespace) -> tuple[int, int | None]:
    """(step to start at, failure step) from --step/--at-failure/--at/--at-time."""
    fail = rec.failure()
    fstep = fail.step if fail else None
    if a.step is not None:
        return rec.check_step(a.step), fstep
    if a.at is not None:
        from .seek import first_step_at_node
        return first_step_at_node(rec, a.at), fstep
    if a.at_time is not None:
        from .seek import step_at_time
        return step_at_time(rec, a.at_time), fstep
    if fstep is not None:
        return fstep, fstep
    rec.check_step(rec.first_step)
    return rec.first_step, None


def cmd_replay(ctx: Context) -> int:
    a = ctx.args
    with ctx.open(a.test) as rec:
        step, fstep = _start_step(rec, a)
        if a.json:
            ctx.json(rec.state_at(step).to_json())
            return 0
        if a.print_state:
            ctx.say(*stop_display(rec, rec.state_at(step), ctx.st, None, fstep))
            ctx.hint("explore it", f"escope replay {ctx.test_ref(rec, a.test)} --step {step}{ctx.carry()}")
            return 0
        from .interactive import Session
        return Session(rec, step, ctx.out, ctx.st, fstep).run(sys.stdin)


def cmd_events(ctx: Context) -> int:
    a = ctx.args
    with ctx.open(a.test) as rec:
        if a.limit is not None and a.limit < 0:
            raise UsageError("--limit must be 0 or more", fix="0 lists every event")
        # 0 is every event; text shows a page of 50 unless told otherwise
        limit = a.limit if a.limit is not None else (0 if a.json else EVENTS_PAGE)
        evs = rec.events(kind=a.kind, frame=a.frame, thread=a.thread, task=a.task, node=a.node,
                         since=a.since, until=a.until, limit=limit or None, function=a.function)
        if a.json:
            ctx.json_list(e.to_json() for e in evs)
            return 0
        if not evs:
            ctx.say("no events match; loosen the filters (see: escope events --help)")
            return 0
        ctx.say(*event_lines(evs, ctx.st))
        test = ctx.test_ref(rec, a.test)
        if limit and len(evs) >= limit:
            filters = "".join(f" {flag} {shlex.quote(str(value))}" for flag, value in (
                ("--kind", a.kind), ("--frame", a.frame), ("--function", a.function), ("--thread", a.thread),
                ("--task", a.task), ("--node", a.node), ("--until", a.until), ("--limit", a.limit))
                if value is not None)
            ctx.hint("more", f"escope events {test}{filters} --since {evs[-1].step + 1}{ctx.carry()}")
        else:
            ctx.hint("see a step", f"escope replay {test} --step {evs[-1].step}{ctx.carry()}")
    return 0


def cmd_history(ctx: Context) -> int:
    a = ctx.args
    if len(a.names) == 1:
        test, name = None, a.names[0]
    elif len(a.names) == 2:
        test, name = a.names
    else:
        raise UsageError("history takes TEST and NAME", fix="e.g. escope history test_x.py::test_y total")
    if a.limit is not None and a.limit < 0:
        raise UsageError("--limit must be 0 or more", fix="0 lists every value")
    with ctx.open(test) as rec:
        hist = rec.history(name, frame=a.frame, since=a.since)
        limit = HISTORY_PAGE if a.limit is None else a.limit
        if limit == 0:
            entries, more = list(hist), False
        else:
            entries, more = hist.page(limit)
        again = f"escope history {ctx.test_ref(rec, test)} {shlex.quote(name)}" + (
            f" --frame {a.frame}" if a.frame is not None else "") + (
            f" --limit {a.limit}" if a.limit else "") + ctx.carry()
        if a.json:
            ctx.json_list(e.to_json() for e in entries)
            if more:
                sys.stderr.write(f"escope: the first {len(entries)} values; more: {again} --json "
                                 f"--since {entries[-1].step + 1} (every value: --limit 0)\n")
            return 0
        if not entries:
            since = f" from step {a.since} on" if a.since is not None else ""
            ctx.say(f"{name} was never bound in {rec.test_id}{since}")
            return 0
        ctx.say(*history_lines(entries, ctx.st))
        if more:
            root = parse_path(name).root
            since = f" from step {a.since}" if a.since is not None else ""
            ctx.say(ctx.st.cut(f"{len(entries)} values shown; {root} was bound {hist.bindings():,} times{since}; "
                               f"all: --limit 0"))
            ctx.hint("more", f"{again} --since {entries[-1].step + 1}")
        else:
            ctx.hint(f"{len(entries)} value{'s' if len(entries) != 1 else ''}; see one",
                     f"escope replay {ctx.test_ref(rec, test)} --step {entries[-1].step}{ctx.carry()}")
    return 0


def cmd_flow(ctx: Context) -> int:
    with ctx.open(ctx.args.test) as rec:
        data = rec.flow()
        if ctx.args.json:
            ctx.json(data)
            return 0
        ctx.say(*flow_lines(data, ctx.st))
        if data["calls"]:
            callee = shlex.quote(data["calls"][0]["callee"])
            ctx.hint("one function's events",
                     f"escope events {ctx.test_ref(rec, ctx.args.test)} --frame {callee}{ctx.carry()}")
    return 0


def cmd_stats(ctx: Context) -> int:
    with ctx.open(ctx.args.test) as rec:
        data = rec.stats()
        if ctx.args.json:
            ctx.json(data)
            return 0
        ctx.say(*stats_lines(data, ctx.st))
        ctx.hint("replay it", f"escope replay {ctx.test_ref(rec, ctx.args.test)}{ctx.carry()}")
    return 0


def cmd_help(ctx: Context) -> int:
    from .topics import SUMMARY, TOPICS
    topic = ctx.args.topic
    if topic is None:
        ctx.say("escope help TOPIC:")
        for name, what in SUMMARY.items():
            ctx.say(f"  {name:<10} {what}")
        ctx.say("escope help COMMAND (the same as escope COMMAND --help):")
        ctx.say("  " + " ".join(n for n in COMMANDS if n != "help"))
        return 0
    if topic in TOPICS:
        ctx.say(TOPICS[topic]())
        return 0
    if topic in COMMANDS:
        build_parser().parse_args([topic, "--help"])  # prints it and exits 0
    raise UsageError(f"no help topic {topic!r}",
                     fix=f"topics: {', '.join(TOPICS)}; or a command: {', '.join(n for n in COMMANDS if n != 'help')}")


def cmd_run(ctx: Context) -> int:
    script = ctx.args.script
    if not Path(script).is_file():
        raise UsageError(f"no such script: {script}", fix="check the path: escope run SCRIPT [ARGS]")
    # the one command that films: the recorder is imported for it alone
    from ..recorder.script import run_script
    return run_script(Path(script), script, ctx.args.script_args, ctx.escope_dir, ctx.out)


Command = tuple[Callable[[argparse._SubParsersAction], argparse.ArgumentParser], Callable[[Context], int]]
#: name -> (add the subparser, run the command); other modules may add entries.
COMMANDS: dict[str, Command] = {}


def _add_list(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("list", help="runs and their tests")
    _common(p, test=False)
    p.add_argument("--failed", action="store_true", help="only failed tests")
    p.add_argument("--all", action="store_true", help="every run, not just the latest")
    return p


def _add_replay(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("replay", help="time-travel through a test (interactive), or print the state at a step")
    _common(p)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--step", type=_int, metavar="N", help="the state at step N")
    where.add_argument("--at-failure", action="store_true", help="the state where the test failed (default)")
    where.add_argument("--at", metavar="NODE_ID", help="the first step at a statement (node id or unique part)")
    where.add_argument("--at-time", type=_int, metavar="NS", help="the last step at or before NS ns")
    p.add_argument("--print", dest="print_state", action="store_true", help="print the state as text and exit")
    return p


def _add_events(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("events", help="the film's events, filtered")
    _common(p)
    p.add_argument("--kind", metavar="K", help="call, line, return, exception, handled, unwind, yield, "
                                               "resume, checkpoint (comma-separated)")
    p.add_argument("--frame", metavar="F", help="a frame number or a function name")
    p.add_argument("--function", metavar="NAME", help="a function (qualified) name")
    p.add_argument("--thread", metavar="T", help="thread name or number")
    p.add_argument("--task", metavar="T", help="asyncio task name or number")
    p.add_argument("--node", metavar="N", help="node id (or a unique part of one)")
    p.add_argument("--since", type=_int, metavar="S", help="first step")
    p.add_argument("--until", type=_int, metavar="S", help="last step")
    p.add_argument("--limit", type=_int, metavar="N", help=f"at most N events (text default {EVENTS_PAGE}; 0 = all)")
    return p


def _add_history(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("history", help="every value a variable took")
    _common(p, test=False)
    p.add_argument("names", nargs="+", metavar="[TEST] NAME", help="the test (optional) and NAME or a.b[0]")
    p.add_argument("--frame", type=_int, metavar="F", help="only this frame number")
    p.add_argument("--since", type=_int, metavar="S", help="only the values from step S on")
    p.add_argument("--limit", type=_int, metavar="N", help=f"values per page (default {HISTORY_PAGE}; a page never splits a step; 0 = all)")
    return p


def _add_flow(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("flow", help="who called whom, how often; threads and tasks")
    _common(p)
    return p


def _add_stats(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("stats", help="events, kinds, sizes, node share")
    _common(p)
    return p


def _add_help(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("help", help="a help topic (test, session, json) or a command's --help")
    p.add_argument("topic", nargs="?", metavar="TOPIC")
    return p


def _add_run(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("run", help="record a plain Python program")
    p.add_argument("--escope-dir", default=argparse.SUPPRESS, metavar="DIR", help="escope directory")
    p.add_argument("script", metavar="SCRIPT")
    p.add_argument("script_args", nargs=argparse.REMAINDER, metavar="ARGS")
    return p


COMMANDS.update({
    "list": (_add_list, cmd_list), "replay": (_add_replay, cmd_replay), "events": (_add_events, cmd_events),
    "history": (_add_history, cmd_history), "flow": (_add_flow, cmd_flow), "stats": (_add_stats, cmd_stats),
    "run": (_add_run, cmd_run), "help": (_add_help, cmd_help),
})

#: What every --help ends with: docs/ is not installed with the package.
EPILOG = "more: escope help TOPIC (test, session, json), escope help COMMAND"


def version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version as dist_version
        return dist_version("pytest-escope")
    except (ImportError, PackageNotFoundError):
        return "unknown (not installed)"


#: Commands that live in modules of their own: command -> (module, add, run).
EXTENSIONS = {"pack": ("archive", "add_pack", "cmd_pack"), "export": ("film", "add_export", "cmd_export"),
              "gc": ("retention", "add_gc", "cmd_gc"), "diff": ("diff", "add_diff", "cmd_diff"),
              "dap": ("dap_server", "add_dap", "cmd_dap")}


def _load_extensions(command: str | None = None) -> None:
    """Import the module of ``command`` alone when it is an extension, none
    when it is a built-in one, every one otherwise (``--help``, a typo):
    ``escope replay`` starts without importing the diff, the DAP server or
    the HTML film (tens of milliseconds at every start)."""
    import importlib
    if command in COMMANDS and command not in EXTENSIONS and command != "help":
        return
    for name, (module, add, run) in EXTENSIONS.items():
        if command is None or command == name or command not in EXTENSIONS:
            mod = importlib.import_module(f".{module}", __package__)
            COMMANDS.setdefault(name, (getattr(mod, add), getattr(mod, run)))


class _Version(argparse.Action):
    """``--version``, whose text is looked up only when asked for
    (importlib.metadata costs some 15 ms at every start)."""

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any) -> None:
        sys.stdout.write(f"escope (pytest-escope) {version()}\n")
        parser.exit()


def _command_word(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (None: none, as for ``--help``)."""
    it = iter(argv)
    for arg in it:
        if arg in ("--escope-dir", "--run"):
            next(it, None)
        elif not arg.startswith("-"):
            return arg
        elif arg in ("-h", "--help", "--version"):
            return None
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    _load_extensions(_command_word(sys.argv[1:] if argv is None else argv))
    parser = _Parser(prog="escope", description="Replay pytest-escope recordings forward and backward.",
                     epilog=EPILOG)
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    parser.add_argument("--escope-dir", metavar="DIR", help="escope directory (default: .escope here or above, "
                                                            "or $ESCOPE_DIR)")
    parser.add_argument("--run", metavar="RUN", help="run id, run directory or archive (default: latest)")
    parser.add_argument("--no-color", action="store_true", help="never use colour")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (add, _run) in COMMANDS.items():
        p = add(sub)
        if p.epilog is None:
            p.epilog = EPILOG
    return parser


def _one_line(text: str) -> str:
    """A message that stays one line on any terminal: a damaged file's own
    bytes (control characters, line separators) can reach an error text."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_ERROR
    ctx = Context(args, sys.stdout)
    try:
        return COMMANDS[args.command][1](ctx)
    except AmbiguousTestError as exc:
        sys.stderr.write(f"escope: error: {exc.message()}:\n")
        for c in exc.candidates:
            sys.stderr.write(f"  {c}\n")
        return EXIT_ERROR
    except EscopeError as exc:
        sys.stderr.write(f"escope: error: {_one_line(exc.message())}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("escope: interrupted\n")
        return 130
    except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError, OverflowError, RecursionError,
            MemoryError, apsw.Error) as exc:
        # A well-formed recording never gets here; a crafted or damaged one
        # (text in an integer column, a blob for a line number) can reach
        # any query.  One line and exit status 2, never a traceback, as for
        # every error the replayer reports; ESCOPE_DEBUG=1
        # re-raises for whoever is debugging the replayer itself.
        if os.environ.get("ESCOPE_DEBUG"):
            raise
        what = _one_line(str(exc).splitlines()[0][:160]) if str(exc) else ""
        sys.stderr.write(f"escope: error: the recording is damaged or not from pytest-escope "
                         f"({type(exc).__name__}: {what}); re-run the test (ESCOPE_DEBUG=1 shows the traceback)\n")
        return EXIT_ERROR
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
