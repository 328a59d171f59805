"""The recorded reruns of ``--escope-on-failure``: one fresh pytest per run.

Each rerun is ``pytest --escope NODEID`` in a new process, started from the
session's invocation directory with its command-line options, rootdir and
ini file, so the test gets its fixtures, parametrization, marks, conftest
files and ``--escope-*`` options as a session that selected only it would.
A fresh process keeps no state of the session: no imported module, no
module global a test left behind, no fixture instance.  What the reruns
must not do is left out of the options: select other tests (``-k``,
``-m``, ``--lf``), stop early (``-x``), distribute (``-n``), debug
(``--pdb``), or write the session's reports (``--junitxml``), pytest cache
(a rerun gets an empty cache of its own) or ``--basetemp``.

A rerun writes its row (``attempt`` N) and its recording
(``<name>.rerunN.sqlite``) into the session's run, as docs/user-guide.md
("Recording only failed tests") describes.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .on_failure import FailedTest


def overall(phases: dict[str, str]) -> str:
    if phases.get("setup") == "error" or phases.get("teardown") == "error":
        return "error"
    if "failed" in phases.values():
        return "failed"
    return "passed"


#: Options a rerun leaves out, with whether each takes a value.
_DROPPED: dict[str, bool] = {
    "-k": True, "-m": True, "--deselect": True, "--maxfail": True, "--junitxml": True, "--junit-xml": True,
    "--junitprefix": True, "--junit-prefix": True, "--basetemp": True, "--report-log": True,
    "--html": True, "--json-report-file": True, "--last-failed-no-failures": True, "--lfnf": True,
    "-n": True, "--numprocesses": True, "--dist": True, "--maxprocesses": True, "--tx": True,
    "--rsyncdir": True, "--randomly-seed": True,
    # pytest-rerunfailures: a recorded rerun is one run of the test, its outcome unretried
    "--reruns": True, "--reruns-delay": True, "--only-rerun": True, "--rerun-except": True,
    "--escope-reruns": True, "--escope-pack": True, "--escope-dir": True,
    "-x": False, "--exitfirst": False, "--lf": False, "--last-failed": False, "--ff": False,
    "--failed-first": False, "--nf": False, "--new-first": False, "--sw": False, "--stepwise": False,
    "--sw-skip": False, "--stepwise-skip": False, "--sw-reset": False, "--stepwise-reset": False,
    "--cache-clear": False, "--pdb": False, "--trace": False, "--looponfail": False, "-f": False,
    "--collect-only": False, "--co": False, "--setup-only": False, "--setup-plan": False,
    "--escope-on-failure": False, "--escope": False,
}

#: How much of a rerun's output is kept to explain a rerun that could not run.
_TAIL = 4000


class RerunsUnavailable(Exception):
    """The run directory for the reruns cannot be written."""


def rerun_args(config: pytest.Config) -> list[str]:
    """The session's command-line options, as a rerun of one test needs them.

    The positional arguments (which tests to run) are dropped: the rerun
    names its test.  Options from ``PYTEST_ADDOPTS`` and the ini file's
    ``addopts`` reach the rerun as they reached the session.
    """
    args = [str(a) for a in config.invocation_params.args]
    positional = [str(a) for a in (config.option.file_or_dir or [])]
    # the positional arguments are the last of their value among the args
    for value in positional:
        for i in range(len(args) - 1, -1, -1):
            if args[i] == value:
                del args[i]
                break
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            continue
        if not arg.startswith("-") or arg == "-":
            out.append(arg)
            continue
        name, eq, _value = arg.partition("=")
        if name.startswith("--"):
            if name in _DROPPED:
                if _DROPPED[name] and not eq:
                    i += 1
                continue
            out.append(arg)
            continue
        # a short option: -k EXPR, -kEXPR, or a cluster of flags like -vx
        short = arg[:2]
        if short in ("-k", "-m", "-n"):
            if len(arg) == 2:
                i += 1
            continue
        if short == "-p" and len(arg) == 2 and i < len(args):
            # -p no:xdist and the like stay; xdist's own worker plugins never appear here
            out += [arg, args[i]]
            i += 1
            continue
        if short in ("-p", "-c", "-o", "-W", "-r"):
            out.append(arg)
            if len(arg) == 2 and i < len(args):
                out.append(args[i])
                i += 1
            continue
        if arg[1:].isalpha():
            kept = arg.replace("x", "").replace("f", "")
            if kept != "-":
                out.append(kept)
            continue
        out.append(arg)
    return out


def pytest_command() -> list[str]:
    """How this pytest was started: ``python -m pytest`` puts the current
    directory first on ``sys.path``, the ``pytest`` script does not, and an
    import the test makes may depend on it."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name != "__main__.py" and script.is_file() and script.suffix != ".py":
        return [sys.executable, str(script)]
    return [sys.executable, "-m", "pytest"]


class Reruns:
    """The run the recorded reruns are written to, and how to start one."""

    def __init__(self, config: pytest.Config, exitstatus: int, escope_dir: Path, git_commit: str) -> None:
        from .recorder.run_session import RunSession, is_storage_error

        self.config = config
        rootdir = Path(str(config.rootpath))
        self.escope_dir = escope_dir
        try:
            self.session = RunSession.start(
                escope_dir,
                args=_shlex_join(config.invocation_params.args),
                rootdir=rootdir,
                git_commit=git_commit,
                mode="on-failure",
                exitstatus=str(int(exitstatus)),
                pid=str(os.getpid()),
            )
        except Exception as exc:
            if not is_storage_error(exc):
                raise
            reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
            raise RerunsUnavailable(f"cannot write to {escope_dir} ({reason})") from None
        self.run = self.session.run
        self.tmp = Path(tempfile.mkdtemp(prefix="escope-rerun-"))
        self.cwd = Path(str(config.invocation_params.dir))
        self.base = pytest_command() + rerun_args(config) + self._settings()
        self.env = dict(os.environ)
        # a rerun records: an on-failure setting in the environment is this session's
        self.env.pop("PYTEST_ESCOPE", None)
        #: what the reruns cost, kept in the run's facts (benchmarks/on_failure.py reads them)
        self.runs = 0
        self._started = time.perf_counter_ns()
        self._cpu_before = _children_cpu_ns()

    def _settings(self) -> list[str]:
        """What every rerun adds to the session's options."""
        config = self.config
        out = ["--escope", f"--escope-dir={self.escope_dir}", f"--escope-rerun-run={self.run.run_id}",
               f"--rootdir={config.rootpath}", f"--basetemp={self.tmp / 'basetemp'}"]
        if config.inipath is not None:
            out.append(f"--config-file={config.inipath}")
        plugins = config.pluginmanager
        if plugins.has_plugin("cacheprovider"):
            # an empty cache of its own: the cache fixture works, and what
            # --lf reads next time stays the session's
            out += ["-o", f"cache_dir={self.tmp / 'cache'}"]
        if plugins.has_plugin("xdist"):
            out.append("--numprocesses=0")
        if plugins.has_plugin("junitxml"):
            out.append("--junitxml=")
        if plugins.has_plugin("pytest_cov") or plugins.has_plugin("_cov"):
            out.append("--no-cov")
        seed = getattr(config.option, "randomly_seed", None)
        if plugins.has_plugin("randomly") and isinstance(seed, int):
            # the order and random seed pytest-randomly gave the session
            out.append(f"--randomly-seed={seed}")
        return out

    def rerun(self, entry: FailedTest, limit: int) -> None:
        """Run ``entry`` recorded until a run fails or ``limit`` runs passed."""
        self._write_unrecorded(entry)
        passed = 0
        attempt = 0
        while passed < limit:
            attempt += 1
            outcome, path, failure = self._one(entry, attempt)
            if outcome is None:
                return
            entry.attempts.append((attempt, outcome, path, failure))
            if outcome in ("passed", "skipped"):
                passed += 1
            else:
                return

    def _write_unrecorded(self, entry: FailedTest) -> None:
        """Attempt 0: the session's own, unrecorded run of the test."""
        from .recorder.run_session import FinishedTest

        phases = entry.phases
        self.session.index_test(entry.nodeid, worker="main", outcome=overall(phases), phases=phases,
                                duration_ns=entry.duration_ns, done=FinishedTest(events=0), dropped=0,
                                failure=entry.failure or None, started_ns=None)

    def _one(self, entry: FailedTest, attempt: int) -> tuple[str | None, Path | None, str]:
        """One recorded rerun: (outcome, recording, failure), or (None, ...)
        when the rerun could not run the test (``entry.problem`` says why)."""
        target = str(Path(str(self.config.rootpath)) / entry.nodeid)
        cmd = self.base + [f"--escope-rerun-attempt={attempt}", "--", target]
        self.runs += 1
        proc = subprocess.run(cmd, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
        row = self.session.attempt_row(entry.nodeid, attempt)
        if row is None:
            entry.problem = _explain(proc.returncode, proc.stdout[-_TAIL:].decode("utf-8", "replace"))
            return None, None, ""
        outcome = row["outcome"]
        if outcome == "running":
            # the rerun's process died inside the test
            outcome = "crashed"
            self.session.settle_test(entry.nodeid, attempt)
        path = self.run.path / row["recording"] if row.get("recording") else None
        if path is not None and not path.is_file():
            path = None
        return outcome, path, row.get("failure") or ""

    @property
    def wall_ns(self) -> int:
        return time.perf_counter_ns() - self._started

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        try:
            self.session.finish({"reruns": str(self.runs), "reruns_wall_ns": str(self.wall_ns),
                                 "reruns_cpu_ns": str(_children_cpu_ns() - self._cpu_before)})
        finally:
            self.session.close()


def _children_cpu_ns() -> int:
    """User + system time of this process's reaped children: the reruns."""
    try:
        import resource
    except ImportError:  # Windows: not measured
        return 0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return int((usage.ru_utime + usage.ru_stime) * 1e9)


def _explain(code: int, output: str) -> str:
    """One line on why a rerun wrote no row: pytest's own error, if it gave one."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(("ERROR:", "ERROR ", "E ")) or "error" in line.lower():
            return line[:200]
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        return "the test was not collected on its own (pytest exit status 5)"
    return f"pytest exit status {code}" + (f": {lines[-1][:160]}" if lines else "")


def _shlex_join(args: Any) -> str:
    return shlex.join(str(a) for a in args)
