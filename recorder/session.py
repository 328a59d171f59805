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
from pathlib import Path
from typing import Any, Callable

from . import schema
from .collector import Collector
from .config import RecorderConfig
from .nodes import NodeIndexCache
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

    # -- lifecycle -----------------------------------------------------------

    def _writer(self) -> RecordingWriter:
        if self.writer is None:
            meta = dict(self.meta)
            meta.update(self._static_meta())
            self.writer = RecordingWriter(self.path, meta, self.collector.renderer, self.config.max_events)
        return self.writer

    def _sink(self, chunk: dict[str, Any]) -> None:
        self._writer().put(chunk)

    def _static_meta(self) -> dict[str, str]:
        return {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "backend": self.backend_name,
            "strategy": self.config.strategy,
            "rootdir": str(self.config.rootdir),
            "started_unix_ns": str(self.started_ns),
            "pid": str(os.getpid()),
        }

    def start(self) -> None:
        self.recorder.scope.refresh()
        self.backend.start()
        self.running = True
        self.recorder.current = self

    def pause(self) -> None:
        self.collector.active = False

    def resume(self) -> None:
        self.collector.active = True

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.collector.active = False
            try:
                self.backend.stop()
            finally:
                if self.recorder.current is self:
                    self.recorder.current = None

    @property
    def event_count(self) -> int:
        return self.collector.base + len(self.collector.events)

    def must_write(self) -> bool:
        return self.collector.spilled or self.writer is not None

    def finish(self, final_meta: dict[str, str]) -> int:
        """Write everything left and close the file; returns its size."""
        self.stop()
        col = self.collector
        col.spill()
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
        if writer.error is not None:
            col.fault(f"writing the recording failed: {writer.error}")
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def discard(self) -> None:
        """A passing test under --escope-keep=failed: leave nothing behind."""
        self.stop()
        if self.writer is not None:
            self.writer.abandon()
            for suffix in ("", "-journal"):
                try:
                    os.unlink(str(self.path) + suffix)
                except OSError:
                    pass
        self.collector.events.clear()
