"""The recording file format: one SQLite database per recorded test.

This module is the contract between the recorder and the replayer.  The
replayer imports this module (and only this one) from ``recorder``; it holds
no tracing code.  ``docs/recording-format.md`` describes every table and
column and is checked against this constant by the tests.

Schema history:

1. First version: events, activations, frames, bindings, value snapshots,
   embedded (compressed) sources and the libcst nodes of the lines that ran.
"""

from __future__ import annotations

import zlib

SCHEMA_VERSION = 1

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

-- problems the recorder met and survived
CREATE TABLE faults (
    message TEXT PRIMARY KEY,
    count INTEGER NOT NULL
) WITHOUT ROWID;
"""

#: The secondary indexes, split from the tables: the writer creates them once,
#: when a recording is finished and kept.  Building an index from sorted rows
#: at the end costs a fraction of keeping it up to date at every insert, and
#: a passing test's spilled chunks (``--escope-keep=failed``) are deleted
#: without ever being indexed.  A recording cut short (its process died) has
#: no indexes; the replayer builds them in a private copy.
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
    "activations", "events", "names", "bindings", "vals", "phases", "faults",
)

#: The run index (``index.sqlite``) that lists the tests of one run.
INDEX_SCHEMA_VERSION = 1
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
    PRIMARY KEY (test_id, worker)
);
"""
