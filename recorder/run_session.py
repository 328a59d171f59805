"""One run of recordings, the way every recording front end needs it.

The pytest plugin (one process, or an xdist controller and its workers, or
a recorded rerun of ``--escope-on-failure``) and ``escope run`` (one plain
program) do the same things around the recorder: create or join a run dir,
write the run's facts and one row per test to the run index, start a test's
recording and finish or discard it.  ``RunSession`` is the one place that
does them, so the run index is written the same way whoever writes it and
no front end runs SQL of its own.

It never imports pytest: what pytest knows (node ids, phases, outcomes) is
passed in as plain values.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .config import RecorderConfig
from .liveness import process_identity, process_key
from .runs import RunDir, RunIndex, is_storage_error, storage_error_of
from .session import Recorder, Recording

#: what a front end needs: the session, and how to tell a refused write
#: (disk full, read-only) from a recorder fault
__all__ = ["FinishedTest", "RunSession", "is_storage_error", "relative", "storage_error_of"]


def relative(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` (the run dir, the rootdir), as shown
    and as stored in the index; the path itself when on another drive."""
    p, b = os.fspath(path), os.fspath(base)
    if p.startswith(b + os.sep):  # a recording under the run dir: twice per test, relpath is slow
        return p[len(b) + 1:]
    try:
        return os.path.relpath(p, b)
    except ValueError:
        return str(path)


@dataclass
class FinishedTest:
    """What finishing one test's recording left behind."""

    events: int
    #: the recording's size in bytes (0 when discarded or not written)
    size: int = 0
    #: the recording's path relative to the run dir, None when none was kept
    recording: str | None = None
    #: why the file could not be written completely, None when it was
    write_error: BaseException | None = None


class RunSession:
    """A run dir, its index and the recorder that films into it.

    ``start`` makes a new run (an xdist controller, a plain session,
    ``escope run``); ``join`` writes into a run someone else started (an
    xdist worker, a recorded rerun).  Every write of the index goes through
    here, so a refused write (disk full, read-only dir) surfaces as the
    exception of the call that made it, for the caller to act on.
    """

    def __init__(self, run: RunDir, index: RunIndex) -> None:
        self.run = run
        self.index = index
        self.recorder: Recorder | None = None

    @classmethod
    def start(cls, escope_dir: Path, *, args: str, rootdir: Path, **facts: str) -> RunSession:
        """A new run: its dir, ``latest`` pointing at it, and the run's facts
        (``facts`` add to the ones every run has)."""
        run = RunDir.create(escope_dir)
        index = RunIndex(run.index_path)
        session = cls(run, index)
        session.set_facts({
            "run_id": run.run_id,
            "python": sys.version.split()[0],
            "platform": sys.platform,
            "args": args,
            "rootdir": str(rootdir),
            "started_unix_ns": str(time.time_ns()),
            **facts,
        })
        return session

    @classmethod
    def join(cls, escope_dir: Path, run_id: str) -> RunSession:
        """The run ``run_id`` that another process started."""
        run = RunDir(escope_dir, run_id)
        return cls(run, RunIndex(run.index_path))

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def path(self) -> Path:
        return self.run.path

    def set_facts(self, facts: dict[str, str]) -> None:
        self.index.set_run(facts)

    def mark_process(self, worker: str, attempt: int = 0) -> None:
        """This process's identity (host, pid, start time) under its worker's
        key: a reader calls the rows it left ``running`` crashed once that
        exact process is gone."""
        self.index.set_run({process_key(worker, attempt): process_identity()})

    def open_recorder(self, config: RecorderConfig) -> Recorder:
        """The process's recorder, with the run's node-index cache."""
        self.recorder = Recorder(config, self.run.cache_dir)
        return self.recorder

    # -- one test -------------------------------------------------------------

    def recording(self, test_id: str, *, worker: str, kind: str, attempt: int = 0, keep_in_memory: bool,
                  config: RecorderConfig | None = None) -> Recording:
        """A recording of ``test_id``, not started, at its place in the run."""
        assert self.recorder is not None, "open_recorder first"
        meta = {"test_id": test_id, "run_id": self.run.run_id, "worker": worker, "kind": kind}
        if attempt:
            meta["attempt"] = str(attempt)
        return self.recorder.recording(self.run.recording_path(test_id, attempt), meta,
                                       keep_in_memory=keep_in_memory, config=config)

    def start_test(self, test_id: str, *, worker: str, attempt: int, keep_in_memory: bool,
                   config: RecorderConfig | None, custom: Callable[[Any], Any] | None) -> Recording:
        """Start filming a test: its recording, a ``running`` row (a process
        that dies inside the test leaves it, and readers call it crashed),
        then the tracer.  When any of it fails nothing is left behind (no
        file, no row) and the exception is raised for the caller to judge."""
        rec: Recording | None = None
        indexed = False
        try:
            rec = self.recording(test_id, worker=worker, kind="test", attempt=attempt,
                                 keep_in_memory=keep_in_memory, config=config)
            rec.collector.renderer.custom = custom
            self.index.upsert_test({"test_id": test_id, "worker": worker, "outcome": "running",
                                    "recording": relative(rec.path, self.run.path), "started_ns": time.time_ns(),
                                    "attempt": attempt})
            indexed = True
            rec.start()
        except Exception:
            if rec is not None:
                try:
                    rec.discard()
                except Exception:
                    pass
            if indexed:
                try:
                    self.index.delete_test(test_id, worker, attempt)
                except Exception:
                    pass
            raise
        return rec

    def finish_test(self, rec: Recording, *, keep: bool, outcome: str, failure: str,
                    failure_step: int | None, phases: dict[str, str]) -> FinishedTest:
        """Write a stopped recording with its verdict (``keep``) or drop it.

        An exception of the write itself is raised; a write the file system
        refused part-way is ``write_error`` of the result, with whatever
        reached the file kept."""
        done = FinishedTest(events=rec.event_count)
        if not keep:
            rec.discard()
            return done
        meta = {"outcome": outcome, "failure": failure,
                "failure_step": "" if failure_step is None else str(failure_step)}
        for name, value in phases.items():
            meta[f"outcome_{name}"] = value
        done.size = rec.finish(meta)
        done.write_error = rec.write_error
        if done.write_error is None or rec.path.is_file():
            done.recording = relative(rec.path, self.run.path)
        return done

    def index_test(self, test_id: str, *, worker: str, outcome: str, phases: dict[str, str], duration_ns: int,
                   done: FinishedTest, dropped: int, failure: str | None, started_ns: int | None,
                   attempt: int = 0) -> None:
        """The test's row in the run index, once its recording is settled."""
        self.index.upsert_test({
            "test_id": test_id, "worker": worker, "outcome": outcome,
            "setup": phases.get("setup"), "call": phases.get("call"), "teardown": phases.get("teardown"),
            "duration_ns": duration_ns, "events": done.events, "dropped": dropped,
            "bytes": done.size, "recording": done.recording, "failure": failure,
            "started_ns": started_ns, "attempt": attempt,
        })

    def bytes_used(self) -> int:
        return self.index.bytes_used()

    # -- the end of the run ---------------------------------------------------

    def settle_running(self, attempt: int | None = None) -> None:
        """Tests still ``running`` (their process died inside them) are crashed."""
        self.index.settle_running(attempt)

    def settle_test(self, test_id: str, attempt: int) -> None:
        """One attempt at one test whose process died inside it is crashed."""
        self.index.settle_running(attempt, test_id)

    def attempt_row(self, test_id: str, attempt: int) -> dict[str, Any] | None:
        """The row of recorded rerun ``attempt`` of a test, as its process wrote it."""
        return self.index.attempt_row(test_id, attempt)

    def finish(self, facts: dict[str, str]) -> None:
        """The run is over: its end and ``facts`` written, and the index left
        as one file (an archive needs no ``-wal`` beside it)."""
        self.index.set_run({"finished_unix_ns": str(time.time_ns()), **facts})
        self.index.finish()

    def close_recorder(self) -> None:
        if self.recorder is not None:
            self.recorder.close()

    def close(self) -> None:
        self.index.close()
