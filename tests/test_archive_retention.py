"""Retention and size (SPEC 3.6, 4): ``escope gc --keep-last N``,
``--escope-max-bytes`` stopping further recordings with a warning,
``--escope-keep``, and sizes in ``escope list``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Project, clean_env

SUITE = '''
import pytest


@pytest.mark.parametrize("n", range(6))
def test_fails(n):
    rows = [str(i) * 50 for i in range(200)]
    assert len(rows) == n


def test_passes():
    assert sum(range(10)) == 45
'''


def escope(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", *args], cwd=cwd,
                          capture_output=True, text=True, env=clean_env(), timeout=120)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = Project(tmp_path_factory.mktemp("ret") / "proj")
    project.write("test_r.py", SUITE)
    res = project.run("--escope")
    assert "6 failed, 1 passed" in res.stdout, res.out
    return project


def fake_runs(project: Project, tmp: Path, count: int) -> tuple[Path, list[str]]:
    """An escope dir holding ``count`` copies of the project's run, oldest first."""
    base = tmp / ".escope"
    src = project.latest().path
    ids = [f"2020010{i}T000000000Z-abc{i:03d}" for i in range(1, count + 1)]
    for run_id in ids:
        shutil.copytree(src, base / "runs" / run_id)
    (base / "latest").write_text(ids[-1] + "\n")
    return base, ids


def test_gc_keeps_the_newest_runs(project: Project, tmp_path: Path) -> None:
    base, ids = fake_runs(project, tmp_path, 5)
    res = escope("gc", "--keep-last", "2", "--dry-run", cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.startswith("would delete 3 run(s), "), res.out
    assert sorted(p.name for p in (base / "runs").iterdir()) == ids
    res = escope("gc", "--keep-last", "2", cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.startswith("deleted 3 run(s), "), res.out
    assert "kept 2" in res.stdout and "escope list --all" in res.stdout
    assert sorted(p.name for p in (base / "runs").iterdir()) == ids[-2:]
    assert escope("list", cwd=tmp_path).returncode == 0


def test_gc_never_deletes_the_latest_or_a_live_run(project: Project, tmp_path: Path) -> None:
    base, ids = fake_runs(project, tmp_path, 3)
    (base / "latest").write_text(ids[0] + "\n")  # latest is not the newest id
    (base / "runs" / ids[1] / "index.sqlite-wal").write_bytes(b"")  # a session is writing this one
    res = escope("gc", "--keep-last", "0", cwd=tmp_path)
    assert res.returncode == 0, res.out
    assert sorted(p.name for p in (base / "runs").iterdir()) == ids[:2]


def test_gc_rejects_a_negative_count(tmp_path: Path) -> None:
    (tmp_path / ".escope" / "runs").mkdir(parents=True)
    res = escope("gc", "--keep-last", "-1", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.startswith("escope: error: --keep-last"), res.out


def test_list_reports_sizes(project: Project) -> None:
    res = escope("list", "--json", cwd=project.path)
    tests = json.loads(res.stdout)["runs"][0]["tests"]
    failed = [t for t in tests if t["outcome"] == "failed"]
    assert len(failed) == 6
    for t in failed:
        assert t["bytes"] == (project.latest().path / Path(t["recording"]).relative_to(
            project.latest().path)).stat().st_size
    passed = next(t for t in tests if t["outcome"] == "passed")
    assert passed["recording"] is None  # --escope-keep=failed (the default) dropped it
    text = escope("list", cwd=project.path).stdout
    assert any(line.rstrip().endswith("K") and "test_fails[0]" in line for line in text.splitlines()), text


def test_max_bytes_stops_recording_with_a_warning(tmp_path: Path) -> None:
    project = Project(tmp_path / "proj")
    project.write("test_r.py", SUITE)
    res = project.run("--escope", "--escope-max-bytes=100K", "-p", "no:randomly")
    assert "6 failed, 1 passed" in res.stdout, res.out  # the tests themselves are unaffected
    assert "over --escope-max-bytes; later tests are not recorded" in res.stdout, res.stdout
    rows = json.loads(escope("list", "--json", cwd=project.path).stdout)["runs"][0]["tests"]
    recorded = [t for t in rows if t["recording"]]
    assert 1 <= len(recorded) < 6
    used = sum(t["bytes"] for t in rows)
    assert used < 100 * 1024 + max(t["bytes"] for t in recorded)  # at most one recording past the cap
    on_disk = sum(p.stat().st_size for p in (project.latest().path / "tests").iterdir())
    assert on_disk == used


def test_max_bytes_must_be_a_size(tmp_path: Path) -> None:
    project = Project(tmp_path / "proj")
    project.write("test_r.py", SUITE)
    res = project.run("--escope", "--escope-max-bytes=lots")
    assert res.returncode != 0 and "--escope-max-bytes takes a size like 500M" in res.stderr


def test_keep_all_keeps_passing_tests(tmp_path: Path) -> None:
    project = Project(tmp_path / "proj")
    project.write("test_r.py", SUITE)
    project.run("--escope", "--escope-keep=all")
    rows = json.loads(escope("list", "--json", cwd=project.path).stdout)["runs"][0]["tests"]
    assert all(t["recording"] and t["bytes"] > 0 for t in rows) and len(rows) == 7
