"""``--escope-on-failure``: run the suite unrecorded, record only what failed.

The session runs with no tracer and without importing the recorder: this
plugin only notes, from the test reports, which tests failed.  At the end
of the session, once the session-scoped fixtures are torn down, each failed
test is run again in a fresh ``pytest --escope`` process of its own (see
``reruns.py``) until a recorded run fails or ``--escope-reruns`` recorded
runs have passed.

The reruns never touch the session's outcome: its exit status, its
reports, ``--junitxml`` and the pytest cache are the unrecorded run's.
Under pytest-xdist this plugin lives on the controller only, which sees
every worker's reports, so the reruns are made once, after all workers.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest


@dataclass
class FailedTest:
    """A test the unrecorded session failed, and what its reruns found."""

    nodeid: str
    phases: dict[str, str] = field(default_factory=dict)
    failure: str = ""
    duration_ns: int = 0
    #: (attempt, outcome, recording path or None, failure line) per recorded rerun
    attempts: list[tuple[int, str, Path | None, str]] = field(default_factory=list)
    #: why the test could not be rerun (the rerun's own error), or ""
    problem: str = ""

    @property
    def recorded_failure(self) -> tuple[int, str, Path | None, str] | None:
        for attempt in self.attempts:
            if attempt[1] not in ("passed", "skipped"):
                return attempt
        return None


def phase_outcome(report: pytest.TestReport) -> str:
    """A phase's outcome as the run index spells it."""
    if report.passed:
        return "passed"
    if report.skipped:
        return "skipped"
    return "failed" if report.when == "call" else "error"


class OnFailurePlugin:
    """Registered on the controller when ``--escope-on-failure`` is on."""

    def __init__(self, config: pytest.Config, reruns: int, escope_dir: Path, git_commit: str) -> None:
        self.config = config
        self.reruns = reruns
        self.escope_dir = escope_dir
        self.git_commit = git_commit
        #: phases and seconds of the tests in progress (xdist interleaves the workers' reports)
        self._running: dict[str, tuple[dict[str, str], list[float]]] = {}
        self.failed: dict[str, FailedTest] = {}
        self.run_path: Path | None = None
        self.skipped_why = ""
        self.interrupted = False
        self.packed = ""
        self.rerun_count, self.rerun_s = 0, 0.0

    def pytest_report_header(self, config: pytest.Config) -> str:
        return (f"escope: on failure (tests run unrecorded; each failed test is run again, recorded, "
                f"up to {self.reruns} times)")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # the only per-test work an all-green session pays: a dict entry per test
        nodeid, when = report.nodeid, report.when
        running = self._running.get(nodeid)
        if running is None:
            running = self._running[nodeid] = ({}, [0.0])
        phases, seconds = running
        seconds[0] += report.duration
        if phases.get(when) not in ("failed", "error"):  # a passing subtest report after a failing one
            phases[when] = phase_outcome(report)
        if report.failed and nodeid not in self.failed:
            self.failed[nodeid] = FailedTest(nodeid, phases, _first_line(report))
        if when == "teardown":
            del self._running[nodeid]
            entry = self.failed.get(nodeid)
            if entry is not None:
                entry.duration_ns = int(seconds[0] * 1e9)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # trylast: pytest's runner has torn the session-scoped fixtures down
        # (its own pytest_sessionfinish), so a rerun finds the ports, files
        # and locks they held released
        if not self.failed:
            return
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            self.skipped_why = "the session was interrupted; record the failed tests with: pytest --escope --lf"
            return
        if exitstatus in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR):
            self.skipped_why = (f"the session ended with exit status {int(exitstatus)}; "
                                f"record the failed tests with: pytest --escope --lf")
            return
        from .reruns import Reruns, RerunsUnavailable  # the recorder's run index, imported only now
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line("")
            tr.write_line(f"escope: recording {len(self.failed)} failed test(s) again "
                          f"(up to {self.reruns} run(s) each)")
        try:
            reruns = Reruns(self.config, exitstatus, self.escope_dir, self.git_commit)
        except RerunsUnavailable as exc:
            self.skipped_why = (f"{exc}; make it writable or pick another place, then: "
                                f"pytest --escope-on-failure --escope-dir=DIR")
            return
        self.run_path = reruns.run.path
        self.rerun_count, self.rerun_s = 0, 0.0
        try:
            for entry in self.failed.values():
                reruns.rerun(entry, self.reruns)
        except KeyboardInterrupt:
            # Ctrl-C stops the reruns, not the report of the session's own run
            self.interrupted = True
        finally:
            self.rerun_count, self.rerun_s = reruns.runs, reruns.wall_ns / 1e9
            reruns.close()
        pack = self.config.getoption("escope_pack")
        if pack:
            try:
                from .replay.archive import pack_run
                # every recording of this run is a failed test's: the passing reruns go too, for escope diff
                self.packed = pack_run(self.run_path, Path(pack), include_all=True, html=False)
            except Exception as exc:
                self.packed = f"--escope-pack failed: {exc}"

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        if not self.failed:
            return
        tr = terminalreporter
        rootdir = Path(str(config.rootpath))
        if self.skipped_why:
            tr.write_sep("=", "escope: no failed test recorded")
            tr.write_line(self.skipped_why, yellow=True)
            return
        tr.write_sep("=", f"escope: {len(self.failed)} failed test(s) recorded again "
                          f"({self.rerun_count} run(s), {self.rerun_s:.1f} s)")
        for entry in self.failed.values():
            _summary_lines(tr, entry, rootdir, self.run_path.name if self.run_path else "")
        if self.interrupted:
            tr.write_line("reruns interrupted; record the failed tests with: pytest --escope --lf", yellow=True)
        if self.packed:
            tr.write_line(f"packed: {self.packed}")
        elif os.environ.get("CI") and self.run_path is not None:
            tr.write_line(f"CI: upload the recordings with:  escope pack --all --run {_rel(self.run_path, rootdir)} "
                          f"-o escope-recordings.tar.gz")


def _summary_lines(tr: Any, entry: FailedTest, rootdir: Path, run_id: str) -> None:
    """Per failed test: the recorded failure and how to replay it, or how
    many recorded runs passed."""
    quoted = shlex.quote(entry.nodeid)
    tr.write_line(entry.nodeid, bold=True, red=True)
    if entry.failure:
        tr.write_line(f"  {entry.failure[:200]}")
    if entry.problem:
        tr.write_line(f"  could not be run again: {entry.problem}", yellow=True)
        tr.write_line(f"  record it with: pytest --escope {quoted}")
        return
    found = entry.recorded_failure
    passed = sum(1 for a in entry.attempts if a[1] in ("passed", "skipped"))
    if found is not None:
        attempt, outcome, path, failure = found
        tr.write_line(f"  {outcome} again in recorded run {attempt}"
                      + (f": {failure[:160]}" if failure and not failure.endswith(entry.failure) else ""))
        if path is not None:
            tr.write_line(f"  recording: {_rel(path, rootdir)}")
        tr.write_line(f"  replay:    escope replay {quoted}")
        if passed:
            tr.write_line(f"  it passed in {passed} recorded run(s) first: probably flaky")
            tr.write_line(f"  diff:      escope diff {quoted}")
        return
    if not entry.attempts:
        tr.write_line("  not run again (reruns interrupted)")
        return
    tr.write_line(f"  not reproduced in {len(entry.attempts)} recorded run(s): probably flaky; "
                  "the passing recordings are kept for escope diff")
    # no failing recording in this run: every line here works as pasted; the
    # diff needs a run where a recording of the test failed, named in words
    tr.write_line(f"  replay:    escope replay {quoted}")
    tr.write_line(f"  record more runs: pytest --escope-on-failure --escope-reruns 10 {quoted}")
    tr.write_line(f"  once a recorded run fails (here or in CI): escope diff {quoted} --run <that run> --run {run_id}")


def _first_line(report: pytest.TestReport) -> str:
    try:
        crash = report.longrepr.reprcrash  # type: ignore[union-attr]
        return crash.message.splitlines()[0][:300]
    except Exception:
        return ""


def _rel(path: Path, base: Path) -> str:
    try:
        rel = os.path.relpath(path, base)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel

