"""The process that owns the run: a plain session, or pytest-xdist's controller.

It starts the run (dir, index, facts), tells each xdist worker which run to
write into, collects the failed tests' recordings from every report, ends
the run once the session is over and prints the summary.  A recorded rerun
of ``--escope-on-failure`` is a controller of a run its session started.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from .errors import unavailable
from .lifecycle import TestRecording
from .recorder.git import git_commit
from .recorder.run_session import RunSession, is_storage_error, relative
from .settings import Settings


def start_run(config: pytest.Config, settings: Settings) -> RunSession:
    """The session's own run, or the session's run a recorded rerun joins."""
    rootdir = Path(str(config.rootpath))
    escope_dir = settings.escope_dir
    try:
        if settings.rerun_of:
            session = RunSession.join(escope_dir, settings.rerun_of)
        else:
            session = RunSession.start(
                escope_dir,
                args=shlex.join(config.invocation_params.args),
                rootdir=rootdir,
                git_commit=git_commit(rootdir),
                strategy=settings.recorder.strategy,
                backend=settings.recorder.backend or "",
                # a reader settles the rows of a run whose controller is gone
                pid=str(os.getpid()),
            )
        # each process's own: a reader settles the rows of a process that died
        session.mark_process("main", settings.attempt)
        return session
    except Exception as exc:
        if not is_storage_error(exc):
            raise
        raise unavailable(escope_dir, exc) from None


class Controller(TestRecording):
    """Registered as ``escope-session`` in the process that owns the run."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        super().__init__(config, settings, start_run(config, settings), worker="main")
        self.packed: str | None = None

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["escope_run_id"] = self.run.run_id

    def _say(self, message: str) -> None:
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            # (a Python warning here would print the message a second time,
            # with a line of escope's code, outside pytest's warning capture)
            tr.write_line(f"escope warning: {message}", yellow=True)
        else:
            super()._say(message)

    def _kept_interrupted(self, nodeid: str, path: str, failure: str) -> None:
        self.failed.append((nodeid, path, failure))
        self.interrupted += 1

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # every worker's failed reports reach the controller, with the recording in their user_properties
        if not report.failed:
            return
        for name, value in report.user_properties:
            if name == "escope_recording":
                entry = (report.nodeid, str(value), first_line(report))
                if all(e[0] != report.nodeid for e in self.failed):
                    self.failed.append(entry)

    # -- end of session -----------------------------------------------------------

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.recorder.forked:
            return  # the run index belongs to the parent
        self.session.close_recorder()
        try:
            self.session.settle_running()
            self.session.finish({"exitstatus": str(int(exitstatus))})
        except Exception as exc:
            if self.stopped is None:  # else the one warning has been given
                self._warn(f"could not finish the run index: {exc}")
        pack = self.config.getoption("escope_pack")
        if pack:
            try:
                from .replay.archive import pack_run
                self.packed = pack_run(self.run.path, Path(pack), include_all=False, html=False)
            except Exception as exc:
                self._warn(f"--escope-pack failed: {exc}")

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        tr = terminalreporter
        rootdir = Path(str(config.rootpath))
        run_rel = relative(self.run.path, rootdir)
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
            tr.write_line(f"  recording: {relative(Path(path), rootdir)}")
            tr.write_line(f"  replay:    escope replay {shlex.quote(nodeid)}")
            if os.environ.get("TERM_PROGRAM") == "vscode":
                tr.write_line(f"  VS Code:   code --open-url {shlex.quote(vscode_link(nodeid, rootdir))}")
        if self.packed:
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


class RerunController(Controller):
    """A recorded rerun of ``--escope-on-failure`` (pytest_escope/reruns.py):
    it writes attempt N into its session's run, and the session ends the
    run once every rerun is done."""

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.recorder.forked:
            return
        self.session.close_recorder()
        try:
            self.session.settle_running(self.attempt)
        finally:
            self.session.close()


def first_line(report: Any) -> str:
    """The first line of a failed report's crash message, or ""."""
    try:
        crash = report.longrepr.reprcrash  # type: ignore[union-attr]
        return crash.message.splitlines()[0]
    except Exception:
        return ""


def vscode_link(nodeid: str, rootdir: Path) -> str:
    """The link that replays a failure in VS Code's debugger (the escope
    extension's URI handler, docs/editors.md)."""
    return "vscode://pytest-escope.escope/replay?" + urlencode({"test": nodeid, "cwd": str(rootdir)})
