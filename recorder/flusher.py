"""The flusher: one thread per process that moves every running film to disk
every ``FLUSH_SECONDS``.

The test thread spills by size (``Collector.overflow``), but a test that
dies the hard way (``os._exit``, a segfault, ``SIGKILL``, pytest-timeout's
thread method) gets no chance to spill what it still holds, and a test
blocked in C, in ``time.sleep`` or on a lock films nothing that would make
it spill.  This thread wakes on its own clock, takes what is in memory
(``Collector.flush``) and hands it to the recording's writer, so a death
at any moment loses at most the last wake-up's worth of filming plus the
chunk the writer had not yet committed (docs/reliability.md, "Faults").

One thread serves every recording of the process (a test, its recorded
reruns, ``escope run``): starting a thread per test would cost more than
the small tests it films.  It is a daemon: it never keeps a process alive.
"""

from __future__ import annotations

# Bound at import: a test that monkeypatches builtins must not reach the recorder.
from builtins import list  # noqa: A004

import os
import threading
import time
from typing import Any

#: how often the flusher wakes (docs/performance.md, "Flushing")
FLUSH_SECONDS = 0.025

#: bound at import: a test that mocks ``time.sleep`` (before the first
#: recording starts this thread) must not turn the flusher into a busy loop
_sleep = time.sleep


class Flusher:
    """Wakes every ``period`` seconds (or a registered collector's shorter
    ``flush_every``) and flushes each registered collector."""

    def __init__(self, period: float = FLUSH_SECONDS) -> None:
        self.period = period
        self._lock = threading.Lock()
        self._collectors: list[Any] = []
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def add(self, collector: Any) -> None:
        """Flush ``collector`` from now on (its recording started)."""
        with self._lock:
            if self._pid != os.getpid():
                # a forked child: the parent's thread does not exist here
                self._thread, self._collectors, self._pid = None, [], os.getpid()
            if collector not in self._collectors:
                self._collectors.append(collector)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="escope-flusher", daemon=True)
                self._thread.start()

    def remove(self, collector: Any) -> None:
        """Stop flushing ``collector`` (its recording stopped)."""
        with self._lock:
            if collector in self._collectors:
                self._collectors.remove(collector)

    def _run(self) -> None:
        sleep = _sleep
        period = self.period
        while True:
            sleep(period)
            with self._lock:
                collectors = list(self._collectors)
            # a recording that asks for a shorter period gets it
            period = min([self.period] + [c.flush_every for c in collectors])
            for collector in collectors:
                try:
                    collector.flush()
                except BaseException:  # noqa: BLE001 - the writer records its own faults; this thread must live
                    pass


#: the process's flusher
FLUSHER = Flusher()
