"""``escope gc``: delete old runs so ``.escope`` does not grow without end.

Runs are ordered by id (ids start with the UTC time).  The newest N are
kept, and so are the run ``latest`` names, the run a bare ``escope
replay`` opens (the newest with a test, when ``latest`` has none), and any
run whose index is still
in WAL mode (a ``-wal`` file beside it): a pytest session is writing it
right now, and the plugin switches the index back to a single file when
the session ends.  Nothing outside ``<escope dir>/runs`` is touched, and a
symlink there is unlinked, never followed.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import EscopeError, UsageError
from .runs import find_escope_dir, list_run_ids, resolve_run

if TYPE_CHECKING:
    from .cli import Context

DEFAULT_KEEP = 10


def dir_size(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
        except OSError:
            pass
    return total


def plan_gc(escope_dir: Path, keep_last: int) -> tuple[list[Path], list[Path]]:
    """(runs to delete, runs kept), oldest first."""
    runs_dir = escope_dir / "runs"
    ids = list_run_ids(escope_dir)
    try:
        latest = (escope_dir / "latest").read_text(encoding="utf-8").strip()
    except OSError:
        latest = ""
    try:
        opened = resolve_run(None, escope_dir).run_id
    except EscopeError:
        opened = latest
    cut = len(ids) - keep_last if keep_last > 0 else len(ids)
    doomed, kept = [], []
    for i, run_id in enumerate(ids):
        path = runs_dir / run_id
        live = (path / "index.sqlite-wal").exists()
        if i < cut and run_id not in (latest, opened) and not live:
            doomed.append(path)
        else:
            kept.append(path)
    return doomed, kept


def cmd_gc(ctx: "Context") -> int:
    a = ctx.args
    if a.keep_last < 0:
        raise UsageError("--keep-last must be 0 or more", fix="e.g. escope gc --keep-last 5")
    base = find_escope_dir(getattr(a, "escope_dir", None))
    assert base is not None
    doomed, kept = plan_gc(base, a.keep_last)
    freed = 0
    for path in doomed:
        freed += dir_size(path)
        if not a.dry_run:
            if path.is_symlink():
                path.unlink()
            else:
                shutil.rmtree(path, ignore_errors=True)
    from .render import size_text
    verb = "would delete" if a.dry_run else "deleted"
    ctx.say(f"{verb} {len(doomed)} run(s), {size_text(freed)}; kept {len(kept)} in {base / 'runs'}")
    ctx.hint("see what is left", f"escope list --all{ctx.carry()}")
    return 0


def add_gc(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("gc", help="delete old runs, keeping the newest N")
    p.add_argument("--escope-dir", default=argparse.SUPPRESS, metavar="DIR", help="escope directory")
    p.add_argument("--keep-last", type=int, default=DEFAULT_KEEP, metavar="N",
                   help=f"runs to keep, newest first (default {DEFAULT_KEEP}); the latest run is always kept")
    p.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    return p
