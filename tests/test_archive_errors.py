"""Archives from elsewhere are untrusted (SPEC 4 errors): a truncated or
tampered archive, a path-traversal or link member, a hostile index, an
archive from a newer escope -- each is one clear line, exit status 2, and
nothing is written outside the extraction cache (nor left inside it)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import Project, clean_env

SUITE = '''
def test_fails():
    n = 41
    assert n + 1 == 43
'''


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("arch")
    project = Project(root / "proj")
    project.write("test_x.py", SUITE)
    project.run("--escope")
    out = root / "good.tar.gz"
    res = subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", "pack", "-o", str(out)],
                         cwd=project.path, capture_output=True, text=True, env=clean_env(), timeout=120)
    assert res.returncode == 0, res.stderr
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    with tarfile.open(out, "r:gz") as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m)
            members.append((m, f.read() if f else None))
    manifest = json.loads(members[0][1])  # type: ignore[arg-type]
    return {"path": out, "members": members, "manifest": manifest, "run_id": manifest["run_id"]}


def build(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            info = tarfile.TarInfo(info.name) if isinstance(info, str) else info
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def with_manifest(good: dict[str, Any], change: Callable[[dict[str, Any]], None],
                  rest: list[tuple[tarfile.TarInfo, bytes | None]] | None = None) -> list:
    manifest = json.loads(json.dumps(good["manifest"]))
    change(manifest)
    info = tarfile.TarInfo("escope-run/MANIFEST.json")
    return [(info, json.dumps(manifest).encode()), *(good["members"][1:] if rest is None else rest)]


def info(name: str, **attrs: Any) -> tarfile.TarInfo:
    t = tarfile.TarInfo(name)
    for k, v in attrs.items():
        setattr(t, k, v)
    return t


def run_escope(archive: Path, cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    cwd.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", "list", "--run", str(archive)],
                          cwd=cwd, capture_output=True, text=True, timeout=120,
                          env=clean_env(XDG_CACHE_HOME=str(cache)))


def assert_refused(res: subprocess.CompletedProcess, *needles: str) -> None:
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("escope: error: "), res.stderr
    assert "Traceback" not in res.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def tampered_recording(good: dict[str, Any]) -> list:
    out = []
    for m, data in good["members"]:
        if "/tests/" in m.name and data:
            data = data[:-10] + bytes(b ^ 0xFF for b in data[-10:])
        out.append((m, data))
    return out


def hostile_index(good: dict[str, Any], tmp: Path) -> list:
    """A valid-looking archive whose index points a test at a file outside the run."""
    out = []
    for m, data in good["members"]:
        if m.name.endswith("/index.sqlite") and data:
            db_path = tmp / "index.sqlite"
            db_path.write_bytes(data)
            db = sqlite3.connect(db_path)
            db.execute("UPDATE tests SET recording = '../../../../outside.sqlite'")
            db.commit()
            db.close()
            data = db_path.read_bytes()
        out.append((m, data))
    manifest = json.loads(json.dumps(good["manifest"]))
    for m, data in out[1:]:
        manifest["files"][m.name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return [(info("escope-run/MANIFEST.json"), json.dumps(manifest).encode()), *out[1:]]


CASES: dict[str, Callable[[dict[str, Any], Path], tuple[bytes | list, tuple[str, ...]]]] = {
    "truncated": lambda g, t: (g["path"].read_bytes()[: g["path"].stat().st_size // 2], ("truncated or corrupt",)),
    "not-gzip": lambda g, t: (b"hello, I am a text file\n", ("not an escope archive",)),
    "tampered": lambda g, t: (tampered_recording(g), ("sha256", "tampered")),
    "dotdot-member": lambda g, t: (g["members"] + [(info("escope-run/../../x"), b"pwned")], ("unsafe",)),
    "plain-dotdot": lambda g, t: (g["members"][:1] + [(info("../x"), b"pwned")] + g["members"][1:], ("unsafe",)),
    "absolute": lambda g, t: (g["members"][:1] + [(info("/tmp/escope-x"), b"pwned")], ("unsafe",)),
    "manifest-dotdot": lambda g, t: (with_manifest(g, lambda m: m["files"].__setitem__(
        f"escope-run/{g['run_id']}/../../x", {"size": 5, "sha256": "0" * 64})), ("unsafe",)),
    "symlink": lambda g, t: (g["members"][:1] + [(info(f"escope-run/{g['run_id']}/tests/a.sqlite",
                                                       type=tarfile.SYMTYPE, linkname="/etc/passwd"), None)],
                             ("link or special file",)),
    "hardlink": lambda g, t: (g["members"][:1] + [(info(f"escope-run/{g['run_id']}/index.sqlite",
                                                        type=tarfile.LNKTYPE, linkname="/etc/passwd"), None)],
                              ("link or special file",)),
    "unlisted": lambda g, t: (g["members"] + [(info(f"escope-run/{g['run_id']}/tests/extra.sqlite"), b"x")],
                              ("not listed in MANIFEST.json",)),
    "missing-member": lambda g, t: (g["members"][:2], ("lacks",)),
    "no-manifest": lambda g, t: (g["members"][1:], ("MANIFEST.json is not its first member",)),
    "newer-schema": lambda g, t: (with_manifest(g, lambda m: m.__setitem__("schema_version", 99)),
                                  ("newer pytest-escope", "schema_version 99", "pip install -U pytest-escope")),
    "newer-archive": lambda g, t: (with_manifest(g, lambda m: m.__setitem__("archive_version", 7)),
                                   ("newer pytest-escope",)),
    "foreign-manifest": lambda g, t: (with_manifest(g, lambda m: m.__setitem__("format", "zip of cats")),
                                      ("not an escope archive",)),
    "hostile-index": lambda g, t: (hostile_index(g, t), ("outside the run",)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_archive_is_refused(case: str, good: dict[str, Any], tmp_path: Path) -> None:
    payload, needles = CASES[case](good, tmp_path)
    archive = tmp_path / "bad.tar.gz"
    if isinstance(payload, bytes):
        archive.write_bytes(payload)
    else:
        build(archive, payload)
    work = tmp_path / "work" / "deep" / "cwd"
    work.mkdir(parents=True)
    cache = tmp_path / "cache"
    before = snapshot(tmp_path)
    res = run_escope(archive, work, cache)
    assert_refused(res, *needles)
    after = snapshot(tmp_path)
    # nothing new anywhere but the (empty) cache dir itself
    assert {p for p in after - before if not p.startswith("cache")} == set()
    archives = cache / "escope" / "archives"
    leftovers = list(archives.iterdir()) if archives.exists() else []
    assert leftovers == [], leftovers
    assert not Path("/tmp/escope-x").exists()
    assert not (tmp_path / "x").exists() and not (tmp_path / "work" / "x").exists()


def test_the_good_archive_still_opens(good: dict[str, Any], tmp_path: Path) -> None:
    res = run_escope(good["path"], tmp_path / "w", tmp_path / "cache")
    assert res.returncode == 0, res.stderr
    assert "test_fails" in res.stdout


def test_missing_archive_path(tmp_path: Path) -> None:
    res = run_escope(tmp_path / "nope.tar.gz", tmp_path / "w", tmp_path / "cache")
    assert_refused(res, "no run directory or archive at")


def test_damaged_cache_entry_is_extracted_again(good: dict[str, Any], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert run_escope(good["path"], tmp_path / "w", cache).returncode == 0
    entry = next((cache / "escope" / "archives").iterdir())
    shutil.rmtree(entry / "escope-run")
    res = run_escope(good["path"], tmp_path / "w", cache)
    assert res.returncode == 0, res.stderr
