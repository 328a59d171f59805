"""Packaging (SPEC 2): the wheel installs ``pytest_escope`` alone, with
``recorder`` and ``replay`` inside it, and records a test in a fresh venv."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import Project, Rec, Run, clean_env

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _sh(*cmd: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # build from a copy: an in-tree build/ dir must not race with another
    # interpreter building the same checkout
    src = out / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", ".escope", "*.egg-info", "__pycache__", ".venv*", ".pytest_cache",
        "*.so"))
    env = clean_env()
    env.pop("PYTHONPATH", None)
    has_backend = all(importlib.util.find_spec(m) for m in ("setuptools", "wheel"))
    isolation = ["--no-build-isolation"] if has_backend else []  # else pip fetches the build backend
    _sh(sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-w", str(out), str(src), env=env)
    wheels = list(out.glob("pytest_escope-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    base = tmp_path_factory.mktemp("venv")
    env = clean_env()
    env.pop("PYTHONPATH", None)
    _sh(sys.executable, "-m", "venv", str(base / "v"), env=env)
    python = base / "v" / "bin" / "python"
    _sh(str(python), "-m", "pip", "install", "-q", str(wheel), env=env)
    return python


def test_wheel_holds_one_top_level_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"pytest_escope", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    assert "pytest_escope/recorder/collector.py" in names
    assert "pytest_escope/recorder/monitoring.py" in names
    assert "pytest_escope/replay/__init__.py" in names
    # the film page's sources are package data, read with importlib.resources
    for name in ("film.html", "film.css", "film.js"):
        assert f"pytest_escope/replay/film_assets/{name}" in names
    eps = [n for n in names if n.endswith("entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(eps[0]).decode()
    assert "[pytest11]" in text and "escope = pytest_escope.plugin" in text


def test_wheel_holds_the_compiled_callbacks_where_a_compiler_is(wheel: Path) -> None:
    """The C extension is optional: built when a compiler is present (as on
    this machine), skipped without one, never a failed install."""
    if not any(shutil.which(cc) for cc in ("cc", "gcc", "clang")):
        pytest.skip("no C compiler: the wheel is pure Python")
    names = zipfile.ZipFile(wheel).namelist()
    assert [n for n in names if n.startswith("pytest_escope/recorder/_hotpath.") and n.endswith(".so")]


def test_installed_imports_and_no_top_level_modules(venv: Path) -> None:
    env = clean_env()
    env.pop("PYTHONPATH", None)
    code = (
        "import importlib.util, json, sys, sysconfig, os\n"
        "import pytest_escope.recorder, pytest_escope.replay, pytest_escope.plugin\n"
        "import pytest_escope.recorder.collector, pytest_escope.recorder.schema\n"
        "site = sysconfig.get_paths()['purelib']\n"
        "print(json.dumps({'recorder': importlib.util.find_spec('recorder') is not None,\n"
        "                  'replay': importlib.util.find_spec('replay') is not None,\n"
        "                  'file': pytest_escope.recorder.__file__, 'site': site,\n"
        "                  'listing': sorted(os.listdir(site))}))\n"
    )
    out = _sh(str(venv), "-c", code, cwd=venv.parent.parent, env=env).stdout
    import json
    info = json.loads(out)
    assert info["recorder"] is False and info["replay"] is False
    assert info["file"].startswith(info["site"])
    assert "recorder" not in info["listing"] and "replay" not in info["listing"]
    assert "pytest_escope" in info["listing"]


def test_installed_plugin_records_a_failing_test(venv: Path, tmp_path: Path) -> None:
    proj = Project(tmp_path / "proj")
    proj.write("test_it.py", """
        def add(a, b):
            total = a + b
            return total


        def test_add():
            assert add(2, 2) == 5
    """)
    env = clean_env()
    env.pop("PYTHONPATH", None)
    res = proj.run("--escope", python=str(venv), env=env)
    assert res.returncode == 1, res.out
    assert "escope: 1 failed test recording(s)" in res.stdout
    assert str(REPO) not in res.out  # nothing came from the checkout
    run = proj.latest()
    rec = run.recording("test_add")
    assert rec.meta["outcome"] == "failed"
    assert [e.value_repr for e in rec.events() if e.kind == "return" and e.function == "add"] == ["4"]
    assert rec.unmapped_lines() == [] and rec.lines()
    if sys.version_info >= (3, 12) and any(shutil.which(cc) for cc in ("cc", "gcc", "clang")):
        assert rec.meta["callbacks"] == "compiled"


def test_installed_escope_exports_a_self_contained_film_page(venv: Path, tmp_path: Path) -> None:
    """The installed package finds its film page sources and inlines them."""
    proj = Project(tmp_path / "proj")
    proj.write("test_it.py", """
        def test_sub():
            left = 7
            assert left - 2 == 4
    """)
    env = clean_env()
    env.pop("PYTHONPATH", None)
    res = proj.run("--escope", python=str(venv), env=env)
    assert res.returncode == 1, res.out
    escope_exe = venv.parent / "escope"
    out = subprocess.run([str(escope_exe), "export", "test_sub", "--html", "-o", "film.html"], cwd=proj.path,
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    page = (proj.path / "film.html").read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "<style>" in page and "</script>" in page
    assert "film.css" not in page and "film.js" not in page  # inline, never a link to a file
    assert "escope film: test_it.py::test_sub" in page
