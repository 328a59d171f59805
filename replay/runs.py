"""Finding things on disk: the escope dir, a run, a test's recording.

``resolve_run`` is the one place that turns what the user typed after
``--run`` (a run id, a run directory, an archive) into a run directory;
archive support plugs in here through ``replay.archive.extract_run`` so
every command gets it at once.  ``resolve_test`` implements the TEST
rule (docs/replay.md, "Choosing what to open"; ``escope help test``): a
recording path, a full node id, a unique part of one, or nothing (the
first failed test of the latest run that has tests).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apsw

from ..recorder.liveness import process_gone, process_key
from .errors import AmbiguousTestError, RecordingError, RunError, UnknownTestError
from .opening import _hot_journal, connect_readonly
from .schema_check import FIX, bound, schema_problem

ESCOPE_DIR_ENV = "ESCOPE_DIR"
_RECORD_FIRST = "record a run with: pytest --escope"


@dataclass
class TestEntry:
    """One row of a run's index."""

    test_id: str
    worker: str
    outcome: str
    setup: str | None
    call: str | None
    teardown: str | None
    duration_ns: int | None
    events: int
    dropped: int
    bytes: int
    recording: Path | None
    failure: str | None
    started_ns: int | None
    #: 0: the session's own run; N: the Nth recorded rerun ``--escope-on-failure`` made
    attempt: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "test": self.test_id, "worker": self.worker, "outcome": self.outcome,
            "phases": {"setup": self.setup, "call": self.call, "teardown": self.teardown},
            "duration_ns": self.duration_ns, "events": self.events, "dropped": self.dropped,
            "bytes": self.bytes, "recording": str(self.recording) if self.recording else None,
            "failure": self.failure, "attempt": self.attempt,
        }


#: Outcomes whose recordings ``--failed``, ``escope pack`` and a bare
#: ``escope replay`` look for: the test failed, or did not finish (the
#: process died: ``crashed``; Ctrl-C or ``pytest.exit()``: ``interrupted``).
NOT_PASSED = ("failed", "error", "crashed", "interrupted")


@dataclass
class Run:
    """One run directory and what its index says."""

    run_id: str
    path: Path
    facts: dict[str, str] = field(default_factory=dict)
    tests: list[TestEntry] = field(default_factory=list)
    #: Newer runs passed over because they hold no test (see ``resolve_run``).
    newer_empty: list[str] = field(default_factory=list)

    def failed(self) -> list[TestEntry]:
        return [t for t in self.tests if t.outcome in NOT_PASSED]


def find_escope_dir(explicit: str | os.PathLike[str] | None = None, *, required: bool = True) -> Path | None:
    """``--escope-dir``, then ``$ESCOPE_DIR``, then ``.escope`` here or above."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_dir():
            raise RunError(f"no escope directory at {path}", fix="check --escope-dir, or " + _RECORD_FIRST)
        return path
    env = os.environ.get(ESCOPE_DIR_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise RunError(f"${ESCOPE_DIR_ENV} points to {path}, which is not a directory",
                           fix=f"fix ${ESCOPE_DIR_ENV}, or " + _RECORD_FIRST)
        return path
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        candidate = folder / ".escope"
        if candidate.is_dir():
            return candidate
    if required:
        raise RunError("no .escope directory here or in any parent directory",
                       fix=_RECORD_FIRST + " (or pass --escope-dir DIR)")
    return None


def list_run_ids(escope_dir: Path) -> list[str]:
    """Run ids, oldest first (ids start with the UTC time, so they sort)."""
    runs = escope_dir / "runs"
    if not runs.is_dir():
        return []
    return sorted(p.name for p in runs.iterdir() if (p / "index.sqlite").is_file())


def _run_dir_from_archive(path: Path) -> Path:
    """Archives are read by ``replay.archive`` when it is installed."""
    try:
        from . import archive  # type: ignore[attr-defined]
        extract = archive.extract_run
    except (ImportError, AttributeError):
        raise RunError(f"{path} is a file, not a run directory",
                       fix="pass a run id or a directory from .escope/runs/ (see: escope list)") from None
    return Path(extract(path))


def resolve_run(spec: str | os.PathLike[str] | None = None, escope_dir: Path | None = None) -> Run:
    """The run named by ``spec`` (id, unique id prefix, run dir, archive) or the latest."""
    if spec is not None:
        path = Path(spec).expanduser()
        if path.is_dir():
            if not (path / "index.sqlite").is_file():
                from .archive import find_extracted_run
                extracted = find_extracted_run(path)
                if extracted is not None:
                    return read_run(extracted)
                raise RunError(f"{path} is not a run directory (no index.sqlite)",
                               fix="pass a directory from .escope/runs/ (see: escope list)")
            return read_run(path)
        if path.is_file():
            return read_run(_run_dir_from_archive(path))
        if str(spec).endswith((".tar.gz", ".tgz")) or os.sep in str(spec):
            raise RunError(f"no run directory or archive at {path}",
                           fix="check the path (see runs with: escope list --all)")
    base = escope_dir or find_escope_dir()
    assert base is not None
    ids = list_run_ids(base)
    if spec is None:
        latest = base / "latest"
        run_id = None
        try:
            run_id = latest.read_text(encoding="utf-8").strip()
        except OSError:
            pass
        if not run_id or run_id not in ids:
            if not ids:
                raise RunError(f"no runs in {base}", fix=_RECORD_FIRST)
            run_id = ids[-1]
        return _latest_with_tests(base, ids, run_id)
    text = str(spec)
    matches = [i for i in ids if i == text] or [i for i in ids if i.startswith(text)]
    if not matches:
        where = f" --escope-dir {shlex.quote(str(escope_dir))}" if escope_dir else ""
        raise RunError(f"no run {text!r} in {base}", fix=f"see the runs with: escope list --all{where}")
    if len(matches) > 1:
        raise RunError(f"run {text!r} is ambiguous ({', '.join(matches[:5])})", fix="give more of the run id")
    return read_run(base / "runs" / matches[0])


def _latest_with_tests(base: Path, ids: list[str], run_id: str) -> Run:
    """The run ``latest`` names, or, when it holds no test (``-k`` matched
    nothing, collection failed), the newest older run that does: an empty
    run must not hide the failures a bare ``escope replay`` looks for."""
    run = read_run(base / "runs" / run_id)
    if run.tests:
        return run
    empty = [run_id]
    for older in reversed(ids[:ids.index(run_id)] if run_id in ids else ids):
        candidate = read_run(base / "runs" / older)
        if candidate.tests:
            candidate.newer_empty = empty
            return candidate
        empty.append(older)
    return run


def read_run(path: Path) -> Run:
    """Read a run's index (read-only; a run still being written is fine)."""
    index = path / "index.sqlite"
    conn = None
    try:
        try:
            conn = connect_readonly(index)
            problem = schema_problem(conn, index=True)
        except apsw.Error:
            # A live run keeps its index in WAL mode; read the file as it is.
            if conn is not None:
                conn.close()
            conn = connect_readonly(index, immutable=True)
            problem = schema_problem(conn, index=True)
        if problem is not None:
            # before any row is read: a generated column computes whatever it says
            raise RunError(f"the run index {index} is not escope's ({problem})", fix=FIX)
        facts = dict(conn.execute("SELECT key, value FROM run").fetchall())
        # a version-1 index has no attempt column: every row is the session's own run
        has_attempt = any(r[1] == "attempt" for r in conn.execute("SELECT * FROM pragma_table_info('tests')"))
        attempt = "attempt" if has_attempt else "0"
        rows = conn.execute(
            "SELECT test_id, worker, outcome, setup, call, teardown, duration_ns, events, dropped, bytes, "
            f"recording, failure, started_ns, {attempt} FROM tests "
            "ORDER BY coalesce(started_ns, 0), rowid").fetchall()
    except apsw.Error as exc:
        raise RunError(f"cannot read the run index {index} ({str(exc).splitlines()[0][:100]})",
                       fix="the run is damaged; pick another with --run (see: escope list --all)") from None
    finally:
        if conn is not None:
            conn.close()
    tests = []
    for r in rows:
        rec = path / r[10] if r[10] else None
        tests.append(TestEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7] or 0, r[8] or 0, r[9] or 0,
                               rec, r[11], r[12], r[13] if type(r[13]) is int else 0))
    # a test's recorded reruns (made after the session) are listed right after its own row
    first = {}
    for position, t in enumerate(tests):
        first.setdefault(t.test_id, position)
    tests.sort(key=lambda t: (first[t.test_id], t.attempt))
    controller = facts.get(process_key("main"))
    gone = process_gone(controller) if controller else _pid_gone(facts.get("pid", ""))
    _settle_running(tests, facts, finished="finished_unix_ns" in facts or gone)
    for t in tests:
        if t.outcome in ("running", "crashed"):
            _from_disk(t)
    return Run(facts.get("run_id", path.name), path, facts, tests)


def _settle_running(tests: list[TestEntry], facts: dict[str, str], *, finished: bool) -> None:
    """A test the index still calls ``running`` whose process is gone crashed.

    The controller marks such rows at session end, but a process that dies
    (``os._exit``, SIGKILL, a segfault, pytest-timeout's thread method)
    never gets there.  A row is settled as ``crashed`` when the run has
    finished or its controller process no longer exists here, when the
    process of its worker (``run`` key ``process.<worker>``: host, pid and
    start time, ``recorder/liveness.py``) no longer exists, when its worker
    started a later test, or when its recording is incomplete and the
    process that wrote it no longer exists here.  A test running right now
    in another xdist worker or session stays ``running``: its process is
    alive, and a reused pid is told apart by its start time.
    """
    last_start: dict[str, int] = {}
    for t in tests:
        if t.started_ns is not None:
            last_start[t.worker] = max(last_start.get(t.worker, 0), t.started_ns)
    for t in tests:
        if t.outcome != "running":
            continue
        worker = facts.get(process_key(t.worker, t.attempt))
        if (finished or (t.started_ns or 0) < last_start.get(t.worker, 0)
                or (worker is not None and process_gone(worker)) or _writer_gone(t.recording)):
            t.outcome = "crashed"


def _writer_gone(recording: Path | None) -> bool:
    """The recording is incomplete and its writer's pid is not alive here."""
    if recording is None or not recording.is_file():
        return False
    # A writer killed mid-chunk leaves a hot journal, which a read-only
    # connection refuses to read past.  A hot journal means the final meta
    # (``complete = 1``) never committed, and the pid was committed with the
    # file's first transaction: read it ignoring the journal (immutable).
    hot = _hot_journal(recording) is not None
    try:
        conn = connect_readonly(recording, immutable=hot)
        try:
            if schema_problem(conn) is not None:
                return False  # replaying it says what is wrong
            facts = dict(conn.execute(
                "SELECT key, value FROM meta WHERE key IN ('complete', 'pid', 'process')").fetchall())
        finally:
            conn.close()
        if not hot and facts.get("complete") != "0":
            return False
        if "process" in facts:
            return process_gone(str(facts["process"]))
        pid = int(facts.get("pid", ""))
    except (apsw.Error, ValueError, OSError):
        return False
    return _pid_gone(pid)


def _pid_gone(pid: int | str) -> bool:
    """True when ``pid`` names no process here (False when unknown)."""
    try:
        pid = int(pid)
    except ValueError:
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _from_disk(t: TestEntry) -> None:
    """A row the index never finished (its process died, or the disk filled
    before the last write) holds the numbers of the test's start: take the
    events and bytes from the recording as it is on disk, and no recording
    when there is no file."""
    rec = t.recording
    if rec is None:
        return
    try:
        t.bytes = rec.stat().st_size
    except OSError:
        t.recording = None
        t.bytes = 0
        return
    events = _events_on_disk(rec)
    if events is not None:
        t.events = events


def _events_on_disk(path: Path) -> int | None:
    """How many steps the file holds, as a reader of it would find them (a
    hot journal of a half-written chunk is rolled back in a private copy,
    never in the original)."""
    journal = _hot_journal(path)
    tmp = None
    try:
        if journal is None:
            conn = connect_readonly(path)
        else:
            import shutil
            import tempfile
            tmp = tempfile.mkdtemp(prefix="escope-list-")
            copy = Path(tmp) / path.name
            shutil.copyfile(path, copy)
            shutil.copyfile(journal, Path(str(copy) + "-journal"))
            conn = apsw.Connection(str(copy))  # a writer rolls the journal back
            conn.config(apsw.SQLITE_DBCONFIG_DEFENSIVE, 1)
            conn.execute("PRAGMA trusted_schema=OFF")
            bound(conn)
        try:
            # before any row is read: a generated column computes whatever it says
            if schema_problem(conn, tables=("chunks", "events")) is not None:
                return None
            packed = conn.execute("SELECT coalesce(sum(steps), 0) FROM chunks").fetchone()[0]
            unpacked = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        finally:
            conn.close()
        if type(packed) is not int or type(unpacked) is not int or packed < 0:
            return None
        return packed + unpacked
    except (apsw.Error, OSError):
        return None
    finally:
        if tmp is not None:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)


def _looks_like_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def opened_entry(rows: list[TestEntry]) -> TestEntry:
    """Which of one test's rows TEST opens: a test rerun by
    ``--escope-on-failure`` has an unrecorded row (attempt 0) and a row per
    recorded rerun.  The first recording that failed is the one to look at;
    when every recorded rerun passed, the last of them."""
    recorded = [t for t in rows if t.recording is not None]
    failed = [t for t in recorded if t.outcome in NOT_PASSED]
    if failed:
        return failed[0]
    if recorded:
        return recorded[-1]
    return rows[0]


def match_tests(run: Run, text: str) -> list[TestEntry]:
    """Exact id, else the tests whose id (or recording name) contains ``text``."""
    exact = [t for t in run.tests if t.test_id == text]
    if exact:
        return [opened_entry(exact)]
    found: dict[str, list[TestEntry]] = {}
    for t in run.tests:
        if text in t.test_id or (t.recording is not None and text in t.recording.name):
            found.setdefault(t.test_id, []).append(t)
    return [opened_entry([t for t in run.tests if t.test_id == tid]) for tid in found]


def _exact_test(text: str, run_spec: str | None, escope_dir: Path | None) -> bool:
    """Whether a test of the run has exactly this id."""
    try:
        run = resolve_run(run_spec, escope_dir) if find_escope_dir(escope_dir, required=False) or run_spec \
            else None
    except RunError:
        return False
    return run is not None and any(t.test_id == text for t in run.tests)


def resolve_test(spec: str | os.PathLike[str] | None, run_spec: str | None = None,
                 escope_dir: Path | None = None) -> tuple[Path, TestEntry | None]:
    """The recording file for TEST (the rule above), plus its index row when known."""
    listing = "escope list" + (f" --run {shlex.quote(str(run_spec))}" if run_spec else "") + (
        f" --escope-dir {shlex.quote(str(escope_dir))}" if escope_dir else "")
    if spec is not None:
        path = Path(spec).expanduser()
        if path.is_file() and (path.suffix == ".sqlite" or _looks_like_sqlite(path)):
            return path, None
        if path.suffix == ".sqlite" and not path.exists():
            raise RecordingError("no such recording", path=path,
                                 fix=f"check the path, or list recordings with: {listing}")
        if path.exists() and not _exact_test(str(spec), run_spec, escope_dir):
            # a path that exists is a path, never a part of a test id; only
            # an exact test id wins (``escope run`` names a script's
            # recording after the script)
            what = "a directory" if path.is_dir() else "not an SQLite file"
            raise RecordingError(f"{what}, so not a recording", path=path,
                                 fix=f"pass a .sqlite recording or a test id (see: {listing})")
    run = resolve_run(run_spec, escope_dir)
    if spec is None:
        failed = [t for t in run.failed() if t.recording is not None]
        if not failed:
            raise UnknownTestError(f"no failed test with a recording in run {run.run_id}",
                                   fix=f"name one: escope replay TEST (see: {listing})")
        entry = failed[0]
    else:
        matches = match_tests(run, str(spec))
        if not matches:
            raise UnknownTestError(f"no test matching {str(spec)!r} in run {run.run_id}",
                                   fix=f"see the tests with: {listing}")
        if len(matches) > 1:
            raise AmbiguousTestError(f"{str(spec)!r} matches {len(matches)} tests in run {run.run_id}",
                                     [t.test_id for t in matches], fix="name one of them")
        entry = matches[0]
    if entry.recording is None:
        raise UnknownTestError(
            f"test {entry.test_id} {entry.outcome} and its recording was not kept",
            fix="re-run it with: pytest --escope --escope-keep=all")
    return entry.recording, entry
