"""The recording file format: one SQLite database per recorded test.

This module is the contract between the recorder and the replayer.  The
replayer imports this module (and only this one) from ``recorder``; it holds
no tracing code.  ``docs/recording-format.md`` describes every table and
column and is checked against this constant by the tests.

Schema history:

1. First version: events, activations, frames, bindings, value snapshots,
   embedded (compressed) sources and the libcst nodes of the lines that ran.
2. The film is written as compressed chunks (table ``chunks``): one row per
   chunk the recorder spilled, holding that chunk's events, frames,
   activations, bindings and value snapshots column by column.  The
   relational tables keep their meaning; a reader unpacks the chunks into
   them (``unpack_chunks``) in a private copy before querying.
3. Chunks of about ``CHUNK_STEPS`` events, each with a row of ``keyframes``:
   the live state at the chunk's start and where its ids begin, so a reader
   rebuilds the state at a step from one chunk, without unpacking; and
   ``vals.detail`` is stored compact: scalar leaves as JSON scalars, and no
   text for the nested containers and objects whose text the reader
   rebuilds from their children (``forms.py``).
"""

from __future__ import annotations

import itertools
import zlib
from typing import Any

SCHEMA_VERSION = 3

#: A spill of the recorder's buffer is written as chunks of about this many
#: events: decoding one costs a few milliseconds.
CHUNK_STEPS = 2048

#: Value stored in ``meta.format`` so a foreign SQLite file is told apart
#: from a recording before any other table is trusted.
FORMAT_NAME = "pytest-escope recording"

# Event kinds, stored as small integers in ``events.kind``.
CALL = 1
LINE = 2
RETURN = 3
EXCEPTION = 4
HANDLED = 5
UNWIND = 6
YIELD = 7
RESUME = 8
CHECKPOINT = 9
EXTERNAL_CALL = 10
EXTERNAL_RETURN = 11

KIND_NAMES = {
    CALL: "call",
    LINE: "line",
    RETURN: "return",
    EXCEPTION: "exception",
    HANDLED: "handled",
    UNWIND: "unwind",
    YIELD: "yield",
    RESUME: "resume",
    CHECKPOINT: "checkpoint",
    EXTERNAL_CALL: "external_call",
    EXTERNAL_RETURN: "external_return",
}
KIND_CODES = {name: code for code, name in KIND_NAMES.items()}

# Bits of ``vals.flags``.
FLAG_TRUNCATED = 1
FLAG_REDACTED = 2
FLAG_UNRENDERABLE = 4

SCHEMA = """
-- key/value facts about the recording: schema_version, format, test, ...
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- every source file that ran, with its full text (zlib-compressed UTF-8,
-- read it with decode_source())
CREATE TABLE files (
    file INTEGER PRIMARY KEY,
    path TEXT NOT NULL,          -- relative to the rootdir when inside it
    sha256 TEXT,                 -- of the source text
    source BLOB                  -- zlib(UTF-8 text); NULL when not embedded
);

-- the statements (libcst node index) that ran at least one step
CREATE TABLE nodes (
    node INTEGER PRIMARY KEY,
    file INTEGER NOT NULL,
    first_line INTEGER NOT NULL,
    last_line INTEGER NOT NULL,
    kind TEXT NOT NULL,
    qualname TEXT NOT NULL,
    node_id TEXT NOT NULL,
    anchor TEXT NOT NULL
);

-- each line that ran, mapped to its innermost statement
CREATE TABLE lines (
    file INTEGER NOT NULL,
    line INTEGER NOT NULL,
    node INTEGER NOT NULL,
    PRIMARY KEY (file, line)
) WITHOUT ROWID;

-- code objects (functions, methods, class bodies, modules) that ran
CREATE TABLE codes (
    code INTEGER PRIMARY KEY,
    file INTEGER NOT NULL,
    name TEXT NOT NULL,
    qualname TEXT NOT NULL,
    first_line INTEGER NOT NULL,
    in_scope INTEGER NOT NULL
);

CREATE TABLE threads (
    thread INTEGER PRIMARY KEY,
    ident INTEGER NOT NULL,
    name TEXT NOT NULL
);

CREATE TABLE tasks (
    task INTEGER PRIMARY KEY,
    name TEXT NOT NULL
);

-- one Python frame; a generator's frame lives across several activations
CREATE TABLE frames (
    frame INTEGER PRIMARY KEY,
    code INTEGER NOT NULL,
    first_step INTEGER NOT NULL
);

-- one stretch of a frame on the stack: from call/resume to return/yield/unwind
CREATE TABLE activations (
    act INTEGER PRIMARY KEY,
    frame INTEGER NOT NULL,
    parent INTEGER,              -- the calling activation, NULL at the bottom
    thread INTEGER NOT NULL,
    task INTEGER,
    depth INTEGER NOT NULL,
    start_step INTEGER NOT NULL,
    end_step INTEGER             -- NULL while still on the stack at the end
);
CREATE INDEX activations_frame ON activations (frame, start_step);
CREATE INDEX activations_parent ON activations (parent, start_step);

-- the film: one row per step
CREATE TABLE events (
    step INTEGER PRIMARY KEY,
    kind INTEGER NOT NULL,
    act INTEGER NOT NULL,
    line INTEGER NOT NULL,
    time_ns INTEGER NOT NULL,    -- since the recording started
    value INTEGER                -- vals.value: return value, exception, checkpoint
);
CREATE INDEX events_act ON events (act, step);
-- every kind but LINE: filters on rare kinds and function breakpoints
CREATE INDEX events_kind ON events (kind, step) WHERE kind != 2;

CREATE TABLE names (
    name INTEGER PRIMARY KEY,
    text TEXT NOT NULL UNIQUE
);

-- a local name of a frame bound to a value (or object) from this step on
CREATE TABLE bindings (
    frame INTEGER NOT NULL,
    name INTEGER NOT NULL,
    step INTEGER NOT NULL,
    value INTEGER                -- NULL: the name was unbound (del)
);
CREATE INDEX bindings_frame ON bindings (frame, name, step);
CREATE INDEX bindings_name ON bindings (name, step, frame, value);

-- rendered values; rows sharing obj are snapshots of one mutable object
CREATE TABLE vals (
    value INTEGER PRIMARY KEY,
    obj INTEGER,                 -- NULL for immutable values
    step INTEGER NOT NULL,       -- the step this snapshot was taken at
    type TEXT NOT NULL,
    repr TEXT NOT NULL,
    detail TEXT,                 -- JSON: fields / items / entries, nested
    flags INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX vals_obj ON vals (obj, step) WHERE obj IS NOT NULL;

-- pytest phases of the test (setup, call, teardown)
CREATE TABLE phases (
    phase TEXT PRIMARY KEY,
    start_step INTEGER NOT NULL,
    end_step INTEGER,
    outcome TEXT,
    duration_ns INTEGER
) WITHOUT ROWID;

-- the film as written: each chunk holds the rows of events, frames,
-- activations, bindings and vals for steps first_step .. first_step+steps-1,
-- zlib-compressed JSON, column by column (see pack_chunk); a reader
-- unpacks them into those tables before querying (unpack_chunks)
CREATE TABLE chunks (
    chunk INTEGER PRIMARY KEY,
    first_step INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    data BLOB NOT NULL
);

-- one row per chunk: the live state at its start (zlib JSON: acts on the
-- stack, their frames' bindings, the newest snapshot of the objects bound)
-- and the first ids the chunk uses, so a reader finds a row by bisection
CREATE TABLE keyframes (
    chunk INTEGER PRIMARY KEY,   -- chunks.chunk
    first_step INTEGER NOT NULL, -- chunks.first_step and chunks.steps, read
    steps INTEGER NOT NULL,      -- here without touching the chunks' pages
    first_act INTEGER,           -- lowest activations.act opened in the chunk
    first_frame INTEGER,         -- lowest frames.frame made in the chunk
    first_odd_value INTEGER,     -- lowest odd vals.value written in the chunk
    first_even_value INTEGER,    -- lowest even vals.value written in the chunk
    act_ends TEXT NOT NULL,      -- JSON [act, end_step] pairs: earlier chunks' activations ending here
    data BLOB NOT NULL           -- zlib JSON: acts, frames, bindings, objs
);

-- problems the recorder met and survived
CREATE TABLE faults (
    message TEXT PRIMARY KEY,
    count INTEGER NOT NULL
) WITHOUT ROWID;
"""

#: The secondary indexes, split from the tables.  A recording as written has
#: none (its rows are in ``chunks``); the replayer builds them in the private
#: copy it unpacks the film into, from rows inserted in order, which costs a
#: fraction of keeping them up to date at every insert.
INDEX_STATEMENTS = tuple(
    stmt.strip() for stmt in SCHEMA.split(";")
    if stmt.strip().split("\n")[-1].startswith("CREATE INDEX")
)
INDEX_NAMES = tuple(stmt.split("\n")[-1].split()[2] for stmt in INDEX_STATEMENTS)

#: The tables alone: what the writer creates when it opens a recording.
TABLES_SCHEMA = "\n".join(
    line for line in SCHEMA.split("\n") if not line.startswith("CREATE INDEX")
)


def create_indexes_sql() -> str:
    """``CREATE INDEX IF NOT EXISTS`` for every secondary index."""
    out = []
    for stmt in INDEX_STATEMENTS:
        last = stmt.split("\n")[-1]
        out.append(last.replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1) + ";")
    return "\n".join(out)


def encode_source(text: str) -> bytes:
    return zlib.compress(text.encode("utf-8", "surrogateescape"), 6)


def decode_source(blob: bytes | str | None, limit: int = 64 << 20) -> str | None:
    """Text of ``files.source``; bounded so a hostile blob cannot exhaust memory."""
    if blob is None:
        return None
    if isinstance(blob, str):
        return blob
    d = zlib.decompressobj()
    raw = d.decompress(bytes(blob), limit)
    if d.unconsumed_tail:
        raise ValueError("embedded source is larger than the allowed limit")
    return raw.decode("utf-8", "replace")


TABLES = (
    "meta", "files", "nodes", "lines", "codes", "threads", "tasks", "frames",
    "activations", "events", "names", "bindings", "vals", "phases", "faults", "chunks", "keyframes",
)

#: The run index (``index.sqlite``) that lists the tests of one run.
#: Version history:
#:   1  one row per (test_id, worker)
#:   2  ``attempt``: 0 is the session's own run of a test, 1..N the recorded
#:      reruns ``--escope-on-failure`` makes of a failed one; the key is
#:      (test_id, worker, attempt).  A version-1 index reads as attempt 0.
INDEX_SCHEMA_VERSION = 2
INDEX_SCHEMA = """
CREATE TABLE IF NOT EXISTS run (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS tests (
    test_id TEXT NOT NULL,
    worker TEXT NOT NULL,
    outcome TEXT NOT NULL,       -- passed, failed, error, skipped, crashed, interrupted, running
    setup TEXT,                  -- outcome per phase
    call TEXT,
    teardown TEXT,
    duration_ns INTEGER,
    events INTEGER NOT NULL DEFAULT 0,
    dropped INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    recording TEXT,              -- path relative to the run dir, NULL if not kept
    failure TEXT,                -- one line: exception type and message
    started_ns INTEGER,
    attempt INTEGER NOT NULL DEFAULT 0,  -- 0: the session's run; N: recorded rerun N
    PRIMARY KEY (test_id, worker, attempt)
);
"""

#: The ``tests`` table of a version-1 run index, which readers still accept
#: (its rows are attempt 0).
INDEX_SCHEMA_V1 = INDEX_SCHEMA.replace(
    "    attempt INTEGER NOT NULL DEFAULT 0,  -- 0: the session's run; N: recorded rerun N\n", "").replace(
    "PRIMARY KEY (test_id, worker, attempt)", "PRIMARY KEY (test_id, worker)")


# -- chunks (schema 2) --------------------------------------------------------
#
# A chunk's ``data`` is zlib-compressed UTF-8 JSON: an object whose keys are
# tables and whose values are lists of columns (rows transposed), so runs of
# alike numbers sit next to each other and compress to almost nothing:
#
#   "events":      [kind, act, line, time, value]  -- one entry per step,
#                  step = first_step + position; ``value`` is a flat list of
#                  (position, vals.value) pairs for the steps that have one
#   "frames", "activations", "bindings", "vals": the table's columns in
#                  table order
#   "act_ends":    [act, end_step]: activations opened in an earlier chunk
#                  that ended in this one
#
# Columns named in DELTA_COLUMNS hold the first value followed by the
# differences between neighbours (ids and steps that mostly grow by one
# become runs of small numbers); the other step columns are relative to
# first_step.  Event times are stored in microseconds.

#: Columns of the packed tables, in table order; the step columns are
#: stored relative to the chunk's first_step.
PACKED_COLUMNS = {
    "frames": ("frame", "code", "first_step"),
    "activations": ("act", "frame", "parent", "thread", "task", "depth", "start_step", "end_step"),
    "bindings": ("frame", "name", "step", "value"),
    "vals": ("value", "obj", "step", "type", "repr", "detail", "flags"),
}
_STEP_COLUMNS = frozenset({"first_step", "start_step", "end_step", "step"})

#: Columns (table, column) stored as differences; none of them is ever NULL.
DELTA_COLUMNS = frozenset({
    ("events", "act"), ("events", "time"),
    ("frames", "frame"), ("frames", "first_step"),
    ("activations", "act"), ("activations", "start_step"),
    ("bindings", "frame"), ("bindings", "step"),
    ("vals", "value"), ("vals", "step"),
})

#: A chunk unpacks to at most this many bytes of JSON: a hostile blob
#: cannot exhaust memory.
CHUNK_LIMIT = 1 << 30


def _relative(column: list, base: int) -> list:
    return [None if s is None else s - base for s in column]


def _absolute(column: list, base: int) -> list:
    return [None if s is None else s + base for s in column]


def _differences(column: list) -> list:
    if not column:
        return []
    out = [column[0]]
    out += [b - a for a, b in zip(column, column[1:])]
    return out


def pack_chunk(base: int, events: tuple[list, list, list, list, list],
               tables: dict[str, list[tuple]], act_ends: list[tuple[int, int]],
               encode: Any = None, level: int = 1, int_column: Any = None) -> bytes:
    """One chunk's rows as the ``chunks.data`` blob.

    ``events`` is the five event columns (kind, act, line, time_ns and the
    flat value pairs), each a list or its JSON text already transformed;
    ``tables`` maps each packed table to its rows.
    ``int_column(column, mode, base[, index])`` may write a column of ints
    as JSON text itself (the recorder passes ``_hotpath.json_int_column``);
    with ``index`` it reads item ``index`` of each row, and with a tuple of
    modes every column of the rows at once (a list of texts).  It returns
    None for a column it does not handle.  The text is the same.
    """
    encode = encode or _json_encode
    texts = {table: column_texts(rows, column_modes(table), base, encode, int_column)
             for table, rows in tables.items() if rows}
    if act_ends:
        texts["act_ends"] = column_texts(act_ends, ACT_END_MODES, base, encode, int_column)
    return pack_texts([column_text(col, mode, base, encode, int_column) for col, mode in zip(events, EVENT_MODES)],
                      texts, level)


def pack_texts(events: list[str], tables: dict[str, list[str]], level: int = 1) -> bytes:
    """The ``chunks.data`` blob from each column's JSON text: the five event
    columns, and for each table with rows (and ``act_ends``) its columns in
    ``PACKED_COLUMNS`` order.  What pack_chunk writes for the same rows."""
    parts = ['{"events":[', ",".join(events), "]"]
    for table in PACKED_COLUMNS:
        if table in tables:
            parts += [',"', table, '":[', ",".join(tables[table]), "]"]
    if "act_ends" in tables:
        parts += [',"act_ends":[', ",".join(tables["act_ends"]), "]"]
    parts.append("}")
    text = "".join(parts)
    return zlib.compress(text.encode("utf-8", "surrogatepass"), level)


# How a column is stored (the modes of _hotpath.json_int_column).
_AS_IS, _DIFFERENCES, _RELATIVE, _MICRO_DIFFERENCES = 0, 1, 2, 3
#: The modes of the five event columns: kind, act, line, time, value pairs.
EVENT_MODES = (_AS_IS, _DIFFERENCES, _AS_IS, _MICRO_DIFFERENCES, _AS_IS)
#: The modes of act_ends: the activation, and its end step relative to the chunk.
ACT_END_MODES = (_AS_IS, _RELATIVE)


def _column_mode(table: str, name: str) -> int:
    if (table, name) in DELTA_COLUMNS:
        return _DIFFERENCES
    if name in _STEP_COLUMNS:
        return _RELATIVE
    return _AS_IS


def column_modes(table: str) -> tuple[int, ...]:
    """How each of a packed table's columns is stored."""
    return tuple(_column_mode(table, name) for name in PACKED_COLUMNS[table])


def column_text(column: Any, mode: int, base: int, encode: Any, int_column: Any) -> str:
    """One column as JSON text, after its transform (a str is that text
    already: the recorder's ``_hotpath.event_columns`` wrote it)."""
    if type(column) is str:
        return column
    if int_column is not None:
        text = int_column(column, mode, base)
        if text is not None:
            return text
    if mode == _DIFFERENCES:
        column = _differences(list(column))
    elif mode == _RELATIVE:
        column = _relative(column, base)
    elif mode == _MICRO_DIFFERENCES:
        column = _differences([t // 1000 for t in column])
    return encode(list(column))


def column_texts(rows: list, modes: tuple[int, ...], base: int, encode: Any, int_column: Any) -> list[str]:
    """Each column of a table's rows as JSON text.  ``int_column`` given
    a tuple of modes writes every int column in one pass over the rows;
    a column it declines (text, big ints) is encoded here."""
    texts = int_column(rows, tuple(modes), base) if int_column is not None else None
    if texts is None:
        texts = [None] * len(modes)
    return [text if text is not None else _row_column_text(rows, i, mode, base, encode)
            for i, (text, mode) in enumerate(zip(texts, modes))]


def _row_column_text(rows: list, index: int, mode: int, base: int, encode: Any) -> str:
    """Column ``index`` of a table's rows as JSON text."""
    return column_text([row[index] for row in rows], mode, base, encode, None)


def _json_encode(doc: Any) -> str:
    import json
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


class ChunkError(ValueError):
    """A chunk that does not decode: the file is damaged or not ours."""


def _decode_chunk(data: Any) -> dict:
    import json
    if not isinstance(data, (bytes, memoryview)):
        raise ChunkError("its data is not a blob")
    d = zlib.decompressobj()
    try:
        raw = d.decompress(bytes(data), CHUNK_LIMIT)
    except zlib.error as exc:
        raise ChunkError(f"does not decompress ({exc})") from None
    if d.unconsumed_tail:
        raise ChunkError("unpacks to more than the allowed size")
    try:
        doc = json.loads(raw.decode("utf-8", "surrogatepass"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ChunkError(f"is not valid JSON ({str(exc)[:60]})") from None
    if type(doc) is not dict:
        raise ChunkError("is not a JSON object")
    return doc


def _columns(doc: dict, key: str, width: int, aligned: int | None = None) -> list[list] | None:
    """The ``width`` columns under ``key``; the first ``aligned`` of them
    (all by default) must have one entry per row."""
    cols = doc.get(key)
    if cols is None:
        return None
    if type(cols) is not list or len(cols) != width or any(type(c) is not list for c in cols):
        raise ChunkError(f"has a malformed {key!r} entry")
    n = len(cols[0])
    if any(len(c) != n for c in cols[:aligned or width]):
        raise ChunkError(f"has {key!r} columns of different lengths")
    return cols


def unpack_chunks(db: Any, progress: Any = None) -> int:
    """Move every chunk's rows into the relational tables; returns the
    number of events unpacked.  Runs in the caller's transaction.

    ``db`` is an apsw or sqlite3 connection to a private, writable copy.
    ``progress(done_steps, total_steps)`` is called after each chunk.
    Raises ``ChunkError`` for a chunk that does not decode.
    """
    chunk_ids = [r[0] for r in db.execute("SELECT chunk FROM chunks ORDER BY chunk").fetchall()]
    total_row = db.execute("SELECT coalesce(sum(steps), 0) FROM chunks").fetchone()
    total = total_row[0] if total_row and type(total_row[0]) is int else 0
    done = 0
    for chunk_id in chunk_ids:
        row = db.execute("SELECT first_step, data FROM chunks WHERE chunk = ?", (chunk_id,)).fetchone()
        base, data = row
        if type(base) is not int:
            raise ChunkError(f"chunk {chunk_id} has no valid first_step")
        try:
            done += _unpack_one(db, base, _decode_chunk(data))
        except ChunkError as exc:
            raise ChunkError(f"chunk {chunk_id} {exc}") from None
        except (TypeError, ValueError, OverflowError) as exc:
            raise ChunkError(f"chunk {chunk_id} holds values of the wrong type ({str(exc)[:60]})") from None
        if progress is not None:
            progress(done, total)
    db.execute("DELETE FROM chunks")
    return done


def _sums(column: list) -> list:
    """Running sums of a difference column; only integers are summed (a
    hostile list of strings would otherwise grow quadratically)."""
    if not set(map(type, column)) <= {int}:
        raise ChunkError("has a difference column that is not all integers")
    return list(itertools.accumulate(column))


def _unpack_one(db: Any, base: int, doc: dict) -> int:
    ev = _columns(doc, "events", 5, aligned=4)
    n = 0
    if ev is not None:
        kinds, acts, lines, deltas, pairs = ev[0], ev[1], ev[2], ev[3], ev[4]
        n = len(kinds)
        if len(pairs) % 2:
            raise ChunkError("has an odd list of event values")
        values: list = [None] * n
        for i in range(0, len(pairs), 2):
            pos = pairs[i]
            if type(pos) is not int or not 0 <= pos < n:
                raise ChunkError("has an event value outside the chunk")
            values[pos] = pairs[i + 1]
        acts = _sums(acts)
        times = [t * 1000 for t in _sums(deltas)]
        db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
                       zip(range(base, base + n), kinds, acts, lines, times, values))
    for table, names in PACKED_COLUMNS.items():
        cols = _columns(doc, table, len(names))
        if cols is None:
            continue
        for i, name in enumerate(names):
            if (table, name) in DELTA_COLUMNS:
                cols[i] = _sums(cols[i])
            elif name in _STEP_COLUMNS:
                cols[i] = _absolute(cols[i], base)
        marks = ", ".join("?" * len(names))
        db.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})", zip(*cols))
    ends = _columns(doc, "act_ends", 2)
    if ends is not None:
        db.executemany("UPDATE activations SET end_step = ? WHERE act = ?",
                       zip(_absolute(ends[1], base), ends[0]))
    return n
