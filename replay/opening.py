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

The film is stored as compressed chunks (schema 2); queries need it as
rows with indexes.  A read-only connection can do neither, and a recording
whose process died mid-write also keeps a hot rollback journal next to it.
So the file (and its journal) is copied to a private directory, rolled
back, unpacked and indexed there, and the copy is what gets opened; the
original is never touched.  A small film is unpacked into a temporary
directory removed at exit; a big one (``CACHE_FROM_STEPS``) is kept in the
user's cache, keyed by the file's content hash, so only the first command
on it pays for unpacking.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Callable

import apsw

from ..recorder import schema
from .errors import RecordingError, SchemaTooNewError
from .schema_check import bound, check_schema, schema_problem

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


#: A film of at least this many steps is unpacked once into the user's
#: cache; a smaller one (well under a second to unpack) into a temporary
#: directory removed at exit.
CACHE_FROM_STEPS = 50_000

#: What the cache may hold before the least recently used entries go.
CACHE_MAX_ENTRIES = 32
CACHE_MAX_BYTES = 4 << 30

#: Films at least this long print one line of progress to stderr.
PROGRESS_FROM_STEPS = 200_000


def cache_dir() -> Path:
    """Where unpacked films are kept: ``$ESCOPE_FILM_CACHE``, else
    ``$XDG_CACHE_HOME/escope/unpacked``, else ``~/.cache/escope/unpacked``."""
    env = os.environ.get("ESCOPE_FILM_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "escope" / "unpacked"


def _content_key(path: Path, journal: Path | None) -> str:
    digest = hashlib.sha256()
    digest.update(f"schema {schema.SCHEMA_VERSION}\n".encode())
    for part in (path, journal):
        if part is None:
            continue
        with open(part, "rb") as fh:
            while True:
                block = fh.read(1 << 20)
                if not block:
                    break
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()[:40]


def _temp_dir() -> Path:
    tmp = Path(tempfile.mkdtemp(prefix="escope-"))
    os.chmod(tmp, 0o700)
    atexit.register(shutil.rmtree, tmp, True)
    return tmp


def _rebuild(copy: Path, target: Path, original: Path, *, progress: Callable[[int, int], None] | None) -> None:
    """Make ``target``: a new database with escope's own schema, filled from
    ``copy`` (a private copy of the recording, with its hot journal if any),
    its chunks unpacked and its indexes built.  Only rows are taken from the
    file, never its schema, so no trigger or view of a hostile file exists
    in what the replayer reads."""
    try:
        conn = apsw.Connection(str(target), flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE)
        try:
            conn.config(apsw.SQLITE_DBCONFIG_DEFENSIVE, 1)
            conn.execute("PRAGMA trusted_schema=OFF")
            bound(conn)
            try:
                conn.enable_load_extension(False)
            except (AttributeError, apsw.Error):
                pass
            conn.execute("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF")
            conn.execute(schema.TABLES_SCHEMA)
            # the copy is writable and private: attaching it lets SQLite roll
            # back a half-written chunk from its hot journal
            conn.execute("ATTACH DATABASE ? AS src", (str(copy),))
            check_schema(conn, original, db="src")
            kinds = dict(conn.execute("SELECT name, type FROM src.sqlite_schema").fetchall())
            with conn:
                for table in schema.TABLES:
                    if kinds.get(table) != "table":
                        continue
                    cols = ", ".join(r[1] for r in conn.execute(f"PRAGMA main.table_info({table})").fetchall())
                    conn.execute(f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM src.{table}")
            conn.execute("DETACH DATABASE src")
            with conn:
                schema.unpack_chunks(conn, progress)
                conn.execute(schema.create_indexes_sql())
        finally:
            conn.close()
    except schema.ChunkError as exc:
        raise RecordingError(f"the recording is corrupt ({_one_line(str(exc))})", path=original,
                             fix="copy it again or re-run the test") from None
    except apsw.Error as exc:
        raise RecordingError(f"the recording is corrupt ({_short(exc)})", path=original,
                             fix="copy it again or re-run the test") from None


def _copy_into(directory: Path, path: Path, journal: Path | None, name: str) -> Path:
    copy = directory / name
    shutil.copyfile(path, copy)
    if journal is not None:
        shutil.copyfile(journal, Path(str(copy) + "-journal"))
    return copy


def _private_copy(path: Path, journal: Path | None, *, steps: int = 0, original: Path | None = None) -> Path:
    """A private, unpacked and indexed copy of a recording (see the module
    docstring); the original is never touched."""
    original = original or path
    progress = _Progress(original, steps) if steps >= PROGRESS_FROM_STEPS else None
    if steps >= CACHE_FROM_STEPS:
        cached = _cached_copy(path, journal, original, progress)
        if cached is not None:
            return cached
    tmp = _temp_dir()
    copy = _copy_into(tmp, path, journal, "original.sqlite")
    target = tmp / path.name
    _rebuild(copy, target, original, progress=progress)
    for leftover in (copy, Path(str(copy) + "-journal")):
        leftover.unlink(missing_ok=True)
    if progress is not None:
        progress.done(cached=False)
    return target


def _cached_copy(path: Path, journal: Path | None, original: Path,
                 progress: "_Progress | None") -> Path | None:
    """The unpacked copy from the cache, made there first if need be; None
    when the cache cannot be used (unwritable home, ...)."""
    try:
        directory = cache_dir()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = _content_key(path, journal)
        target = directory / f"{key}.sqlite"
        if target.is_file():
            if _usable_copy(target):
                os.utime(target)
                return target
            target.unlink()  # damaged in the cache: made again below
        work = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=directory))
    except OSError:
        return None
    try:
        copy = _copy_into(work, path, journal, "original.sqlite")
        film = work / "film.sqlite"
        _rebuild(copy, film, original, progress=progress)
        os.chmod(film, 0o600)
        os.replace(film, target)
    except OSError:
        return None
    finally:
        shutil.rmtree(work, True)
    if progress is not None:
        progress.done(cached=True)
    _prune_cache(directory, keep=target)
    return target


def _usable_copy(path: Path) -> bool:
    """A cached copy is ours, but the disk under it may not be: it must be a
    whole SQLite file with the format's meta and nothing left to unpack."""
    try:
        check_header(path)
        conn = connect_readonly(path)
        try:
            fmt = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
            packed = conn.execute("SELECT count(*) FROM chunks").fetchone()
            indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'index'")}
        finally:
            conn.close()
    except (RecordingError, apsw.Error, OSError):
        return False
    return (fmt == (schema.FORMAT_NAME,) and packed == (0,)
            and set(schema.INDEX_NAMES) <= indexes)


def _prune_cache(directory: Path, keep: Path) -> None:
    """Least recently used entries go past CACHE_MAX_ENTRIES or
    CACHE_MAX_BYTES; ``keep`` (the entry just used) counts first."""
    try:
        entries = []
        for entry in directory.glob("*.sqlite"):
            if entry == keep:
                continue
            st = entry.stat()
            entries.append((st.st_mtime, st.st_size, entry))
        entries.sort(reverse=True)
        total = keep.stat().st_size if keep.exists() else 0
        count = 1
        for _, size, entry in entries:
            total += size
            count += 1
            if count > CACHE_MAX_ENTRIES or total > CACHE_MAX_BYTES:
                entry.unlink()
    except OSError:
        pass


class _Progress:
    """One line on stderr for a long unpack: users wait only once per file."""

    def __init__(self, path: Path, steps: int) -> None:
        self.path = path
        self.steps = steps
        self.t0 = time.monotonic()
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < 1.0 and done < total:
            return
        self.last = now
        try:
            live = sys.stderr.isatty()
        except (AttributeError, ValueError):
            live = False
        if not self.shown:
            # a log gets one line up front; a terminal sees the count move
            self.shown = True
            if not live:
                sys.stderr.write(f"escope: unpacking the film of {self.path.name} ({total:,} steps), once\n")
                sys.stderr.flush()
        if live:
            end = "\n" if done >= total else "\r"
            sys.stderr.write(f"escope: unpacking the film of {self.path.name}: {done:,} of {total:,} steps{end}")
            sys.stderr.flush()

    def done(self, *, cached: bool) -> None:
        if not self.shown:
            return
        where = f"; kept in {cache_dir()}, the next command starts at once" if cached else ""
        sys.stderr.write(f"escope: unpacked {self.steps:,} steps in {time.monotonic() - self.t0:.1f} s{where}\n")
        sys.stderr.flush()


def connect_readonly(path: Path, *, immutable: bool = False) -> apsw.Connection:
    """A read-only, defensive connection; no checks of the content."""
    uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"
    if immutable:
        uri += "&immutable=1"
    conn = apsw.Connection(uri, flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
    conn.config(apsw.SQLITE_DBCONFIG_DEFENSIVE, 1)
    conn.execute("PRAGMA trusted_schema=OFF")
    bound(conn)
    conn.execute("PRAGMA cache_size=-65536")  # 64 MB: big films revisit the same index pages
    try:
        conn.enable_load_extension(False)
    except (AttributeError, apsw.Error):
        pass
    return conn


def open_recording(path: Path) -> tuple[apsw.Connection, dict[str, str]]:
    """Open and validate a recording; returns the connection and its meta.
    The connection reads rows and indexes (an unpacked copy if need be)."""
    conn, meta, _direct = open_film(path, direct=False)
    return conn, meta


def open_film(path: Path, *, direct: bool = True) -> tuple[apsw.Connection, dict[str, str], bool]:
    """Open and validate a recording: the connection, its meta, and whether
    the connection is to the file itself with its film in chunks and key
    frames (schema 3, ``film_store.FilmStore`` reads it); otherwise the
    connection reads rows and indexes, from an unpacked copy if need be."""
    path = Path(path)
    check_header(path)
    source = path
    journal = _hot_journal(path)
    if journal is not None:
        # a half-written chunk must be rolled back before anything is read
        source = _private_copy(path, journal, steps=_steps_ignoring_journal(path), original=path)
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
    # before any row is read: a generated column computes whatever it says.
    # meta first, so a newer recording is told apart by its version
    check_schema(conn, path, tables=("meta",))
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
    check_schema(conn, path)
    required = REQUIRED_TABLES - {"keyframes"} if version >= 2 else REQUIRED_TABLES - {"chunks", "keyframes"}
    if version >= 3:
        required = REQUIRED_TABLES
    missing = sorted(t for t in required if kinds.get(t) != "table")
    if missing:
        raise RecordingError(f"the recording lacks table(s) {', '.join(missing)}", path=path,
                             fix="it is damaged or not from pytest-escope; re-run the test")
    packed_steps = 0
    if kinds.get("chunks") == "table":
        try:
            row = conn.execute("SELECT count(*), coalesce(sum(steps), 0) FROM chunks").fetchone()
        except apsw.Error as exc:
            raise RecordingError(f"the recording is corrupt ({_short(exc)})", path=path,
                                 fix="copy it again or re-run the test") from None
        if row[0]:
            packed_steps = row[1] if type(row[1]) is int and row[1] > 0 else 1
    if direct and packed_steps and version >= 3 and source == path and _all_in_chunks(conn):
        return conn, meta, True
    if packed_steps or any(kinds.get(name) != "index" for name in schema.INDEX_NAMES):
        # the film is packed, or the test's process died before the writer indexed it
        conn.close()
        source = _private_copy(source, None, steps=packed_steps, original=path)
        conn = connect_readonly(source)
    return conn, meta, False


def _all_in_chunks(conn: apsw.Connection) -> bool:
    """Whether every event is in a chunk with its key frame: no rows left in
    the tables by ``--escope-max-events``, one key frame per chunk."""
    try:
        if conn.execute("SELECT 1 FROM events LIMIT 1").fetchone() is not None:
            return False
        # max() and count() of the small table, max() of the chunks' rowids:
        # counting the chunks would read a page of each
        row = conn.execute("SELECT (SELECT max(chunk) FROM chunks), (SELECT count(*) FROM keyframes), "
                           "(SELECT max(chunk) FROM keyframes)").fetchone()
    except apsw.Error:
        return False
    return row[0] == row[1] == row[2]


def _steps_ignoring_journal(path: Path) -> int:
    """How big the packed film is, read past a hot journal (only to decide
    where to unpack it and whether to show progress)."""
    try:
        conn = connect_readonly(path, immutable=True)
        try:
            if schema_problem(conn) is not None:
                return 0  # the private copy's check (_rebuild) says what is wrong
            row = conn.execute("SELECT coalesce(sum(steps), 0) FROM chunks").fetchone()
        finally:
            conn.close()
        return row[0] if type(row[0]) is int else 0
    except apsw.Error:
        return 0


def _one_line(text: str) -> str:
    return " ".join(text.split())[:160]


def _short(exc: BaseException) -> str:
    text = str(exc).split("\n")[0]
    for prefix in ("CorruptError: ", "NotADBError: ", "Error: "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return text[:120]
