"""Helpers shared by the tests/test_reliability_*.py suites (docs/reliability.md).

Everything here drives real processes: an inner pytest session (through
``conftest.Project``), the real ``escope`` CLI, real SQLite files.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import Project, clean_env

#: Plugins that change every session they are installed in (reordering,
#: asyncio warnings, reruns) are switched off in the inner sessions of
#: tests that are not about them; neighbour tests switch them on again.
QUIET = "-p no:randomly -p no:asyncio -p no:rerunfailures -p no:timeout"


def quiet_env(**extra: str) -> dict[str, str]:
    extra.setdefault("PYTEST_ADDOPTS", QUIET)
    return clean_env(**extra)


def cli(*args: str, cwd: Path, timeout: float = 120, stdin: str = "") -> subprocess.CompletedProcess:
    """The real ``escope`` command line, in a subprocess (a hang is a failure)."""
    return subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", *args], cwd=cwd, input=stdin,
                          capture_output=True, text=True, env=clean_env(), timeout=timeout)


def cli_json(*args: str, cwd: Path) -> Any:
    res = cli(*args, "--json", cwd=cwd)
    assert res.returncode == 0 and "Traceback" not in res.stderr, (args, res.stdout[-2000:], res.stderr[-2000:])
    return json.loads(res.stdout)


def meta(path: Path) -> dict[str, str]:
    from conftest import open_ro
    db = open_ro(path)
    try:
        return dict(db.execute("SELECT key, value FROM meta"))
    finally:
        db.close()


def count(path: Path, table: str) -> int:
    from conftest import open_ro
    db = open_ro(path)
    try:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        db.close()


def integrity_ok(path: Path) -> bool:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()


def replays(path: Path, cwd: Path, full: bool = True) -> dict[str, Any]:
    """Every read-only command works on ``path``; returns their JSON."""
    out = {
        "stats": cli_json("stats", str(path), cwd=cwd),
        "state": cli_json("replay", str(path), cwd=cwd),
    }
    if not full:
        return out
    out["events"] = cli_json("events", str(path), "--limit", "20", cwd=cwd)
    out["flow"] = cli_json("flow", str(path), cwd=cwd)
    res = cli("replay", str(path), cwd=cwd, stdin="rn\nrs\nn\ns\nr\nrr\nw\nq\n")
    assert res.returncode == 0 and "Traceback" not in res.stdout + res.stderr, res.stdout[-2000:] + res.stderr
    return out


def escope_warnings(text: str) -> list[str]:
    """The terminal lines escope prints for problems it survived."""
    return re.findall(r"^escope warning: .*$", text, re.M)


def run_both(project: Project, *args: str, env: dict[str, str] | None = None, timeout: float = 300):
    """The same session without and with escope: (plain, recorded)."""
    plain = project.run("-rA", *args, env=env or quiet_env(), timeout=timeout)
    recorded = project.run("-rA", "--escope", *args, env=env or quiet_env(), timeout=timeout)
    return plain, recorded


def summary(text: str) -> str:
    """pytest's final counts line without the time ("2 failed, 3 passed")."""
    lines = [ln for ln in text.splitlines() if re.match(r"^=+ .*(passed|failed|error|skipped|no tests).* =+$", ln)]
    assert lines, text[-3000:]
    return re.sub(r" in [0-9.]+s( \([^)]*\))?", "", lines[-1]).strip("= ")


def tree_bytes(root: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()]


def mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o777
