"""``escope run SCRIPT [ARGS]``: record a plain Python program.

The program gets a run of its own in the escope dir (``kind = script``),
so ``escope replay``, ``events``, ``history``... work on it exactly as on
a test.  The recorder is imported here, lazily: the rest of ``replay``
only reads files.
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

from .errors import UsageError


def run_script(script: str, args: list[str], escope_dir: Path | None, out: IO[str]) -> int:
    from ..recorder.config import RecorderConfig
    from ..recorder.runs import RunDir, RunIndex
    from ..recorder.session import Recorder, default_backend

    path = Path(script)
    if not path.is_file():
        raise UsageError(f"no such script: {script}", fix="check the path: escope run SCRIPT [ARGS]")
    path = path.resolve()
    if escope_dir is None:
        env = os.environ.get("ESCOPE_DIR")
        escope_dir = Path(env) if env else Path.cwd() / ".escope"
    rootdir = Path.cwd().resolve()
    if path.parent != rootdir and rootdir not in path.parents:
        rootdir = path.parent
    run = RunDir.create(escope_dir)
    index = RunIndex(run.index_path)
    backend = default_backend()
    index.set_run({"run_id": run.run_id, "python": sys.version.split()[0], "platform": sys.platform,
                   "args": shlex.join(["escope", "run", script, *args]), "rootdir": str(rootdir),
                   "started_unix_ns": str(time.time_ns()), "strategy": "balanced", "backend": backend,
                   "kind": "script"})
    test_id = os.path.relpath(path, rootdir)
    recorder = Recorder(RecorderConfig(rootdir=rootdir, backend=backend, extra_excluded_dirs=(escope_dir,)),
                        run.cache_dir)
    rec_path = run.recording_path(test_id)
    rec = recorder.recording(rec_path, {"test_id": test_id, "run_id": run.run_id, "kind": "script",
                                        "worker": "main"}, keep_in_memory=False)
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
    events = rec.event_count
    size = rec.finish({"outcome": outcome, "failure": failure,
                       "failure_step": "" if failure_step is None else str(failure_step),
                       "outcome_call": outcome})
    index.upsert_test({"test_id": test_id, "worker": "main", "outcome": outcome, "call": outcome,
                       "duration_ns": duration, "events": events, "dropped": 0, "bytes": size,
                       "recording": os.path.relpath(rec_path, run.path), "failure": failure or None,
                       "started_ns": rec.started_ns})
    index.set_run({"finished_unix_ns": str(time.time_ns()), "exitstatus": str(status)})
    index.finish()
    index.close()
    out.write(f"escope: recorded {events} events of {test_id} ({outcome}) in {rec_path}\n")
    out.write(f"replay it: escope replay {shlex.quote(str(rec_path))}\n")
    out.flush()
    return status
