"""Opening a recording safely: read-only, defensive, checked before trusted.

A recording is a file from somewhere else (a CI artifact, a colleague's
machine), so nothing in it is executed or believed before it is checked:

* SQLite opens it read-only (``SQLITE_OPEN_READONLY`` plus URI ``mode=ro``)
  in defensive mode with ``trusted_schema`` off, so a crafted schema cannot
  run functions through views or triggers, and no extension is ever loaded.
* The 100-byte SQLite header is read first: a file that is not SQLite, or
  shorter than the page count its header promises (a truncated download),
  is refused before SQLite sees it.
* Every table the replayer reads must exist *as a table* (a view named
  ``events`` would be someone else's code), ``meta.format`` must name the
  format, and ``meta.schema_version`` must be one this replayer knows.

A recording whose process died mid-write keeps a hot rollback journal next
to it, and has none of the secondary indexes (the writer builds them when
a test finishes).  A read-only connection can neither roll back nor index,
so the file and its journal are copied to a private temporary directory,
repaired there, and the copy is what gets opened; the original is never
touched.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import urllib.parse
from pathlib import Path

import apsw

from ..recorder import schema
from .errors import RecordingError, SchemaTooNewError

_SQLITE_MAGIC = b"SQLite format 3\x00"

#: Tables the replayer reads; ``faults`` and ``tasks`` are read when present.
REQUIRED_TABLES = frozenset(schema.TABLES)

_REINSTALL = "make a new recording with: pytest --escope"


def check_header(path: Path) -> None:
    """Refuse files that are not SQLite or are shorter than they claim."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise RecordingError("no such recording", path=path,
                             fix="check the path, or list recordings with: escope list") from None
    except OSError as exc:
        raise RecordingError(f"cannot read the file ({exc.strerror or exc})", path=path,
                             fix="check its permissions") from None
    if path.is_dir():
        raise RecordingError("is a directory, not a recording", path=path,
                             fix="pass a .sqlite recording, or use --run for a run directory")
    if size == 0:
        raise RecordingError("the file is empty, not an escope recording", path=path, fix=_REINSTALL)
    try:
        with open(path, "rb") as fh:
            header = fh.read(100)
    except OSError as exc:
        raise RecordingError(f"cannot read the file ({exc.strerror or exc})", path=path,
                             fix="check its permissions") from None
    if not header.startswith(_SQLITE_MAGIC):
        raise RecordingError("not an escope recording (not an SQLite file)", path=path,
                             fix="pass a .sqlite file from .escope/runs/*/tests/")
    if len(header) < 100:
        raise RecordingError("the file is truncated (incomplete header)", path=path,
                             fix="copy or download it again")
    page_size = int.from_bytes(header[16:18], "big")
    if page_size == 1:
        page_size = 65536
    page_count = int.from_bytes(header[28:32], "big")
    change_counter = header[24:28]
    valid_for = header[92:96]
    # The in-header page count is only authoritative when "version-valid-for"
    # matches the change counter (https://sqlite.org/fileformat2.html#in_header_database_size).
    if page_count and change_counter == valid_for and size < page_count * page_size:
        raise RecordingError(
            f"the file is truncated ({size} of {page_count * page_size} bytes)", path=path,
            fix="copy or download it again")


def _hot_journal(path: Path) -> Path | None:
    journal = Path(str(path) + "-journal")
    try:
        if journal.stat().st_size > 0:
            return journal
    except OSError:
        pass
    return None


def _private_copy(path: Path, journal: Path | None, *, index: bool) -> Path:
    """Copy a recording (and its hot journal) to a private temporary
    directory and repair the copy there: let SQLite roll a half-written
    transaction back, and build the secondary indexes a recording cut short
    never got.  The original is never touched; the copy goes at exit."""
    tmp = Path(tempfile.mkdtemp(prefix="escope-"))
    os.chmod(tmp, 0o700)
    atexit.register(shutil.rmtree, tmp, True)
    copy = tmp / path.name
    shutil.copyfile(path, copy)
    if journal is not None:
        shutil.copyfile(journal, Path(str(copy) + "-journal"))
    try:
        conn = apsw.Connection(str(copy), flags=apsw.SQLITE_OPEN_READWRITE)
        try:
            conn.config(apsw.SQLITE_DBCONFIG_DEFENSIVE, 1)
            conn.execute("PRAGMA trusted_schema=OFF")
            try:
                conn.enable_load_extension(False)
            except (AttributeError, apsw.Error):
                pass
            conn.execute("SELECT count(*) FROM sqlite_schema").fetchall()
            if index:
                with conn:
                    conn.execute(schema.create_indexes_sql())
        finally:
            conn.close()
    except apsw.Error as exc:
        raise RecordingError(f"the recording is corrupt ({_short(exc)})", path=path,
                             fix="the process that wrote it died mid-write; re-run the test") from None
    return copy


def connect_readonly(path: Path, *, immutable: bool = False) -> apsw.Connection:
    """A read-only, defensive connection; no checks of the content."""
    uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"
    if immutable:
        uri += "&immutable=1"
    conn = apsw.Connection(uri, flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
    conn.config(apsw.SQLITE_DBCONFIG_DEFENSIVE, 1)
    conn.execute("PRAGMA trusted_schema=OFF")
    conn.execute("PRAGMA cache_size=-65536")  # 64 MB: big films revisit the same index pages
    try:
        conn.enable_load_extension(False)
    except (AttributeError, apsw.Error):
        pass
    return conn


def open_recording(path: Path) -> tuple[apsw.Connection, dict[str, str]]:
    """Open and validate a recording; returns the connection and its meta."""
    path = Path(path)
    check_header(path)
    source = path
    journal = _hot_journal(path)
    if journal is not None:
        source = _private_copy(path, journal, index=True)
    try:
        conn = connect_readonly(source)
        kinds = dict(conn.execute("SELECT name, type FROM sqlite_schema").fetchall())
    except apsw.NotADBError:
        raise RecordingError("not an escope recording (not an SQLite database)", path=path,
                             fix="pass a .sqlite file from .escope/runs/*/tests/") from None
    except apsw.Error as exc:
        raise RecordingError(f"the recording is corrupt ({_short(exc)})", path=path,
                             fix="copy it again or re-run the test") from None
    if not kinds:
        raise RecordingError("not an escope recording (an empty database)", path=path, fix=_REINSTALL)
    if kinds.get("meta") != "table":
        raise RecordingError("not an escope recording (no meta table)", path=path,
                             fix="pass a .sqlite file from .escope/runs/*/tests/")
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except apsw.Error as exc:
        raise RecordingError(f"the recording is corrupt ({_short(exc)})", path=path,
                             fix="copy it again or re-run the test") from None
    if meta.get("format") != schema.FORMAT_NAME:
        raise RecordingError("not an escope recording (wrong format in meta)", path=path,
                             fix="pass a .sqlite file from .escope/runs/*/tests/")
    try:
        version = int(meta.get("schema_version", ""))
    except ValueError:
        raise RecordingError("the recording has no valid schema_version", path=path, fix=_REINSTALL) from None
    if version > schema.SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"recorded with schema {version}, newer than this escope reads (up to {schema.SCHEMA_VERSION})",
            path=path, fix="upgrade: pip install -U pytest-escope")
    if version < 1:
        raise RecordingError(f"unknown schema_version {version}", path=path, fix=_REINSTALL)
    missing = sorted(t for t in REQUIRED_TABLES if kinds.get(t) != "table")
    if missing:
        raise RecordingError(f"the recording lacks table(s) {', '.join(missing)}", path=path,
                             fix="it is damaged or not from pytest-escope; re-run the test")
    if any(kinds.get(name) != "index" for name in schema.INDEX_NAMES):
        # cut short before the writer indexed it (the test's process died)
        conn.close()
        source = _private_copy(source, None, index=True)
        conn = connect_readonly(source)
    return conn, meta


def _short(exc: BaseException) -> str:
    text = str(exc).split("\n")[0]
    for prefix in ("CorruptError: ", "NotADBError: ", "Error: "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return text[:120]
