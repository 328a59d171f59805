"""The flusher: one thread per process that takes every chunk of every
running film and hands it to the film's writer.

Two reasons put this work on its own thread.

A test that dies the hard way (``os._exit``, a segfault, ``SIGKILL``,
pytest-timeout's thread method) gets no chance to spill what it still holds,
and a test blocked in C, in ``time.sleep`` or on a lock films nothing that
would make it spill.  This thread wakes every ``FLUSH_SECONDS``, takes what
is in memory (``Collector.flush``) and hands it to the writer, so a death at
any moment loses at most the last wake-up's worth of filming plus the chunk
the writer had not yet committed (docs/reliability.md, "Faults").

Taking a chunk detaches events from the film before the writer's queue holds
them.  CPython runs a Python signal handler in the main thread at the next
call or loop jump of any Python code, the recorder's included: a handler
that raises there would drop the detached events.  A thread other than the
main thread never runs a signal handler, so a filming thread that reaches
its limit never takes a chunk itself: it asks this thread (``ask``) and
waits.  A handler's exception met while it waits leaves everything in the
film and reaches the test.

One thread serves every recording of the process (a test, its recorded
reruns, ``escope run``): starting a thread per test would cost more than
the small tests it films.  It is a daemon: it never keeps a process alive.
"""

from __future__ import annotations

# Bound at import: a test that monkeypatches builtins must not reach the recorder.
from builtins import BaseException, RuntimeError, list, max, min  # noqa: A004

import os
import threading
import time
from typing import Any

#: how often the flusher wakes (docs/performance.md, "Flushing")
FLUSH_SECONDS = 0.025

#: bound at import: a test that mocks ``time.sleep`` or ``time.monotonic``
#: (before the first recording starts this thread) must not reach the flusher
_monotonic = time.monotonic
_Lock = threading.Lock


class Flusher:
    """Wakes every ``period`` seconds (or a registered collector's shorter
    ``flush_every``), or at once when a filming thread asks: serves every
    collector that asked (``Collector.serve``) and flushes the others whose
    periodic flush is due."""

    def __init__(self, period: float = FLUSH_SECONDS) -> None:
        self.period = period
        self._lock = _Lock()
        self._collectors: list[Any] = []
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        #: held while the thread may sleep; released to wake it at once
        self._wake = _Lock()
        self._wake.acquire()
        #: released after each pass, to wake a filming thread that waits
        self._passed = _Lock()
        self._passed.acquire()
        #: objects to drop on this thread (``bury``)
        self._graves: list[Any] = []
        #: idents of the recorder's own threads (the writers): never made to wait
        self._recorder_threads: set[int] = set()

    def add(self, collector: Any) -> None:
        """Serve ``collector`` from now on (its recording started)."""
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
        """Stop serving ``collector`` (its recording stopped)."""
        with self._lock:
            if collector in self._collectors:
                self._collectors.remove(collector)

    def recorder_thread(self, ident: int, running: bool) -> None:
        """A writer thread starts (``running``) or ends.  In-scope code can
        run on it (a finalizer of the test's garbage, run by a collection
        its allocations set off) and fill a film; made to wait for this
        thread, which may itself wait for that writer's queue, it would
        never wake."""
        if running:
            self._recorder_threads.add(ident)
        else:
            self._recorder_threads.discard(ident)

    def bury(self, thing: Any) -> None:
        """Let ``thing`` die on this thread, at its next pass: its death
        runs Python code (a weakref callback, a finalizer), and a signal
        handler that CPython runs there has its exception swallowed (printed
        as unraisable).  Dying in the main thread, at a moment the garbage
        collector chooses, it could swallow the test's ``Timeout``."""
        self._graves.append(thing)

    def ask(self, collector: Any, level: int, to_the_end: bool = False) -> None:
        """On a filming thread: have this thread serve ``collector`` at
        ``level`` (``Collector.serve``) and wait until a pass that began
        after the request finished.

        A signal handler's exception met while waiting is raised at once
        (the request stays; the film keeps its events), or, with
        ``to_the_end`` (the recording's last chunk, which must be queued
        before the file is closed), once the request was served."""
        if (self._thread is not None and threading.current_thread() is self._thread) or \
                threading.get_ident() in self._recorder_threads:
            # in-scope code running on this thread or on a writer (a
            # finalizer the garbage collector runs there) filled the film:
            # waiting would wait forever; the request is served at the next pass
            if collector.asked < level:
                collector.asked = level
            return
        added = collector not in self._collectors
        if added:
            self.add(collector)  # a stopped recording's last chunk
        pending: BaseException | None = None
        try:
            if collector.asked < level:
                collector.asked = level
            # a pass that began before this line may not have seen the request
            mark = collector.serves_begun
            while collector.serves_done <= mark:
                try:
                    if collector.asked < level:
                        # set again at each round: a pass that began before
                        # the request may have cleared it
                        collector.asked = level
                    thread = self._thread
                    if thread is None or not thread.is_alive() or self._pid != os.getpid():
                        # no thread to ask (a forked child, interpreter exit)
                        collector.serve()
                        return
                    try:
                        self._wake.release()
                    except RuntimeError:
                        pass  # already released: a wake-up is pending
                    self._passed.acquire(True, self.period)
                except BaseException as exc:  # noqa: BLE001 - the test's; raised below
                    if not to_the_end:
                        raise
                    if pending is None:
                        pending = exc
        finally:
            if added:
                self.remove(collector)
        if pending is not None:
            try:
                raise pending
            finally:
                pending = None

    def _run(self) -> None:
        wake = self._wake
        passed = self._passed
        due = _monotonic() + self.period
        while True:
            with self._lock:
                collectors = list(self._collectors)
            # a recording that asks for a shorter period gets it
            period = min([self.period] + [c.flush_every for c in collectors if c.flush_every > 0])
            wake.acquire(True, max(0.0, due - _monotonic()))
            with self._lock:
                collectors = list(self._collectors)
            periodic = _monotonic() >= due
            if periodic:
                due = _monotonic() + period
            for collector in collectors:
                try:
                    if collector.asked:
                        collector.serve()
                    elif periodic and collector.flush_every > 0:
                        collector.flush()
                except BaseException:  # noqa: BLE001 - the writer records its own faults; this thread must live
                    pass
            # cleared in place: a filming thread may append meanwhile
            self._graves.clear()
            try:
                passed.release()
            except RuntimeError:
                pass  # nobody took the last one


#: the process's flusher
FLUSHER = Flusher()
