"""Where the events and the bytes of a run go: the hot path's shopping list.

Reads one run dir recorded with ``--escope-keep=all`` (``recording.py
--keep-runs DIR`` leaves one per suite and configuration) and prints, summed
over every recording: events per kind, rows per table, value text sizes,
bytes per table and index on disk (SQLite's ``dbstat``), and the tests with
the most events.

    python benchmarks/breakdown.py DIR/more-itertools-balanced-all
    python benchmarks/breakdown.py RUN_DIR --json out.json
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections import Counter
from pathlib import Path
from typing import Any

KIND_NAMES = {1: "call", 2: "line", 3: "return", 4: "exception", 5: "handled", 6: "unwind",
              7: "yield", 8: "resume", 9: "checkpoint", 10: "external_call", 11: "external_return"}


def _run_dir(path: Path) -> Path:
    """Accept a run dir, an escope dir, or a dir holding one escope dir."""
    if (path / "index.sqlite").exists():
        return path
    found = sorted(path.glob("runs/*/index.sqlite")) or sorted(path.glob("*/runs/*/index.sqlite"))
    if len(found) != 1:
        raise SystemExit(f"breakdown: no single run under {path} (found {len(found)} index.sqlite)")
    return found[0].parent


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in db.execute(f"PRAGMA table_info({table})")}


def breakdown(run: Path) -> dict[str, Any]:
    kinds: Counter[str] = Counter()
    rows: Counter[str] = Counter()
    pages: Counter[str] = Counter()
    payload: Counter[str] = Counter()
    val_types: Counter[str] = Counter()
    val_type_bytes: Counter[str] = Counter()
    files = sorted(run.glob("tests/*.sqlite"))
    total_bytes = 0
    for path in files:
        total_bytes += path.stat().st_size
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                rows[table] += db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for kind, n in db.execute("SELECT kind, count(*) FROM events GROUP BY kind"):
                kinds[KIND_NAMES.get(kind, str(kind))] += n
            if "vals" in tables:
                cols = _columns(db, "vals")
                text_cols = [c for c in ("repr", "detail") if c in cols]
                for col in text_cols:
                    payload[f"vals.{col}"] += db.execute(f"SELECT coalesce(sum(length({col})), 0) FROM vals").fetchone()[0]
                if "obj" in cols:
                    payload["vals with obj (mutable snapshots)"] += db.execute(
                        "SELECT count(*) FROM vals WHERE obj IS NOT NULL").fetchone()[0]
                if "type" in cols:
                    size = " + ".join(f"coalesce(length({c}), 0)" for c in text_cols) or "0"
                    for tname, n, nbytes in db.execute(f"SELECT type, count(*), sum({size}) FROM vals GROUP BY type"):
                        val_types[tname] += n
                        val_type_bytes[tname] += nbytes or 0
            try:
                for name, size in db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
                    pages[name] += size
            except sqlite3.OperationalError:  # SQLite built without dbstat
                pass
        finally:
            db.close()
    index = sqlite3.connect(f"file:{run / 'index.sqlite'}?mode=ro", uri=True)
    try:
        top = index.execute("SELECT test_id, events, bytes, duration_ns FROM tests ORDER BY events DESC LIMIT 10").fetchall()
        total_events, tests = index.execute("SELECT coalesce(sum(events), 0), count(*) FROM tests").fetchone()
    finally:
        index.close()
    return {
        "run": str(run), "recordings": len(files), "tests": tests, "events": total_events,
        "bytes": total_bytes, "bytes_per_event": total_bytes / total_events if total_events else None,
        "events_by_kind": dict(kinds.most_common()), "rows": dict(rows.most_common()),
        "value_text": dict(payload), "vals_by_type": {t: [val_types[t], val_type_bytes[t]]
                                                      for t, _ in val_types.most_common(15)},
        "bytes_on_disk": dict(pages.most_common()),
        "top_tests": [{"test": t, "events": e, "bytes": b, "seconds": (d or 0) / 1e9} for t, e, b, d in top],
    }


def markdown(data: dict[str, Any]) -> str:
    ev = data["events"] or 1
    out = [f"run `{data['run']}`: {data['tests']} tests, {data['recordings']} recordings, "
           f"{data['events']:,} events, {data['bytes'] / 1e6:,.1f} MB, "
           f"{data['bytes_per_event'] or 0:.1f} bytes/event", "",
           "| event kind | count | share |", "|---|---|---|"]
    out += [f"| {k} | {n:,} | {100 * n / ev:.1f}% |" for k, n in data["events_by_kind"].items()]
    out += ["", "| table | rows | rows/event |", "|---|---|---|"]
    out += [f"| {t} | {n:,} | {n / ev:.3f} |" for t, n in data["rows"].items()]
    vals = data["rows"].get("vals") or 1
    out += ["", "| value text | total | per vals row |", "|---|---|---|"]
    out += [f"| {k} | {n:,} | {n / vals:.1f} |" for k, n in data["value_text"].items()]
    out += ["", "| vals type | rows | text bytes |", "|---|---|---|"]
    out += [f"| {t} | {n:,} | {b:,} |" for t, (n, b) in data["vals_by_type"].items()]
    total = sum(data["bytes_on_disk"].values()) or 1
    out += ["", "| table or index (dbstat) | bytes | bytes/event | share |", "|---|---|---|---|"]
    out += [f"| {t} | {b:,} | {b / ev:.1f} | {100 * b / total:.1f}% |" for t, b in data["bytes_on_disk"].items()]
    out += ["", "| top tests by events | events | MB | seconds |", "|---|---|---|---|"]
    out += [f"| {r['test']} | {r['events']:,} | {r['bytes'] / 1e6:.1f} | {r['seconds']:.2f} |" for r in data["top_tests"]]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run dir (or an escope dir with one run)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    data = breakdown(_run_dir(args.run))
    print(markdown(data))
    if args.json:
        args.json.write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
