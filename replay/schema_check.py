"""A file's schema checked against escope's own before any row is read.

A recording or run index comes from somewhere else, and SQLite computes
what its schema says when a row is read: a generated column ``value AS
(zeroblob(400000000))`` in ``meta`` is 400 MB per row, and sorting by one
in ``lines`` fills the temp directory.  So every table escope reads must
have exactly escope's columns, in its order, plain (no generated or hidden
column), with a declared type escope writes, as a rowid or WITHOUT ROWID
table as escope makes it; the file may hold no view or trigger (escope
never writes one).  Tables escope does not read are never looked at.

``bound`` caps the length of any string or blob SQLite makes on a
connection (``SQLITE_LIMIT_LENGTH``), so what the schema check cannot see
(a huge value in a plain column) costs at most one bounded row.
"""

from __future__ import annotations

import functools
from pathlib import Path

import apsw

from ..recorder import schema
from .errors import RecordingError

#: The longest string or blob read from an untrusted file: far above any
#: row escope writes (a value is bounded by --escope-max-value-size, a
#: source is compressed, a chunk holds at most a few hundred thousand
#: compressed events), far below what would exhaust memory.
MAX_LENGTH = 1 << 27

#: Declared types that may stand in for each other: early recordings
#: declared ``files.source`` TEXT, it is BLOB now; both read the same.
_INTERCHANGEABLE = frozenset({"TEXT", "BLOB"})

FIX = "it is damaged or was not written by pytest-escope; re-run the test, or copy the file again"


def bound(conn: apsw.Connection) -> None:
    """No string or blob longer than MAX_LENGTH on ``conn``: reading or
    computing one is an error (``SQLITE_TOOBIG``), not an allocation."""
    conn.limit(apsw.SQLITE_LIMIT_LENGTH, MAX_LENGTH)


@functools.lru_cache(maxsize=4)
def _reference(sql: str) -> dict[str, tuple]:
    """Each table of escope's own ``sql`` as ``_shape`` describes it."""
    mem = apsw.Connection(":memory:")
    try:
        mem.execute(sql)
        names = [r[0] for r in mem.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")]
        return {name: _shape(mem, "main", name) for name in names}
    finally:
        mem.close()


def _shape(conn: apsw.Connection, db: str, table: str) -> tuple:
    """(kind, without_rowid, ((column, declared type, pk, hidden), ...)):
    read from the schema alone, no row is touched."""
    listed = conn.execute("SELECT type, wr FROM pragma_table_list(?) WHERE schema = ?", (table, db)).fetchall()
    kind, wr = listed[0] if listed else ("?", 0)
    cols = tuple((name, (decl or "").upper()[:100], pk, hidden)
                 for _cid, name, decl, _notnull, _default, pk, hidden
                 in conn.execute("SELECT * FROM pragma_table_xinfo(?, ?)", (table, db)).fetchall())
    return kind, wr, cols


def _difference(table: str, want: tuple, got: tuple) -> str | None:
    """What makes ``got`` not escope's ``table``, in a few words, or None."""
    kind, wr, cols = got
    if kind != "table":
        return f"{table} is a {kind} table"
    for name, decl, _pk, hidden in cols:
        if hidden:
            what = "generated" if hidden in (2, 3) else "hidden"
            return f"{table}.{name} is a {what} column"
    if wr != want[1]:
        return f"{table} is {'' if wr else 'not '}WITHOUT ROWID"
    if [c[0] for c in cols] != [c[0] for c in want[2]]:
        return f"{table} has other columns than escope's"
    for (name, decl, pk, _), (_, want_decl, want_pk, _) in zip(cols, want[2]):
        if decl != want_decl and not {decl, want_decl} <= _INTERCHANGEABLE:
            shown = decl if len(decl) <= 20 else decl[:20] + "…"
            return f"{table}.{name} is declared {shown!r}, not {want_decl}"
        if pk != want_pk:
            return f"{table}.{name} is {'not ' if not pk else ''}part of the primary key"
    return None


def schema_problem(conn: apsw.Connection, *, index: bool = False, db: str = "main",
                   tables: tuple[str, ...] | None = None) -> str | None:
    """Why the tables escope reads from ``db`` (a recording, or a run index
    with ``index``) are not escope's own, in a few words, or None when they
    are.  Missing tables are the caller's to report (which ones a file needs
    depends on its version); ``tables`` checks those alone.  SQLite's errors
    (a corrupt schema) propagate as ``apsw.Error``."""
    reference = _reference(schema.INDEX_SCHEMA if index else schema.TABLES_SCHEMA)
    # a version-1 run index (no ``attempt`` column) is still escope's own
    older = _reference(schema.INDEX_SCHEMA_V1) if index else {}
    found = {}
    for kind, name in conn.execute(f"SELECT type, name FROM {db}.sqlite_schema").fetchall():
        if kind in ("view", "trigger"):
            return f"it has a {kind}, escope writes none"
        if kind == "table" and name in reference and (tables is None or name in tables):
            found[name] = _shape(conn, db, name)
    for name, shape in found.items():
        problem = _difference(name, reference[name], shape)
        if problem is not None and name in older and _difference(name, older[name], shape) is None:
            problem = None
        if problem is not None:
            return problem
    return None


def check_schema(conn: apsw.Connection, path: Path, *, db: str = "main",
                 tables: tuple[str, ...] | None = None) -> None:
    """RecordingError unless the recording behind ``conn`` has escope's schema."""
    try:
        problem = schema_problem(conn, db=db, tables=tables)
    except apsw.Error as exc:
        raise RecordingError(f"the recording is corrupt ({str(exc).splitlines()[0][:120]})", path=path,
                             fix="copy it again or re-run the test") from None
    if problem is not None:
        raise RecordingError(f"not an escope recording (its schema is not escope's: {problem})",
                             path=path, fix=FIX)
