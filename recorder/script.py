"""``escope run SCRIPT [ARGS]``: record a plain Python program.

The program gets a run of its own in the escope dir (``kind = script``),
so ``escope replay``, ``events``, ``history``... work on it exactly as on
a test.  It lives with the recorder, not the replayer: it films, through
the same ``RunSession`` as the pytest plugin, and ``replay/`` only reads
files.  The command line checks the arguments before calling it.
"""

from __future__ import annotations

import os
import runpy
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import IO

from .config import RecorderConfig
from .run_session import RunSession
from .session import default_backend


def run_script(path: Path, script: str, args: list[str], escope_dir: Path | None, out: IO[str]) -> int:
    """Run the program at ``path`` (an existing file; ``script`` is how the
    user named it) as ``__main__`` with ``args``, filmed; its exit status."""
    path = path.resolve()
    if escope_dir is None:
        env = os.environ.get("ESCOPE_DIR")
        escope_dir = Path(env) if env else Path.cwd() / ".escope"
    rootdir = Path.cwd().resolve()
    if path.parent != rootdir and rootdir not in path.parents:
        rootdir = path.parent
    backend = default_backend()
    session = RunSession.start(escope_dir, args=shlex.join(["escope", "run", script, *args]), rootdir=rootdir,
                               strategy="balanced", backend=backend, kind="script")
    test_id = os.path.relpath(path, rootdir)
    session.open_recorder(RecorderConfig(rootdir=rootdir, backend=backend, extra_excluded_dirs=(escope_dir,)))
    rec = session.recording(test_id, worker="main", kind="script", keep_in_memory=False)
    old_argv, old_path0 = sys.argv[:], sys.path[0] if sys.path else None
    sys.argv = [str(path), *args]
    sys.path.insert(0, str(path.parent))
    status = 0
    exc: BaseException | None = None
    outcome = "passed"
    started = time.perf_counter_ns()
    rec.collector.phase("call", True)
    rec.start()
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as e:
        code = e.code
        status = code if isinstance(code, int) else (0 if code is None else 1)
        if status:
            outcome = "failed"
    except BaseException as e:  # the program's own failure is the thing filmed
        exc = e
        status = 1
        outcome = "failed"
    finally:
        rec.stop()
        sys.argv = old_argv
        if sys.path and sys.path[0] == str(path.parent):
            del sys.path[0]
        if old_path0 is not None and (not sys.path or sys.path[0] != old_path0):
            sys.path.insert(0, old_path0)
    duration = time.perf_counter_ns() - started
    rec.collector.phase("call", False, outcome, duration)
    failure = ""
    failure_step = None
    if exc is not None:
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != str(path):
            tb = tb.tb_next  # hide runpy's frames: the program's traceback starts in the program
        traceback.print_exception(type(exc), exc, tb or exc.__traceback__)
        failure = rec.collector.renderer.message(exc)
        failure_step = rec.collector.failure_step(exc)
    elif outcome == "failed":
        failure = f"SystemExit: {status}"
    phases = {"call": outcome}
    done = session.finish_test(rec, keep=True, outcome=outcome, failure=failure, failure_step=failure_step,
                               phases=phases)
    session.index_test(test_id, worker="main", outcome=outcome, phases=phases, duration_ns=duration, done=done,
                       dropped=0, failure=failure or None, started_ns=rec.started_ns)
    session.finish({"exitstatus": str(status)})
    session.close()
    out.write(f"escope: recorded {done.events} events of {test_id} ({outcome}) in {rec.path}\n")
    out.write(f"replay it: escope replay {shlex.quote(str(rec.path))}\n")
    out.flush()
    return status
