"""One test's recording through pytest's phases: start, mark, judge, finish.

``TestRecording`` holds what every recording process does the same way, an
xdist controller, a worker or a plain session: it wraps
``pytest_runtest_protocol`` to start a test's film before setup and finish
it after teardown, marks the phases, keeps the exception that failed the
test, and turns recorder faults and a refused write into one warning each.
The roles (``controller.py``, ``worker.py``) add what differs: who starts
the run, who ends it, who reports.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generator

import pytest

from .errors import EscopeWarning
from .fixture import RECORDING_KEY, EscopeFixture
from .recorder.config import STRATEGIES, RecorderConfig
from .recorder.run_session import FinishedTest, RunSession, is_storage_error, relative, storage_error_of
from .settings import Settings

if TYPE_CHECKING:
    from .recorder.session import Recorder, Recording


@dataclass
class TestState:
    """What pytest told us about one test while it ran."""

    __test__ = False  # not a test class, whatever pytest's naming rule says

    #: outcome per phase that reported: ``setup``, ``call``, ``teardown``
    phases: dict[str, str] = field(default_factory=dict)
    #: the first failure's one line for the index
    failure: str | None = None
    #: the exception that failed the test (its step in the film is found from it)
    exc: BaseException | None = None
    #: the phase running now: the one an interrupt lands in
    phase: str | None = None
    #: KeyboardInterrupt or pytest.exit() that ended the test, if any
    interrupted: BaseException | None = None
    #: time in setup, call and teardown together
    duration_ns: int = 0


STATE_KEY = pytest.StashKey[TestState]()


class TestRecording:
    """Films each test of the session into the run of ``session``."""

    __test__ = False

    def __init__(self, config: pytest.Config, settings: Settings, session: RunSession, worker: str) -> None:
        self.config = config
        self.rec_config = settings.recorder
        self.keep = settings.keep
        self.max_bytes = settings.max_bytes
        #: 0, or N in recorded rerun N of --escope-on-failure
        self.attempt = settings.attempt
        self.session = session
        self.run = session.run
        self.worker = worker
        self.recorder: Recorder = session.open_recorder(self.rec_config)
        hook = config.pluginmanager.hook
        if hook.pytest_escope_render.get_hookimpls():
            self.recorder_custom: Any = lambda v: hook.pytest_escope_render(value=v)
        else:
            self.recorder_custom = None
        self.failed: list[tuple[str, str, str]] = []  # (nodeid, recording path, failure)
        self.interrupted = 0  # how many of self.failed were interrupted, not failed
        self.warned: set[str] = set()
        #: each recorder fault, with the tests it happened in (warned once, counted in the summary)
        self.fault_tests: dict[str, list[str]] = {}
        #: set once the escope dir refuses a write (disk full, read-only):
        #: (the test whose write failed, why); no later test is recorded
        self.stopped: tuple[str, str] | None = None
        self.capped = False

    # -- warnings -------------------------------------------------------------

    def pytest_report_header(self, config: pytest.Config) -> str:
        rel = relative(self.run.path, Path(str(config.rootpath)))
        return (f"escope: recording to {rel} (strategy {self.rec_config.strategy}, "
                f"backend {self.rec_config.backend}, keep {self.keep})")

    def _say(self, message: str) -> None:
        """Show one warning to the user.  As a Python warning by default: an
        xdist worker's terminal goes nowhere, its stderr reaches the user;
        the controller writes to its terminal instead."""
        warnings.warn(EscopeWarning(message), stacklevel=3)

    def _warn(self, message: str, key: str | None = None) -> None:
        """One ``escope warning:`` line per ``key`` (default: the message) per session."""
        key = message if key is None else key
        if key in self.warned:
            return
        self.warned.add(key)
        self._say(message)

    def _fault(self, message: str, nodeid: str) -> None:
        """A recorder fault: warned the first time, counted per test for the summary."""
        tests = self.fault_tests.setdefault(message, [])
        if nodeid in tests:
            return
        tests.append(nodeid)
        # the render and event faults have generic messages; write and start
        # carry the injected exception's own text
        injected = self.recorder.test_fault
        suffix = f" (injected by ESCOPE_TEST_FAULT={injected})" if injected in ("render", "event") else ""
        # one line per session for every kind of recorder fault together (one
        # bug often shows as several messages); the summary counts each
        self._warn(f"{message} (in {nodeid}); the test ran normally{suffix}", key="recorder fault")

    def _storage_failed(self, exc: BaseException, nodeid: str) -> None:
        """The escope dir refused a write: say so once and record no more tests.

        A full disk or a read-only directory fails every later write the same
        way; retrying for each test would only repeat the warning and slow
        the run.  What is already written stays as it is.
        """
        if self.stopped is not None:
            return
        exc = storage_error_of(exc) or exc
        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc)
        else:
            reason = str(exc) or type(exc).__name__
        self.stopped = (nodeid, reason)
        where = relative(self.run.path, Path(str(self.config.rootpath)))
        if where.startswith(".."):
            where = str(self.run.path)
        self._warn(f"cannot write to {where} ({reason}); recording stopped at {nodeid}, the later tests "
                   f"run unrecorded. Free space or make it writable, then: pytest --escope")

    # -- per test ----------------------------------------------------------------

    def _item_config(self, item: pytest.Item) -> RecorderConfig | None:
        """The session's settings with the test's ``escope`` marker applied; None: not filmed."""
        marker = item.get_closest_marker("escope")
        if marker is None:
            return self.rec_config
        kwargs = dict(marker.kwargs)
        if kwargs.get("enabled", True) is False:
            return None
        cfg = self.rec_config
        changes: dict[str, Any] = {}
        if kwargs.get("strategy"):
            if kwargs["strategy"] not in STRATEGIES:
                self._warn(f"{item.nodeid}: unknown escope strategy {kwargs['strategy']!r}, using {cfg.strategy}")
            else:
                changes["strategy"] = kwargs["strategy"]
        if kwargs.get("include"):
            inc = kwargs["include"]
            inc = (inc,) if isinstance(inc, str) else tuple(inc)
            changes["include"] = cfg.include + inc
        if not changes:
            return cfg
        return replace(cfg, **changes)

    def _over_budget(self) -> bool:
        if self.max_bytes is None:
            return False
        if self.capped:
            return True
        try:
            used = self.session.bytes_used()
        except Exception:
            used = 0
        if used >= self.max_bytes:
            self.capped = True
            self._warn(f"the run holds {used} bytes, over --escope-max-bytes; later tests are not recorded")
            return True
        return False

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
        cfg = self._item_config(item)
        state = TestState()
        item.stash[STATE_KEY] = state
        rec = None
        if cfg is not None and self.stopped is None and not self.recorder.forked and not self._over_budget():
            try:
                rec = self.session.start_test(item.nodeid, worker=self.worker, attempt=self.attempt,
                                              keep_in_memory=self.keep == "failed", config=cfg,
                                              custom=self.recorder_custom)
            except Exception as exc:
                if is_storage_error(exc):
                    self._storage_failed(exc, item.nodeid)
                else:
                    self._fault(f"could not start recording: {exc}", item.nodeid)
        item.stash[RECORDING_KEY] = rec
        if rec is not None:
            try:
                item.config.hook.pytest_escope_recording_started(item=item, escope=EscopeFixture(rec, rec.path))
            except Exception as exc:
                self._warn(f"a pytest_escope_recording_started hook failed: {exc}")
        try:
            return (yield)
        except BaseException as exc:
            # KeyboardInterrupt and pytest.exit() pass through pytest's
            # CallInfo (its ``reraise``), so no report gives the phase an
            # outcome: the test did not pass, it was interrupted
            state.interrupted = exc
            raise
        finally:
            if rec is not None:
                self._finish(item, rec, state)

    def _finish(self, item: pytest.Item, rec: Recording, state: TestState) -> None:
        if rec.forgotten:
            # a forked child that went on running pytest: the recording,
            # the index and their connections are the parent's
            item.stash[RECORDING_KEY] = None
            return
        rec.stop()
        phases = state.phases
        stopped_by = state.interrupted
        if stopped_by is not None and state.phase in phases:
            stopped_by = None  # the phase had its verdict first (quitting --pdb after a failure)
        if stopped_by is not None:
            outcome = "interrupted"
            phases.setdefault(state.phase or "setup", "interrupted")
            if state.failure is None:
                state.failure = exc_line(stopped_by)
        else:
            outcome = overall(phases)
        keep = self.keep == "all" or outcome in ("failed", "error", "interrupted")
        col = rec.collector
        failure_step = col.failure_step(state.exc if state.exc is not None else stopped_by)
        done = FinishedTest(events=rec.event_count)
        try:
            done = self.session.finish_test(rec, keep=keep, outcome=outcome, failure=state.failure or "",
                                            failure_step=failure_step, phases=phases)
        except Exception as exc:
            done.write_error = exc
            if not is_storage_error(exc):
                self._fault(f"could not write the recording: {exc}", item.nodeid)
        if done.write_error is not None and is_storage_error(done.write_error):
            self._storage_failed(done.write_error, item.nodeid)
        faults = dict(col.faults)
        if col.renderer.faults:
            faults["a value could not be rendered"] = col.renderer.faults
        for message in faults:
            self._fault(message, item.nodeid)
        if stopped_by is not None and done.recording:
            self._kept_interrupted(item.nodeid, str(rec.path), state.failure or "")
        events = done.events
        max_events = self.rec_config.max_events
        try:
            self.session.index_test(item.nodeid, worker=self.worker, outcome=outcome, phases=phases,
                                    duration_ns=state.duration_ns, done=done,
                                    dropped=max(0, events - max_events) if max_events else 0,
                                    failure=state.failure, started_ns=rec.started_ns, attempt=self.attempt)
        except Exception as exc:
            if is_storage_error(exc):
                self._storage_failed(exc, item.nodeid)
            else:
                self._warn(f"could not update the run index: {exc}")
        try:
            item.config.hook.pytest_escope_recording_finished(
                item=item, path=str(rec.path) if done.recording else None, outcome=outcome, events=events)
        except Exception as exc:
            self._warn(f"a pytest_escope_recording_finished hook failed: {exc}")
        item.stash[RECORDING_KEY] = None

    def _kept_interrupted(self, nodeid: str, path: str, failure: str) -> None:
        """A test stopped by Ctrl-C or pytest.exit() left a recording: the
        controller offers it in the summary (no report carries it there)."""

    def _phase(self, item: pytest.Item, name: str) -> Generator[None, Any, Any]:
        rec = item.stash.get(RECORDING_KEY, None)
        if rec is not None:
            rec.collector.phase(name, True)
            item.stash[STATE_KEY].phase = name  # the phase an interrupt lands in
        start = time.perf_counter_ns()
        try:
            return (yield)
        finally:
            if rec is not None:
                state = item.stash[STATE_KEY]
                duration = time.perf_counter_ns() - start
                state.duration_ns += duration
                rec.collector.phase(name, False, state.phases.get(name), duration)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, Any, Any]:
        return (yield from self._phase(item, "setup"))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        return (yield from self._phase(item, "call"))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: Any) -> Generator[None, Any, Any]:
        return (yield from self._phase(item, "teardown"))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        report = yield
        state = item.stash.get(STATE_KEY, None)
        rec = item.stash.get(RECORDING_KEY, None)
        if state is None:
            return report
        if report.passed:
            outcome = "passed"
        elif report.skipped:
            outcome = "skipped"
        else:
            outcome = "failed" if call.when == "call" else "error"
        state.phases[call.when] = outcome
        if report.failed and call.excinfo is not None and state.exc is None:
            state.exc = call.excinfo.value
            try:
                msg = call.excinfo.exconly().strip().splitlines()
                state.failure = msg[0][:300] if msg else call.excinfo.typename
            except Exception:
                state.failure = call.excinfo.typename
            if rec is not None:
                prop = ("escope_recording", str(rec.path))
                if prop not in item.user_properties:
                    item.user_properties.append(prop)
                    item.user_properties.append(("escope_run", self.run.run_id))
                    # where `escope pack` puts it (replay/archive.py): the name inside a CI artifact
                    item.user_properties.append(("escope_archive_member", "escope-run/" + relative(
                        rec.path, self.run.escope_dir / "runs").replace(os.sep, "/")))
                if prop not in report.user_properties:
                    report.user_properties.append(prop)
        return report

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_exception_interact(self, node: Any, call: Any, report: Any) -> Generator[None, Any, Any]:
        # pytest calls this hook for every failure, not only under --pdb:
        # filming goes on (the test's teardown, the code after a fixture's
        # ``yield``, runs next and belongs in the film).  Only a debugger
        # (--pdb registers "pdbinvoke") takes over here: its own evaluation
        # is not filmed, and filming goes on when it hands back.
        rec = node.stash.get(RECORDING_KEY, None) if hasattr(node, "stash") else None
        debugger = (rec is not None and rec.running
                    and node.config.pluginmanager.get_plugin("pdbinvoke") is not None)
        # sys.monitoring is not the debugger's mechanism (pdb uses
        # sys.settrace), so a pause keeps every code object's local events,
        # a suspended fixture's resume included; the settrace backend must
        # stop, since pdb replaces the thread's trace function and clears it
        # when it continues, and start again afterwards.
        restart = debugger and rec.backend_name != "monitoring"
        if restart:
            rec.stop()
        elif debugger:
            rec.pause()
        try:
            return (yield)
        finally:
            if restart and not rec.forgotten:
                try:
                    rec.start()
                except Exception as exc:
                    self._fault(f"could not resume recording after the debugger: {exc}", node.nodeid)
            elif debugger:
                rec.resume()


def exc_line(exc: BaseException) -> str:
    """``KeyboardInterrupt`` or ``Exit: message``: one line for the index."""
    name = type(exc).__name__
    try:
        text = str(exc).strip().splitlines()
    except Exception:
        text = []
    return f"{name}: {text[0]}"[:300] if text else name


def overall(phases: dict[str, str]) -> str:
    """A test's outcome from its phases' outcomes."""
    if phases.get("setup") == "error" or phases.get("teardown") == "error":
        return "error"
    if "failed" in phases.values():
        return "failed"
    if "skipped" in phases.values():
        return "skipped"
    if not phases:
        return "crashed"
    return "passed"
