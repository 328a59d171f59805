"""The pytest side of escope: options, per-test lifecycle, xdist, reporting.

Thin glue over ``pytest_escope.recorder``: it turns pytest's view of a test
(node id, phases, outcome, the exception that failed it) into one
recording per test and one row per test in the run index.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generator

import pytest

from .recorder.config import STRATEGIES, RecorderConfig

if TYPE_CHECKING:
    from .recorder.session import Recording

# The recorder (SQLite, the compiled callbacks, the value renderer) is
# imported when --escope is on: a run without it pays nothing for escope
# being installed.

RECORDING_KEY = pytest.StashKey["Recording | None"]()
STATE_KEY = pytest.StashKey["dict[str, Any]"]()


class EscopeWarning(UserWarning):
    """escope met a problem while recording; the test itself is unaffected."""


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("escope", "escope: record tests for time-travel replay")
    group.addoption("--escope", action="store_true", default=None,
                    help="record every test into .escope/ (also: ini escope=true, env PYTEST_ESCOPE=1)")
    group.addoption("--escope-on-failure", action="store_true", default=None,
                    help="run unrecorded, then record each failed test again at the end "
                         "(also: ini escope=on-failure, env PYTEST_ESCOPE=on-failure)")
    group.addoption("--escope-reruns", type=int, default=None, metavar="N",
                    help="with --escope-on-failure: recorded runs of a failed test that must pass "
                         "before it counts as not reproduced (default 3)")
    # what a recorded rerun of --escope-on-failure is told by its session (pytest_escope/reruns.py)
    group.addoption("--escope-rerun-run", default=None, help=argparse.SUPPRESS)
    group.addoption("--escope-rerun-attempt", type=int, default=0, help=argparse.SUPPRESS)
    group.addoption("--escope-dir", default=None, metavar="DIR", help="where runs are stored (default: <rootdir>/.escope)")
    group.addoption("--escope-strategy", default=None, choices=STRATEGIES,
                    help="what to record: minimal, balanced (default), full_trace")
    group.addoption("--escope-include", action="append", default=None, metavar="GLOB",
                    help="also record files/modules matching GLOB (repeatable)")
    group.addoption("--escope-exclude", action="append", default=None, metavar="GLOB",
                    help="never record files/modules matching GLOB (repeatable)")
    group.addoption("--escope-redact", action="append", default=None, metavar="NAME",
                    help="extra name pattern whose values are stored as <redacted> (repeatable)")
    group.addoption("--escope-keep", default=None, choices=("failed", "all"),
                    help="keep recordings of failed tests only (default) or all")
    group.addoption("--escope-max-events", type=int, default=None, metavar="N",
                    help="keep at most the newest N events of one test")
    group.addoption("--escope-max-value-size", type=int, default=None, metavar="CHARS",
                    help="longest text kept for one value")
    group.addoption("--escope-max-bytes", default=None, metavar="SIZE",
                    help="stop recording more tests once the run dir holds SIZE (e.g. 500M)")
    group.addoption("--escope-backend", default=None, choices=("monitoring", "settrace"),
                    help="tracing backend (default: monitoring on 3.12+, settrace on 3.11)")
    group.addoption("--escope-pack", default=None, metavar="PATH",
                    help="after the run, pack failed tests' recordings into PATH")
    parser.addini("escope", "record tests with escope: true, false or on-failure", default="")
    parser.addini("escope_reruns", "recorded reruns of a failed test under on-failure (default 3)", default="")
    parser.addini("escope_dir", "escope directory", default="")
    parser.addini("escope_strategy", "minimal, balanced or full_trace", default="")
    parser.addini("escope_include", "globs of files/modules to record", type="args", default=[])
    parser.addini("escope_exclude", "globs of files/modules never to record", type="args", default=[])
    parser.addini("escope_redact", "extra secret name patterns", type="args", default=[])
    parser.addini("escope_keep", "failed or all", default="")
    parser.addini("escope_max_events", "newest events kept per test", default="")


def _parse_size(text: str) -> int:
    text = text.strip().upper()
    mult = 1
    for suffix, m in (("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30)):
        if text.endswith(suffix + "B"):
            text = text[:-2]
            mult = m
            break
        if text.endswith(suffix):
            text = text[:-1]
            mult = m
            break
    return int(float(text) * mult)


_TRUE = ("1", "true", "yes", "y", "t", "on")
_FALSE = ("", "0", "false", "no", "n", "f", "off")
ON_FAILURE = "on-failure"


def _mode(config: pytest.Config) -> str:
    """``record``, ``on-failure`` or ``off``: the command line, then
    ``$PYTEST_ESCOPE``, then the ini file's ``escope``."""
    record, on_failure = config.getoption("escope"), config.getoption("escope_on_failure")
    if config.getoption("escope_rerun_run"):
        return "record"  # a recorded rerun, whatever the session's own settings say
    if record and on_failure:
        raise pytest.UsageError("escope: --escope records every test and --escope-on-failure only the failed "
                                "ones; pass one of them")
    if record:
        return "record"
    if on_failure:
        return ON_FAILURE
    env = os.environ.get("PYTEST_ESCOPE", "").strip().lower()
    if env == ON_FAILURE:
        return ON_FAILURE
    if env in _TRUE:
        return "record"
    ini = str(config.getini("escope")).strip().lower()
    if ini == ON_FAILURE:
        return ON_FAILURE
    if ini in _TRUE:
        return "record"
    if ini in _FALSE:
        return "off"
    raise pytest.UsageError(f"escope: the ini option escope must be true, false or on-failure, "
                            f"not {config.getini('escope')!r}")


def _reruns(config: pytest.Config) -> int:
    value = _opt(config, "escope_reruns", "escope_reruns")
    try:
        reruns = int(value) if value not in (None, "") else 3
    except ValueError:
        raise pytest.UsageError(f"escope: escope_reruns must be a number, not {value!r}") from None
    if reruns < 1:
        raise pytest.UsageError("escope: --escope-reruns must be at least 1")
    return reruns


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "escope(strategy=None, include=None, enabled=True): per-test escope settings",
    )
    mode = _mode(config)
    if mode == ON_FAILURE:
        reruns = _reruns(config)
        if getattr(config, "workerinput", None) is None:  # the controller sees every worker's reports
            from .on_failure import OnFailurePlugin
            rootdir = Path(str(config.rootpath))
            plugin = OnFailurePlugin(config, reruns, _escope_dir(config), _git_commit(rootdir))
            config.pluginmanager.register(plugin, "escope-on-failure")
        return
    if mode == "off":
        return
    try:
        plugin: Any = EscopePlugin(config)
    except EscopeUnavailable as exc:
        if not exc.message:  # an xdist worker of a controller that records nothing
            return
        plugin = Unrecorded(exc.message)
    config.pluginmanager.register(plugin, "escope-session")


class EscopeUnavailable(Exception):
    """The escope dir cannot be written at the start of the session."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unrecorded:
    """Registered instead of ``EscopePlugin`` when the escope dir cannot be
    written at the start: the session runs as without escope, after one
    warning.  A read-only or full disk is no reason to stop the tests."""

    def __init__(self, message: str) -> None:
        self.message = message

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line(f"escope warning: {self.message}", yellow=True)
        else:
            warnings.warn(EscopeWarning(self.message), stacklevel=2)


def _opt(config: pytest.Config, name: str, ini: str) -> Any:
    value = config.getoption(name)
    if value is None or value == []:
        value = config.getini(ini) or None
    return value


def _escope_dir(config: pytest.Config) -> Path:
    """``--escope-dir`` (relative to the rootdir), else ``<rootdir>/.escope``."""
    rootdir = Path(str(config.rootpath))
    dir_opt = _opt(config, "escope_dir", "escope_dir")
    escope_dir = Path(dir_opt) if dir_opt else rootdir / ".escope"
    return escope_dir if escope_dir.is_absolute() else rootdir / escope_dir


class EscopeFixture:
    """What the ``escope`` fixture gives a test."""

    def __init__(self, recording: Recording | None, path: Path | None) -> None:
        self._recording = recording
        self.path = path
        self.enabled = recording is not None

    def checkpoint(self, label: str, **values: Any) -> None:
        """Add a custom event with ``label`` and ``values`` to the film."""
        rec = self._recording
        if rec is None or not rec.running:
            return
        try:
            rec.collector.checkpoint(str(label), values)
        except Exception:
            rec.collector.fault("checkpoint failed")


@pytest.fixture
def escope(request: pytest.FixtureRequest) -> EscopeFixture:
    """This test's recording: ``escope.checkpoint(label, **values)`` and ``escope.path``."""
    rec = request.node.stash.get(RECORDING_KEY, None)
    return EscopeFixture(rec, rec.path if rec is not None else None)


class EscopePlugin:
    """Registered only when escope is on."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        rootdir = Path(str(config.rootpath))
        self.escope_dir = escope_dir = _escope_dir(config)
        strategy = _opt(config, "escope_strategy", "escope_strategy") or "balanced"
        if strategy not in STRATEGIES:
            raise pytest.UsageError(f"escope: unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
        keep = _opt(config, "escope_keep", "escope_keep") or "failed"
        if keep not in ("failed", "all"):
            raise pytest.UsageError(f"escope: --escope-keep must be 'failed' or 'all', not {keep!r}")
        #: a recorded rerun of --escope-on-failure (pytest_escope/reruns.py) writes
        #: attempt N into its session's run; its passing recordings are kept too
        self.rerun_of: str | None = config.getoption("escope_rerun_run")
        self.attempt: int = config.getoption("escope_rerun_attempt") or 0 if self.rerun_of else 0
        if self.rerun_of:
            keep = "all"
        self.keep = keep
        max_events = _opt(config, "escope_max_events", "escope_max_events")
        try:
            max_events = int(max_events) if max_events not in (None, "") else None
        except ValueError:
            raise pytest.UsageError(f"escope: escope_max_events must be a number, not {max_events!r}") from None
        if max_events is not None and max_events < 1:
            raise pytest.UsageError("escope: --escope-max-events must be at least 1")
        max_bytes = config.getoption("escope_max_bytes")
        try:
            self.max_bytes = _parse_size(max_bytes) if max_bytes else None
        except ValueError:
            raise pytest.UsageError(f"escope: --escope-max-bytes takes a size like 500M, not {max_bytes!r}") from None
        from .recorder.liveness import process_identity, process_key
        from .recorder.runs import RunDir, RunIndex
        from .recorder.session import Recorder, default_backend
        from .recorder.values import DEFAULT_REDACT

        redact = tuple(DEFAULT_REDACT) + tuple(_opt(config, "escope_redact", "escope_redact") or ())
        self.rec_config = RecorderConfig(
            rootdir=rootdir,
            strategy=strategy,
            include=tuple(_opt(config, "escope_include", "escope_include") or ()),
            exclude=tuple(_opt(config, "escope_exclude", "escope_exclude") or ()),
            redact=redact,
            max_value_size=config.getoption("escope_max_value_size"),
            max_events=max_events,
            backend=config.getoption("escope_backend") or default_backend(),
            extra_excluded_dirs=(escope_dir,),
        )
        workerinput = getattr(config, "workerinput", None)
        self.worker = workerinput.get("workerid", "main") if workerinput else "main"
        self.is_controller = workerinput is None
        run_id = workerinput.get("escope_run_id") if workerinput else self.rerun_of
        if workerinput is not None and not run_id:
            raise EscopeUnavailable("")  # the controller could not start a run: it has warned
        try:
            if run_id:
                self.run = RunDir(escope_dir, run_id)
            else:
                self.run = RunDir.create(escope_dir)
            self.index = RunIndex(self.run.index_path)
            if self.is_controller and not self.rerun_of:
                self.index.set_run({
                    "run_id": self.run.run_id,
                    "python": sys.version.split()[0],
                    "platform": sys.platform,
                    "args": shlex.join(config.invocation_params.args),
                    "rootdir": str(rootdir),
                    "started_unix_ns": str(time.time_ns()),
                    "git_commit": _git_commit(rootdir),
                    "strategy": strategy,
                    "backend": self.rec_config.backend or "",
                    # a reader settles the rows of a run whose controller is gone
                    "pid": str(os.getpid()),
                })
            # each process's own: a reader settles the rows of a worker that died
            self.index.set_run({process_key(self.worker, self.attempt): process_identity()})
        except Exception as exc:
            if not is_storage_error(exc):
                raise
            reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
            raise EscopeUnavailable(
                f"cannot write to {escope_dir} ({reason}); the tests run unrecorded. "
                f"Make it writable or pick another place, then: pytest --escope --escope-dir=DIR") from None
        self.recorder = Recorder(self.rec_config, self.run.cache_dir)
        hook = config.pluginmanager.hook
        if hook.pytest_escope_render.get_hookimpls():
            self.recorder_custom = lambda v: hook.pytest_escope_render(value=v)
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
        self.tests_recorded = 0

    # -- xdist -----------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["escope_run_id"] = self.run.run_id

    # -- reporting ------------------------------------------------------------

    def pytest_report_header(self, config: pytest.Config) -> str:
        rel = _rel(self.run.path, Path(str(config.rootpath)))
        return (f"escope: recording to {rel} (strategy {self.rec_config.strategy}, "
                f"backend {self.rec_config.backend}, keep {self.keep})")

    def _warn(self, message: str, key: str | None = None) -> None:
        """One ``escope warning:`` line per ``key`` (default: the message) per session."""
        key = message if key is None else key
        if key in self.warned:
            return
        self.warned.add(key)
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None and self.is_controller:
            tr.write_line(f"escope warning: {message}", yellow=True)
        else:
            # an xdist worker's terminal goes nowhere; its stderr reaches the
            # user.  (On the controller this would print the message a second
            # time, with a line of this file, outside pytest's warning capture.)
            warnings.warn(EscopeWarning(message), stacklevel=2)

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
        from .recorder.runs import storage_error_of
        exc = storage_error_of(exc) or exc
        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc)
        else:
            reason = str(exc) or type(exc).__name__
        self.stopped = (nodeid, reason)
        where = _rel(self.run.path, Path(str(self.config.rootpath)))
        if where.startswith(".."):
            where = str(self.run.path)
        self._warn(f"cannot write to {where} ({reason}); recording stopped at {nodeid}, the later tests "
                   f"run unrecorded. Free space or make it writable, then: pytest --escope")

    def _index(self, row: dict[str, Any], nodeid: str) -> bool:
        """Write one row of the run index; a refused write stops recording."""
        try:
            self.index.upsert_test(row)
            return True
        except Exception as exc:
            if is_storage_error(exc):
                self._storage_failed(exc, nodeid)
            else:
                self._warn(f"could not update the run index: {exc}")
            return False

    # -- per test ----------------------------------------------------------------

    def _item_config(self, item: pytest.Item) -> RecorderConfig | None:
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
        from dataclasses import replace
        return replace(cfg, **changes)

    def _over_budget(self) -> bool:
        if self.max_bytes is None:
            return False
        if self.capped:
            return True
        try:
            used = self.index.db.execute("SELECT coalesce(sum(bytes), 0) FROM tests").fetchall()[0][0]
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
        state: dict[str, Any] = {"phases": {}, "failure": None, "failure_step": None, "exc": None}
        item.stash[STATE_KEY] = state
        rec = None
        if cfg is not None and self.stopped is None and not self.recorder.forked and not self._over_budget():
            path = self.run.recording_path(item.nodeid, self.attempt)
            meta = {"test_id": item.nodeid, "run_id": self.run.run_id, "worker": self.worker, "kind": "test"}
            if self.attempt:
                meta["attempt"] = str(self.attempt)
            indexed = False
            try:
                rec = self.recorder.recording(path, meta, keep_in_memory=self.keep == "failed", config=cfg)
                rec.collector.renderer.custom = self.recorder_custom
                self.index.upsert_test({"test_id": item.nodeid, "worker": self.worker, "outcome": "running",
                                        "recording": _rel(path, self.run.path), "started_ns": time.time_ns(),
                                        "attempt": self.attempt})
                indexed = True
                rec.start()
            except Exception as exc:
                self._not_started(item.nodeid, rec, indexed, exc)
                rec = None
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
            state["interrupted"] = exc
            raise
        finally:
            if rec is not None:
                self._finish(item, rec, state)

    def _not_started(self, nodeid: str, rec: Recording | None, indexed: bool, exc: Exception) -> None:
        """Recording could not start: the test runs unrecorded and leaves no row behind."""
        if rec is not None:
            try:
                rec.discard()
            except Exception:
                pass
        if indexed:
            try:
                self.index.delete_test(nodeid, self.worker, self.attempt)
            except Exception:
                pass
        if is_storage_error(exc):
            self._storage_failed(exc, nodeid)
        else:
            self._fault(f"could not start recording: {exc}", nodeid)

    def _finish(self, item: pytest.Item, rec: Recording, state: dict[str, Any]) -> None:
        if rec.forgotten:
            # a forked child that went on running pytest: the recording,
            # the index and their connections are the parent's
            item.stash[RECORDING_KEY] = None
            return
        rec.stop()
        phases = state["phases"]
        stopped_by = state.get("interrupted")
        if stopped_by is not None and state.get("phase") in phases:
            stopped_by = None  # the phase had its verdict first (quitting --pdb after a failure)
        if stopped_by is not None:
            outcome = "interrupted"
            phases.setdefault(state.get("phase") or "setup", "interrupted")
            if state["failure"] is None:
                state["failure"] = _exc_line(stopped_by)
        else:
            outcome = _overall(phases)
        keep = self.keep == "all" or outcome in ("failed", "error", "interrupted")
        col = rec.collector
        failure_step = col.failure_step(state["exc"] if state["exc"] is not None else stopped_by)
        events = rec.event_count
        size = 0
        path_text = None
        write_error: BaseException | None = None
        try:
            if keep:
                meta = {
                    "outcome": outcome,
                    "failure": state["failure"] or "",
                    "failure_step": "" if failure_step is None else str(failure_step),
                }
                for name, value in phases.items():
                    meta[f"outcome_{name}"] = value
                size = rec.finish(meta)
                write_error = rec.write_error
                if write_error is None or rec.path.is_file():
                    path_text = _rel(rec.path, self.run.path)
            else:
                rec.discard()
        except Exception as exc:
            write_error = exc
            if not is_storage_error(exc):
                self._fault(f"could not write the recording: {exc}", item.nodeid)
        if write_error is not None and is_storage_error(write_error):
            self._storage_failed(write_error, item.nodeid)
        faults = dict(col.faults)
        if col.renderer.faults:
            faults["a value could not be rendered"] = col.renderer.faults
        for message in faults:
            self._fault(message, item.nodeid)
        if stopped_by is not None and path_text and self.is_controller:
            self.failed.append((item.nodeid, str(rec.path), state["failure"] or ""))
            self.interrupted += 1
        self._index({
            "test_id": item.nodeid, "worker": self.worker, "outcome": outcome,
            "setup": phases.get("setup"), "call": phases.get("call"), "teardown": phases.get("teardown"),
            "duration_ns": state.get("duration_ns", 0), "events": events,
            "dropped": max(0, events - self.rec_config.max_events) if self.rec_config.max_events else 0,
            "bytes": size, "recording": path_text, "failure": state["failure"],
            "started_ns": rec.started_ns, "attempt": self.attempt,
        }, item.nodeid)
        try:
            item.config.hook.pytest_escope_recording_finished(
                item=item, path=str(rec.path) if path_text else None, outcome=outcome, events=events)
        except Exception as exc:
            self._warn(f"a pytest_escope_recording_finished hook failed: {exc}")
        item.stash[RECORDING_KEY] = None

    def _phase(self, item: pytest.Item, name: str) -> Generator[None, Any, Any]:
        rec = item.stash.get(RECORDING_KEY, None)
        if rec is not None:
            rec.collector.phase(name, True)
            item.stash[STATE_KEY]["phase"] = name  # the phase an interrupt lands in
        start = time.perf_counter_ns()
        try:
            return (yield)
        finally:
            if rec is not None:
                state = item.stash[STATE_KEY]
                duration = time.perf_counter_ns() - start
                state["duration_ns"] = state.get("duration_ns", 0) + duration
                rec.collector.phase(name, False, state["phases"].get(name), duration)

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
        state["phases"][call.when] = outcome
        if report.failed and call.excinfo is not None and state["exc"] is None:
            state["exc"] = call.excinfo.value
            try:
                msg = call.excinfo.exconly().strip().splitlines()
                state["failure"] = msg[0][:300] if msg else call.excinfo.typename
            except Exception:
                state["failure"] = call.excinfo.typename
            if rec is not None:
                prop = ("escope_recording", str(rec.path))
                if prop not in item.user_properties:
                    item.user_properties.append(prop)
                    item.user_properties.append(("escope_run", self.run.run_id))
                    # where `escope pack` puts it (replay/archive.py): the name inside a CI artifact
                    item.user_properties.append(("escope_archive_member", "escope-run/" + _rel(
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

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.is_controller or not report.failed:
            return
        for name, value in report.user_properties:
            if name == "escope_recording":
                entry = (report.nodeid, str(value), _first_line(report))
                if all(e[0] != report.nodeid for e in self.failed):
                    self.failed.append(entry)

    # -- end of session -----------------------------------------------------------

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.recorder.forked:
            return  # the run index belongs to the parent
        self.recorder.close()
        if not self.is_controller:
            self.index.close()
            return
        if self.rerun_of:
            # the run is the session's: it finishes the index once every rerun is done
            try:
                with self.index.db:
                    self.index.db.execute("UPDATE tests SET outcome = 'crashed' WHERE outcome = 'running' "
                                          "AND attempt = ?", (self.attempt,))
            finally:
                self.index.close()
            return
        try:
            with self.index.db:
                self.index.db.execute("UPDATE tests SET outcome = 'crashed' WHERE outcome = 'running'")
            self.index.set_run({"finished_unix_ns": str(time.time_ns()), "exitstatus": str(int(exitstatus))})
            self.index.finish()
        except Exception as exc:
            if self.stopped is None:  # else the one warning has been given
                self._warn(f"could not finish the run index: {exc}")
        pack = self.config.getoption("escope_pack")
        if pack:
            try:
                from .replay.archive import pack_run
                result = pack_run(self.run.path, Path(pack), include_all=False, html=False)
                self.packed = result
            except Exception as exc:
                self._warn(f"--escope-pack failed: {exc}")

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        if not self.is_controller:
            return
        tr = terminalreporter
        rootdir = Path(str(config.rootpath))
        run_rel = _rel(self.run.path, rootdir)
        # a recording that could not be written (disk full, a recorder fault) is not offered
        self.failed = [entry for entry in self.failed if Path(entry[1]).is_file()]
        if not self.failed:
            tr.write_sep("-", "escope")
            if tr.stats.get("failed") or tr.stats.get("error"):
                tr.write_line(f"no recording of a failed test was kept; run in {run_rel}")
            else:
                tr.write_line(f"no failed tests; run recorded in {run_rel}")
            self._summary_problems(tr)
            return
        what = "failed" if not self.interrupted else "failed or interrupted"
        tr.write_sep("=", f"escope: {len(self.failed)} {what} test recording(s)")
        for nodeid, path, failure in self.failed:
            tr.write_line(f"{nodeid}", bold=True, red=True)
            if failure:
                tr.write_line(f"  {failure[:200]}")
            tr.write_line(f"  recording: {_rel(Path(path), rootdir)}")
            tr.write_line(f"  replay:    escope replay {shlex.quote(nodeid)}")
            if os.environ.get("TERM_PROGRAM") == "vscode":
                tr.write_line(f"  VS Code:   code --open-url {shlex.quote(_vscode_link(nodeid, rootdir))}")
        if getattr(self, "packed", None):
            tr.write_line(f"packed: {self.packed}")
        elif os.environ.get("CI"):
            tr.write_line(f"CI: upload the failures with:  escope pack --run {run_rel} -o escope-recordings.tar.gz")
        self._summary_problems(tr)

    def _summary_problems(self, tr: Any) -> None:
        """The session's recorder faults with the number of tests each hit, and a stop."""
        for message, tests in self.fault_tests.items():
            tr.write_line(f"recorder fault in {len(tests)} test(s), first {tests[0]}: {message}; "
                          f"the tests ran normally", yellow=True)
        if self.stopped is not None:
            nodeid, reason = self.stopped
            tr.write_line(f"recording stopped at {nodeid}: the escope dir could not be written ({reason})",
                          yellow=True)


def _first_line(report: Any) -> str:
    try:
        crash = report.longrepr.reprcrash  # type: ignore[union-attr]
        return crash.message.splitlines()[0]
    except Exception:
        return ""


def _exc_line(exc: BaseException) -> str:
    """``KeyboardInterrupt`` or ``Exit: message``: one line for the index."""
    name = type(exc).__name__
    try:
        text = str(exc).strip().splitlines()
    except Exception:
        text = []
    return f"{name}: {text[0]}"[:300] if text else name


def _overall(phases: dict[str, str]) -> str:
    if phases.get("setup") == "error" or phases.get("teardown") == "error":
        return "error"
    if "failed" in phases.values():
        return "failed"
    if "skipped" in phases.values():
        return "skipped"
    if not phases:
        return "crashed"
    return "passed"


def _vscode_link(nodeid: str, rootdir: Path) -> str:
    """The link that replays a failure in VS Code's debugger (the escope
    extension's URI handler, docs/editors.md)."""
    from urllib.parse import urlencode
    return "vscode://pytest-escope.escope/replay?" + urlencode({"test": nodeid, "cwd": str(rootdir)})


def _rel(path: Path, base: Path) -> str:
    p, b = os.fspath(path), os.fspath(base)
    if p.startswith(b + os.sep):  # a recording under the run dir: twice per test, relpath is slow
        return p[len(b) + 1:]
    try:
        return os.path.relpath(p, b)
    except ValueError:
        return str(path)


def _git_commit(rootdir: Path) -> str:
    """The checked-out commit, read from .git without running git."""
    try:
        git = rootdir / ".git"
        head = (git / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = git / head[5:]
            if ref.exists():
                return ref.read_text().strip()
            packed = git / "packed-refs"
            if packed.exists():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + head[5:]):
                        return line.split()[0]
            return ""
        return head
    except OSError:
        return ""


def is_storage_error(exc: BaseException) -> bool:
    from .recorder.runs import is_storage_error as storage_error
    return storage_error(exc)
