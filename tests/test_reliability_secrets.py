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

from conftest import Project, module_project
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
