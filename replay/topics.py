"""``escope help [TOPIC]``: the reference an installed user has at hand.

The docs/ pages live in the repository, not in the installed package, so
what a user needs to read next is printed by ``escope help TOPIC``; the
``--help`` footers point here.  ``escope help COMMAND`` is that command's
``--help``; ``escope help session`` is built from the interactive
session's own command docstrings, so it cannot drift from them.
"""

from __future__ import annotations

from typing import Callable

TEST = """\
TEST: which recording a command opens

  (nothing)          the first failed test of the latest run that has tests
  a full node id     test_invoice.py::test_late_fee
  a unique part      late_fee  (several matches: they are listed, pick one)
  a recording path   a path ending in .sqlite, or any path that exists
                     (one that is not a recording is refused, never taken
                     for a part of a test id; only an exact test id wins,
                     as for the scripts escope run records)

  --run RUN          look in another run: a run id (or a unique prefix of
                     one), a run directory, or an archive from escope pack
  --escope-dir DIR   the .escope directory (default: .escope here or in a
                     parent directory, or $ESCOPE_DIR)

  escope list [--all] shows the runs and their tests."""

JSON = """\
--json: machine-readable output (schema_version 2)

  escope replay TEST --json   the state at a step: test, step, time_ns,
                              kind, thread, task, node, stack (function,
                              file, line, node, frame, locals), exception,
                              value (a return, yield or checkpoint value)
  escope events TEST --json   a list of events, oldest first: step, time_ns,
                              kind, thread, task, function, file, line,
                              node; args (call) and value (return...)
  escope history TEST NAME --json
                              a list of {step, node, function, frame, value}
  escope list/flow/stats --json
                              objects with a schema_version
  escope diff A B --json      a, b (recording, outcome), first_divergence
                              (kind control/value/none; a and b: step,
                              node, function, file, line; names: NAME ->
                              {a, b} value forms), divergences

  Every value is a value form: {"type", "repr"} plus "len", "items",
  "entries", "fields", "args" when it has them, and "truncated",
  "redacted", "unrenderable" when true.  Fields may be added within a
  schema_version, never removed or renamed.

  Python: from pytest_escope.replay import Recording; Recording.open(TEST)
  returns the same shapes through .state_at(step), .events(...),
  .history(name), .flow(), .failure()."""


def _session() -> str:
    from .interactive import Session
    lines = ["escope replay TEST: the interactive session, pdb's commands and their reverse", ""]
    for name, fn in vars(Session).items():
        if name.startswith("do_") and callable(fn) and fn.__doc__ and fn.__name__ == name:
            doc = [d.strip() for d in fn.__doc__.strip().splitlines()]
            lines.append("  " + doc[0])
            lines += ["      " + d for d in doc[1:] if d]
    repeat = " ".join(n[3:] for n, fn in vars(Session).items()
                      if n.startswith("do_") and fn.__name__ == n and getattr(fn, "repeatable", False))
    lines += ["", f"  Enter repeats {repeat}; a bare local name prints its value.",
              "  On a terminal: line editing; Tab completes commands and local names; Up and",
              "  Down walk the history kept in ~/.escope_history ($ESCOPE_HISTORY); Ctrl-C",
              "  drops the line."]
    return "\n".join(lines)


TOPICS: dict[str, Callable[[], str]] = {
    "test": lambda: TEST,
    "session": _session,
    "json": lambda: JSON,
}

SUMMARY = {
    "test": "which recording TEST, --run and --escope-dir open",
    "session": "the interactive session's commands (escope replay)",
    "json": "the shapes --json prints, and the Python API",
}
