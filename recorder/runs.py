"""The escope directory: runs, the run index, safe file names.

Layout (docs/user-guide.md, "Files")::

    .escope/latest                 id of the newest run
    .escope/runs/<run-id>/index.sqlite
    .escope/runs/<run-id>/tests/<safe-name>.sqlite
    .escope/runs/<run-id>/tests/<safe-name>.rerun<N>.sqlite   recorded rerun N (--escope-on-failure)
    .escope/cache/                 node index cache

The run index is written by every xdist worker at once, so it uses WAL and
a busy timeout; each write is one short transaction.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import secrets
from pathlib import Path
from typing import Any

import apsw

from . import schema

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME = 120


def new_run_id() -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z-" + secrets.token_hex(3)


def safe_name(test_id: str) -> str:
    """A file name for a test id that is valid on every OS and unique.

    Separators, ``..`` and anything outside ``[A-Za-z0-9._-]`` become ``_``;
    the name is cut to a bounded length and ends with a hash of the full id,
    so two ids never share a file even when they look alike after cleaning.
    """
    digest = hashlib.sha1(test_id.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    cleaned = _UNSAFE.sub("_", test_id).replace("..", "_").strip("._-") or "test"
    cleaned = cleaned[:MAX_NAME].rstrip("._-")
    return f"{cleaned}-{digest}"


def private_mkdir(path: Path) -> None:
    """Create ``path`` and every missing parent owner-only (0700).

    ``Path.mkdir(parents=True, mode=...)`` gives the parents the umask's mode
    (the mode applies to the last directory only), so ``.escope/`` and
    ``runs/`` would be world-readable under umask 022.  Directories that
    already exist are left as they are: they may be the user's own.
    """
    missing = []
    p = path
    while not p.is_dir() and p.parent != p:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            if not d.is_dir():
                raise


#: What SQLite raises when the file system refuses a write: disk full
#: (``SQLITE_FULL``), an ``EFBIG``/``EIO`` write (``SQLITE_IOERR``), a file or
#: directory that became read-only or vanished.
_STORAGE_ERRORS = (OSError, apsw.FullError, apsw.IOError, apsw.ReadOnlyError, apsw.CantOpenError,
                   apsw.PermissionsError)


def is_storage_error(exc: BaseException) -> bool:
    """True when ``exc`` says the escope dir cannot be written any more.

    Such a failure repeats for every later test, so the caller stops
    recording instead of retrying (docs/reliability.md, "Faults").
    """
    return storage_error_of(exc) is not None


def storage_error_of(exc: BaseException) -> BaseException | None:
    """The refused write behind ``exc``, or None.  A refused commit can
    surface as the error of the rollback that followed it ("cannot rollback
    - no transaction is active", with the refusal as its context), so the
    chain of causes and contexts is looked at too."""
    cur: BaseException | None = exc
    for _ in range(8):
        if cur is None:
            break
        if isinstance(cur, _STORAGE_ERRORS):
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


class RunIndex:
    """``index.sqlite`` of one run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        new = not path.exists()
        if new:
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        self.db = apsw.Connection(str(path))
        self.db.setbusytimeout(30_000)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
        except apsw.BusyError:
            pass
        # Two commits per test: in WAL mode NORMAL syncs at checkpoints only,
        # and a commit still survives the process dying (it is in the WAL);
        # FULL would sync every commit, a quarter of escope's own time
        # between the tests of a suite of small tests.
        self.db.execute("PRAGMA synchronous=NORMAL")
        with self.db:
            self.db.execute(schema.INDEX_SCHEMA)
            self.db.execute("INSERT OR IGNORE INTO run VALUES ('schema_version', ?)", (str(schema.INDEX_SCHEMA_VERSION),))
            self.db.execute("INSERT OR IGNORE INTO run VALUES ('format', 'pytest-escope run index')")

    def set_run(self, facts: dict[str, str]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO run VALUES (?, ?)", list(facts.items()))

    def upsert_test(self, row: dict[str, Any]) -> None:
        cols = list(row)
        sql = (f"INSERT OR REPLACE INTO tests ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})")
        with self.db:
            self.db.execute(sql, [row[c] for c in cols])

    def delete_test(self, test_id: str, worker: str, attempt: int = 0) -> None:
        with self.db:
            self.db.execute("DELETE FROM tests WHERE test_id = ? AND worker = ? AND attempt = ?",
                            (test_id, worker, attempt))

    def settle_running(self, attempt: int | None = None, test_id: str | None = None) -> None:
        """Rows still ``running`` belong to tests whose process died inside
        them: ``crashed``, for every attempt or one attempt (of one test)."""
        where, args = "outcome = 'running'", []
        if attempt is not None:
            where, args = where + " AND attempt = ?", [attempt]
        if test_id is not None:
            where, args = "test_id = ? AND " + where, [test_id, *args]
        with self.db:
            self.db.execute(f"UPDATE tests SET outcome = 'crashed' WHERE {where}", args)

    def bytes_used(self) -> int:
        """What the run's recordings add up to, as the index counts them."""
        return int(self.db.execute("SELECT coalesce(sum(bytes), 0) FROM tests").fetchall()[0][0])

    def attempt_row(self, test_id: str, attempt: int) -> dict[str, Any] | None:
        """The index row of one recorded rerun, as its pytest process wrote it."""
        names = ("outcome", "recording", "failure")
        rows = self.db.execute(f"SELECT {', '.join(names)} FROM tests WHERE test_id = ? AND attempt = ?",
                               (test_id, attempt)).fetchall()
        return dict(zip(names, rows[0])) if rows else None

    def finish(self) -> None:
        """Leave a single-file database behind, so archives need no -wal."""
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.db.execute("PRAGMA journal_mode=DELETE")
        except apsw.Error:
            pass

    def close(self) -> None:
        try:
            self.db.close()
        except apsw.Error:
            pass


class RunDir:
    """One run's directory; created by the controller, shared by workers."""

    def __init__(self, escope_dir: Path, run_id: str) -> None:
        self.escope_dir = escope_dir
        self.run_id = run_id
        self.path = escope_dir / "runs" / run_id
        self.tests_dir = self.path / "tests"
        self.index_path = self.path / "index.sqlite"
        self.cache_dir = escope_dir / "cache" / "nodes"

    @classmethod
    def create(cls, escope_dir: Path, run_id: str | None = None) -> "RunDir":
        run = cls(escope_dir, run_id or new_run_id())
        private_mkdir(run.tests_dir)
        private_mkdir(run.cache_dir)
        tmp = escope_dir / f".latest-{os.getpid()}"
        tmp.write_text(run.run_id + "\n", encoding="utf-8")
        os.replace(tmp, escope_dir / "latest")
        return run

    def recording_path(self, test_id: str, attempt: int = 0) -> Path:
        """Where a test's recording goes; recorded rerun N of it goes beside it."""
        rerun = f".rerun{attempt}" if attempt else ""
        return self.tests_dir / f"{safe_name(test_id)}{rerun}.sqlite"
