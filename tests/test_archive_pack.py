"""``escope pack`` and ``--run ARCHIVE`` (SPEC 4): a run packed in one place
replays in another, from an empty directory, with the sources gone.  Also
the CI glue: the hint in the summary, ``--escope-pack``, the JUnit property
naming the recording inside the archive."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from conftest import Project, clean_env

LIB = '''
class Cart:
    def __init__(self):
        self.items = []
        self.total = 0

    def add(self, name, price):
        self.items.append(name)
        self.total += price
        return self.total


def discount(total):
    if total > 100:
        return total // 10
    return 0
'''

SUITE = '''
from shop.cart import Cart, discount


def test_checkout():
    cart = Cart()
    for name, price in [("pen", 3), ("book", 40), ("lamp", 70)]:
        cart.add(name, price)
    off = discount(cart.total)
    assert cart.total - off == 100


def test_empty():
    assert Cart().total == 0


def test_boom():
    data = {"k": 1}
    raise KeyError("missing")
'''


def escope(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=180)


def make_project(root: Path) -> Project:
    project = Project(root / "proj")
    project.write("shop/__init__.py", "")
    project.write("shop/cart.py", LIB)
    project.write("tests/test_shop.py", SUITE)
    return project


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A run of 2 failures and 1 pass, packed, then the project deleted."""
    root = tmp_path_factory.mktemp("pack")
    env = clean_env(XDG_CACHE_HOME=str(root / "cache"))
    project = make_project(root)
    res = project.run("--escope", "--escope-keep=all", "--junitxml=junit.xml")
    assert "2 failed, 1 passed" in res.stdout, res.out
    ids = ["tests/test_shop.py::test_checkout", "tests/test_shop.py::test_boom"]
    before = {}
    for tid in ids:
        fail = json.loads(escope("replay", tid, "--json", cwd=project.path, env=env).stdout)
        first = json.loads(escope("replay", tid, "--step", "3", "--json", cwd=project.path, env=env).stdout)
        hist = escope("history", tid, "cart.total" if "checkout" in tid else "data", "--json",
                      cwd=project.path, env=env)
        before[tid] = (fail, first, json.loads(hist.stdout))
    res = escope("pack", "-o", str(root / "out" / "rec.tar.gz"), cwd=project.path, env=env)
    assert res.returncode == 0, res.stderr
    junit = ET.parse(project.path / "junit.xml")
    run_id = project.latest().path.name
    shutil.rmtree(project.path)  # sources, .escope, everything
    return {"root": root, "env": env, "archive": root / "out" / "rec.tar.gz", "stdout": res.stdout,
            "before": before, "ids": ids, "junit": junit, "run_id": run_id}


def test_pack_prints_path_size_and_count(packed: dict[str, Any]) -> None:
    first = packed["stdout"].splitlines()[0]
    assert first.startswith(f"packed {packed['archive']} (2 failed tests, ")
    assert first.endswith(" kB)") or first.endswith(" MB)")
    assert "escope replay --run" in packed["stdout"].splitlines()[-1]
    assert stat.S_IMODE(packed["archive"].stat().st_mode) == 0o600


def test_archive_is_a_plain_tar_gz_with_a_manifest(packed: dict[str, Any]) -> None:
    with tarfile.open(packed["archive"], "r:gz") as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("escope-run/MANIFEST.json").read())  # type: ignore[union-attr]
    assert names[0] == "escope-run/MANIFEST.json"
    base = f"escope-run/{packed['run_id']}"
    assert f"{base}/index.sqlite" in names
    recs = [n for n in names if n.startswith(f"{base}/tests/")]
    assert len(recs) == 2 and all("test_checkout" in n or "test_boom" in n for n in recs)  # failed only
    assert manifest["format"] == "pytest-escope archive" and manifest["run_id"] == packed["run_id"]
    assert manifest["schema_version"] >= 1 and manifest["archive_version"] == 1
    assert set(manifest["files"]) == set(names) - {"escope-run/MANIFEST.json"}
    for facts in manifest["files"].values():
        assert facts["size"] > 0 and len(facts["sha256"]) == 64
    # the standard tool reads it too
    if shutil.which("tar"):
        out = subprocess.run(["tar", "tzf", str(packed["archive"])], capture_output=True, text=True)
        assert out.returncode == 0 and "escope-run/MANIFEST.json" in out.stdout


def test_junit_property_names_the_member_inside_the_archive(packed: dict[str, Any]) -> None:
    with tarfile.open(packed["archive"], "r:gz") as tar:
        names = set(tar.getnames())
    props = {p.get("value") for p in packed["junit"].iter("property") if p.get("name") == "escope_archive_member"}
    assert len(props) == 2 and props <= names


def test_replays_from_the_archive_in_an_empty_directory(packed: dict[str, Any], tmp_path: Path) -> None:
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    archive = shutil.copy(packed["archive"], empty / "artifact.tar.gz")
    env = packed["env"]
    res = escope("list", "--run", "artifact.tar.gz", cwd=empty, env=env)
    assert res.returncode == 0, res.stderr
    assert "test_checkout" in res.stdout and "(recording not kept)" in res.stdout  # test_empty was not packed
    for tid in packed["ids"]:
        fail, first, hist = packed["before"][tid]
        got = json.loads(escope("replay", tid, "--run", str(archive), "--json", cwd=empty, env=env).stdout)
        assert got == fail
        got = json.loads(escope("replay", tid, "--run", str(archive), "--step", "3", "--json",
                                cwd=empty, env=env).stdout)
        assert got == first
        name = "cart.total" if "checkout" in tid else "data"
        got = json.loads(escope("history", tid, name, "--run", str(archive), "--json", cwd=empty, env=env).stdout)
        assert got == hist
    # the embedded source shows although no file of the project exists anywhere
    res = escope("replay", "test_checkout", "--run", str(archive), "--print", cwd=empty, env=env)
    assert res.returncode == 0 and "assert cart.total - off == 100" in res.stdout, res.out
    res = escope("events", "test_checkout", "--run", str(archive), "--kind", "call", "--json", cwd=empty, env=env)
    assert {e["function"] for e in json.loads(res.stdout)} >= {"Cart.add", "discount"}
    assert list(empty.iterdir()) == [empty / "artifact.tar.gz"]  # nothing written here


def test_python_api_opens_an_archive(packed: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_escope.replay import Recording
    monkeypatch.setenv("XDG_CACHE_HOME", packed["env"]["XDG_CACHE_HOME"])
    with Recording.open("test_boom", run=str(packed["archive"])) as rec:
        fail = rec.failure()
        assert fail is not None and "KeyError" in fail.message
        assert "data" in rec.state_at(fail.step).frame.locals


def test_extracted_archive_dir_is_a_run(packed: dict[str, Any], tmp_path: Path) -> None:
    with tarfile.open(packed["archive"], "r:gz") as tar:
        tar.extractall(tmp_path / "x", filter="data") if sys.version_info >= (3, 12) else \
            tar.extractall(tmp_path / "x")
    for where in (tmp_path / "x", tmp_path / "x" / "escope-run",
                  tmp_path / "x" / "escope-run" / packed["run_id"]):
        res = escope("replay", "test_checkout", "--run", str(where), "--json", cwd=tmp_path, env=packed["env"])
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout) == packed["before"][packed["ids"][0]][0]


def test_extraction_is_private_and_cached(packed: dict[str, Any], tmp_path: Path) -> None:
    env = packed["env"]
    for _ in range(2):
        assert escope("list", "--run", str(packed["archive"]), cwd=tmp_path, env=env).returncode == 0
    cache = Path(env["XDG_CACHE_HOME"]) / "escope" / "archives"
    entries = [p for p in cache.iterdir()]
    assert len(entries) == 1 and not entries[0].name.startswith(".")  # one entry, no leftovers
    for p in [entries[0], *entries[0].rglob("*")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o700 if p.is_dir() else 0o600), (p, oct(mode))


def test_pack_all_with_html(tmp_path: Path) -> None:
    env = clean_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    project = make_project(tmp_path)
    project.run("--escope", "--escope-keep=all")
    res = escope("pack", "--all", "--html", "-o", "all.tar.gz", cwd=project.path, env=env)
    assert res.returncode == 0, res.stderr
    assert "(3 tests, " in res.stdout
    with tarfile.open(project.path / "all.tar.gz", "r:gz") as tar:
        names = tar.getnames()
        html = [n for n in names if "/html/" in n]
        index = tar.extractfile(next(n for n in html if n.endswith("/index.html"))).read().decode()  # type: ignore
    assert len([n for n in names if "/tests/" in n]) == 3
    pages = sorted(n.rsplit("/", 1)[1] for n in html if not n.endswith("index.html"))
    assert len(pages) == 2 and all("test_checkout" in p or "test_boom" in p for p in pages)  # failed ones only
    for p in pages:
        assert f'href="{p}"' in index


def test_ci_summary_ends_with_the_pack_command(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    res = project.run("--escope", env=clean_env(CI="true"))
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    summary_end = next(i for i, ln in enumerate(lines) if ln.startswith("=") and "short test summary" in ln)
    assert "escope pack" in lines[summary_end - 1], res.stdout
    command = "escope pack" + lines[summary_end - 1].split("escope pack", 1)[1]
    env = clean_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", *command.split()[1:]],
                          cwd=project.path, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and (project.path / "escope-recordings.tar.gz").is_file(), done.stderr


def test_escope_pack_option_packs_at_the_end(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    res = project.run("--escope", "--escope-pack=artifacts/escope.tar.gz", env=clean_env(CI="1"))
    archive = project.path / "artifacts" / "escope.tar.gz"
    assert archive.is_file(), res.out
    assert "packed: " in res.stdout and "2 failed tests" in res.stdout
    with tarfile.open(archive, "r:gz") as tar:
        assert len([n for n in tar.getnames() if "/tests/" in n]) == 2
