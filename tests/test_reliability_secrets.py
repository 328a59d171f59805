"""Secrets: redacted values never reach a byte of the run dir or of a packed
archive; recordings and archives are owner-only (docs/reliability.md,
"Secrets").  The secrets come from the environment, so the embedded
sources cannot contain them either.
"""

from __future__ import annotations

import gzip
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BACKENDS, Project, module_project
from reliability import cli, mode, quiet_env

SECRETS = {
    "S_PASSWORD": "pw-7c1e0f4b-aaaa",
    "S_TOKEN": "tok-93be1d77-bbbb",
    "S_SSN": "ssn-5d2a8c60-cccc",
    "S_ATTR": "key-0e7f3b19-dddd",
}

SUITE = '''
import os


class Client:
    def __init__(self, api_key):
        self.api_key = api_key
        self.calls = 0


def send(token, body):
    sent = len(body) + len(token)
    return sent


def test_uses_secrets():
    password = os.environ["S_PASSWORD"]
    customer_ssn = os.environ["S_SSN"]
    client = Client(os.environ["S_ATTR"])
    n = send(os.environ["S_TOKEN"], "hello")
    k = len(password) + n
    assert k == 0


def test_passes_with_secret():
    password = os.environ["S_PASSWORD"]
    assert password
'''


@pytest.fixture(scope="module")
def secret_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Path]:
    project = module_project(tmp_path_factory, "secrets")
    project.write("test_secrets.py", SUITE)
    res = project.run("--escope", "--escope-keep=all", "--escope-redact=ssn", env=quiet_env(**SECRETS))
    assert res.returncode == 1, res.out[-3000:]
    archive = project.path.parent / "out.tar.gz"
    packed = cli("pack", "--all", "-o", str(archive), cwd=project.path)
    assert packed.returncode == 0, packed.stderr
    return project, archive


def test_recording_holds_redacted_markers(secret_run) -> None:
    project, _ = secret_run
    rec = project.latest().recording("test_uses_secrets")
    reds = {r[0] for r in rec.q("SELECT n.text FROM bindings b JOIN names n ON n.name = b.name "
                                "JOIN vals v ON v.value = b.value WHERE v.repr = '<redacted>'")}
    assert {"password", "customer_ssn", "token"} <= reds


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_redacted_value_is_in_no_byte_of_the_run_or_archive(name: str, secret_run) -> None:
    project, archive = secret_run
    needle = SECRETS[name].encode()
    for path in sorted(project.escope_dir.rglob("*")):
        if path.is_file():
            assert needle not in path.read_bytes(), path
    assert needle not in archive.read_bytes()
    assert needle not in gzip.decompress(archive.read_bytes())


def test_owner_only_files(secret_run) -> None:
    project, archive = secret_run
    run = project.latest()
    assert mode(run.path / "tests") & 0o077 == 0
    assert mode(run.index_path) & 0o077 == 0
    for rec in (run.path / "tests").iterdir():
        assert mode(rec) & 0o077 == 0, rec
    assert mode(archive) & 0o077 == 0


def test_owner_only_even_with_a_permissive_umask(tmp_path: Path) -> None:
    project = Project(tmp_path / "umask")
    project.write("test_u.py", "def test_f():\n    x = 1\n    assert x == 2\n")
    code = ("import os, sys, pytest; os.umask(0); "
            "sys.exit(pytest.main(['-p', 'no:cacheprovider', '--escope']))")
    res = subprocess.run([sys.executable, "-c", code], cwd=project.path, capture_output=True, text=True,
                         env=quiet_env(), timeout=300)
    assert res.returncode == 1, res.stdout[-2000:]
    run = project.latest()
    for path in [run.path / "tests", run.index_path, *(run.path / "tests").iterdir()]:
        assert mode(path) & 0o077 == 0, (path, oct(mode(path)))
    archive = tmp_path / "a.tar.gz"
    code = ("import os, sys; os.umask(0); from pytest_escope.replay import cli; "
            f"sys.exit(cli.main(['pack', '-o', {str(archive)!r}]))")
    res = subprocess.run([sys.executable, "-c", code], cwd=project.path, capture_output=True, text=True,
                         env=quiet_env(), timeout=300)
    assert res.returncode == 0, res.stderr
    assert mode(archive) & 0o077 == 0


def test_run_dir_is_owner_only(secret_run) -> None:
    project, _ = secret_run
    run = project.latest()
    for path in (project.escope_dir, run.path.parent, run.path):
        assert mode(path) & 0o077 == 0, (path, oct(mode(path)))


# -- secrets in bytes and in os.environ ------------------------------------------

ENV_SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "aws-4f1c9a27-eeee",
    "GITHUB_TOKEN": "ghp-b83d5e01-ffff",
    "S_BYTES_PASSWORD": "bpw-61a0c7d3-gggg",
}

ENV_SUITE = '''
import os


class Holder:
    def __init__(self, env):
        self.env = env


def look(env, envb, data, raw, holder):
    return holder


def test_environ_in_locals():
    env = os.environ
    envb = os.environb
    data = os.environ._data
    raw = {b"password": os.environb[b"S_BYTES_PASSWORD"], b"plain": 1}
    copied = dict(os.environ)
    holder = look(env, envb, data, raw, Holder(env))
    n = len(holder.env)
    assert n == 0
'''


def _no_needle_anywhere(root: Path, needles: list[bytes]) -> list[str]:
    """Where any needle occurs under ``root``: in the raw bytes of every file,
    and in every row of every table of every SQLite file once its chunks
    are unpacked (the film is compressed on disk)."""
    import shutil
    import sqlite3
    import tempfile
    from pytest_escope.recorder import schema
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [f"{path}: {n!r}" for n in needles if n in data]
        if not data.startswith(b"SQLite format 3"):
            continue
        tmp = Path(tempfile.mkdtemp(prefix="escope-test-secrets-"))
        try:
            shutil.copy2(path, tmp / "copy.sqlite")
            db = sqlite3.connect(str(tmp / "copy.sqlite"))
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'chunks'").fetchone():
                schema.unpack_chunks(db)
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            text = "\n".join(repr(row) for t in tables for row in db.execute(f'SELECT * FROM "{t}"'))
            db.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        found += [f"{path} (unpacked): {n!r}" for n in needles if n.decode() in text]
    return found


@pytest.mark.parametrize("strategy", ["minimal", "balanced", "full_trace"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_environ_and_bytes_keys_never_reach_disk(backend: str, strategy: str, tmp_path: Path) -> None:
    """``os.environ`` (its ``_data`` has bytes keys) and a dict with bytes
    keys, bound to locals, passed as arguments, held in a field: no secret
    value of the environment reaches the recording, the archive or the
    HTML film."""
    project = Project(tmp_path / "proj")
    project.write("test_env.py", ENV_SUITE)
    res = project.run("--escope", "--escope-keep=all", f"--escope-backend={backend}",
                      f"--escope-strategy={strategy}", env=quiet_env(**ENV_SECRETS))
    assert res.returncode == 1, res.out[-3000:]
    assert "1 failed" in res.out, res.out[-3000:]
    archive_dir = tmp_path / "unpacked"
    archive = tmp_path / "out.tar.gz"
    packed = cli("pack", "--all", "--html", "-o", str(archive), cwd=project.path)
    assert packed.returncode == 0, packed.stderr
    html = tmp_path / "film.html"
    exported = cli("export", "test_environ_in_locals", "--html", "-o", str(html), cwd=project.path)
    assert exported.returncode == 0, exported.stderr
    import tarfile
    with tarfile.open(archive) as tar:
        tar.extractall(archive_dir, filter="data")
    assert any(p.suffix == ".html" for p in archive_dir.rglob("*")), "the archive holds no HTML film"
    needles = [v.encode() for v in ENV_SECRETS.values()]
    found = [*_no_needle_anywhere(project.escope_dir, needles), *_no_needle_anywhere(archive_dir, needles)]
    found += [f"{html}: {n!r}" for n in needles if n in html.read_bytes()]
    assert not found, found
    # what is recorded instead: os.environ as one redacted marker, the bytes key's value redacted
    rec = project.latest().recording("test_environ_in_locals")
    try:
        shown = dict(rec.q("SELECT v.repr, v.flags FROM vals v WHERE v.type IN ('_Environ', 'dict')"))
    finally:
        rec.close()
    assert "<os._Environ: not recorded>" in shown, shown
    raw = [r for r in shown if r.startswith("{b'password'")]
    assert raw == ["{b'password': <redacted>, b'plain': 1}"], shown
