"""One recording from start to file: collector + backend + writer.

``Recorder`` lives for a whole process (it holds the scope decisions and the
node index cache); ``Recording`` lives for one test or one script.
"""

from __future__ import annotations

# Bound at import: a test that monkeypatches builtins must not reach the recorder.
from builtins import bool, dict, hasattr, int, len, max, str, sum  # noqa: A004

import os
import platform
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Callable

from . import schema
from .collector import Collector
from .config import RecorderConfig
from .flusher import FLUSHER
from .liveness import process_identity
from .nodes import NodeIndexCache
from .runs import is_storage_error
from .scope import Scope
from .store import RecordingWriter


def default_backend() -> str:
    return "monitoring" if hasattr(sys, "monitoring") else "settrace"


class Recorder:
    """Process-wide recorder state shared by every recording."""

    def __init__(self, config: RecorderConfig, cache_dir: Path | None) -> None:
        self.config = config
        self.cache = NodeIndexCache(cache_dir)
        self.scope = Scope(config, self.cache)
        self.fault_counts: dict[str, int] = {}
        self.current: Recording | None = None
        #: Test-only fault injection (docs/reliability.md, "ESCOPE_TEST_FAULT"),
        #: read once, here: ``render``, ``event``, ``write`` or ``start`` makes
        #: that part of the recorder raise on purpose, so the tests can prove a
        #: recorder fault is counted, warned once and never changes an outcome.
        self.test_fault = os.environ.get("ESCOPE_TEST_FAULT", "")
        #: the process this recorder films; a forked child is another one
        self.pid = os.getpid()
        _recorders.add(self)

    @property
    def forked(self) -> bool:
        """True in a child forked while this recorder existed: it films nothing."""
        return self.pid != os.getpid()

    def _after_fork_in_child(self) -> None:
        rec = self.current
        self.current = None
        if rec is not None:
            rec._forget_in_child()

    def close(self) -> None:
        """No more recordings in this session: the interpreter is left as it
        was found (the monitoring backend keeps its global events on from
        one recording to the next)."""
        monitoring = sys.modules.get(__package__ + ".monitoring")
        if monitoring is not None:
            monitoring.release()

    def recording(self, path: Path, meta: dict[str, str], *, keep_in_memory: bool,
                  config: RecorderConfig | None = None) -> "Recording":
        cfg = config or self.config
        scope = self.scope if cfg is self.config else Scope(cfg, self.cache)
        return Recording(self, cfg, scope, path, meta, keep_in_memory=keep_in_memory)


class Recording:
    """Films one test; ``stop`` then ``finish`` (or ``discard``)."""

    def __init__(self, recorder: Recorder, config: RecorderConfig, scope: Scope, path: Path,
                 meta: dict[str, str], *, keep_in_memory: bool) -> None:
        self.recorder = recorder
        self.config = config
        self.path = path
        self.meta = meta
        self.keep_in_memory = keep_in_memory
        self.writer: RecordingWriter | None = None
        backend = config.backend or default_backend()
        self.collector = Collector(config, scope, self._sink)
        self.test_fault = recorder.test_fault
        if self.test_fault == "render":
            self.collector.renderer.inject_fault = True
        elif self.test_fault == "event":
            self.collector.inject_fault = True
        if backend == "monitoring":
            from .monitoring import MonitoringBackend
            self.backend: Any = MonitoringBackend(self.collector)
        else:
            from .settrace import SettraceBackend
            self.backend = SettraceBackend(self.collector)
        self.backend_name = backend
        self.started_ns = time.time_ns()
        self.running = False
        self.stopped_at: int | None = None
        #: why the file could not be written (set by ``finish``), or None
        self.write_error: BaseException | None = None
        #: set in a forked child: this object belongs to the parent's film
        self.forgotten = False

    # -- lifecycle -----------------------------------------------------------

    def _writer(self) -> RecordingWriter:
        if self.writer is None:
            meta = dict(self.meta)
            meta.update(self._static_meta())
            self.writer = RecordingWriter(self.path, meta, self.collector.renderer, self.config.max_events)
            if self.test_fault == "write":
                # shadows the method on this one writer: store.py keeps no test hook
                self.writer._write_chunk = _injected_write  # type: ignore[method-assign]
        return self.writer

    def _sink(self, chunk: dict[str, Any]) -> None:
        self._writer().put(chunk)

    def _static_meta(self) -> dict[str, str]:
        return {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "backend": self.backend_name,
            # which per-event callbacks filmed it: the compiled ones (_hotpath.c) or Python's
            "callbacks": "compiled" if getattr(self.backend, "compiled", False) else "python",
            "strategy": self.config.strategy,
            "rootdir": str(self.config.rootdir),
            "started_unix_ns": str(self.started_ns),
            "pid": str(os.getpid()),
            "process": process_identity(),
        }

    def start(self) -> None:
        if self.test_fault == "start":
            raise RuntimeError("injected fault (ESCOPE_TEST_FAULT=start)")
        if self.recorder.forked:
            raise RuntimeError("a forked child records nothing")
        self.recorder.scope.refresh()
        self.collector.active = True  # ``stop`` cleared it: a recording may start again
        self.backend.start()
        self.running = True
        self.recorder.current = self
        if self.config.flush_seconds > 0:
            self.collector.flushable = True
            FLUSHER.add(self.collector)

    def pause(self) -> None:
        self.collector.active = False

    def resume(self) -> None:
        self.collector.active = True

    def stop(self) -> None:
        if self.running:
            self.running = False
            col = self.collector
            col.active = False
            col.flushable = False
            FLUSHER.remove(col)
            with col._spill_lock:
                pass  # a flush under way has handed its chunk to the writer
            try:
                self.backend.stop()
            finally:
                if self.recorder.current is self:
                    self.recorder.current = None

    @property
    def event_count(self) -> int:
        return self.collector.step_count()

    def must_write(self) -> bool:
        return self.collector.spilled or self.writer is not None

    def finish(self, final_meta: dict[str, str]) -> int:
        """Write everything left and close the file; returns its size."""
        if self.forgotten:
            return 0
        self.stop()
        col = self.collector
        col.spill_last()
        total = col.base
        meta = dict(final_meta)
        dropped = max(0, total - self.config.max_events) if self.config.max_events else 0
        meta.update({
            "complete": "1",
            "event_count": str(total),
            "dropped_events": str(dropped),
            "first_step": str(dropped),
            "finished_unix_ns": str(time.time_ns()),
            "recorder_faults": str(sum(col.faults.values()) + col.renderer.faults),
            "threads": str(len(col.threads)),
        })
        writer = self._writer()
        writer.close(meta)
        self.write_error = writer.error
        if writer.error is not None and not is_storage_error(writer.error):
            # a full or read-only escope dir is not a recorder fault: the
            # caller sees ``write_error`` and stops recording
            col.fault(f"writing the recording failed: {writer.error}")
        if writer.error is not None and writer.events_written == 0:
            # no event reached the file: an empty, incomplete recording would
            # replay as a crash that ran no code; a partial one is kept
            self._unlink()
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def discard(self) -> None:
        """A passing test under --escope-keep=failed: leave nothing behind."""
        if self.forgotten:
            return
        self.stop()
        if self.writer is not None:
            self.writer.abandon()
            self._unlink()
        self.collector.clear()

    def _forget_in_child(self) -> None:
        """Runs in a child just forked from a filming process (``os.fork``,
        multiprocessing's ``fork`` context).  The file, the writer and its
        SQLite connection are the parent's: the child must not create, write,
        close or unlink any of them (its writer would create the file first
        and the parent's ``O_EXCL`` open would fail).  The writer thread does
        not exist in the child (fork copies only the calling thread), so
        nothing may be handed to it.  The tracer is switched off, so the
        child runs unfilmed."""
        self.forgotten = True
        self.running = False
        col = self.collector
        col.active = False
        col.flushable = False
        col.sink = _drop_chunk
        self.writer = None
        try:
            self.backend.stop()
        except Exception:
            pass

    def _unlink(self) -> None:
        for suffix in ("", "-journal"):
            try:
                os.unlink(str(self.path) + suffix)
            except OSError:
                pass


def _drop_chunk(chunk: dict[str, Any]) -> None:
    pass


#: every Recorder of this process, for the fork handler below
_recorders: "weakref.WeakSet[Recorder]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for recorder in list(_recorders):
        try:
            recorder._after_fork_in_child()
        except Exception:
            pass


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _injected_write(db: Any, chunk: dict[str, Any]) -> None:
    raise RuntimeError("injected fault (ESCOPE_TEST_FAULT=write)")
