"""The film page's sources (``replay/film_assets/``: film.html, film.css,
film.js) make exactly the page ``escope export --html`` has always written.

``tests/gold/film_page.html`` is the page's template as one file, style and
script inline, with ``{{TITLE}}`` and ``{{DATA}}`` still to fill in.  A
real recording is exported through the real CLI and compared byte for byte
with that template filled with the same recording's data.  After a change
to the page that is meant, ``ESCOPE_UPDATE_GOLD=1`` rewrites the gold file
from the sources (then review its diff)."""

from __future__ import annotations

import os
import subprocess
import sys
from html import escape
from pathlib import Path

import pytest

from conftest import Project, clean_env
from pytest_escope.replay import Recording
from pytest_escope.replay.film import MAX_STEPS, _json_for_script, film_data
from pytest_escope.replay.film_page import ASSETS, SCRIPT_LINK, STYLE_LINK, build_page

GOLD = Path(__file__).resolve().parent / "gold" / "film_page.html"
SOURCES = Path(__file__).resolve().parent.parent / "replay" / ASSETS

SUITE = '''
def average(values):
    total = 0
    for v in values:
        total += v
    return total / len(values)


def test_average():
    marks = [3, 4, "</script>&", 5]
    assert average(marks[:2] + marks[3:]) == 4.5
'''


def _gold() -> bytes:
    if os.environ.get("ESCOPE_UPDATE_GOLD"):
        GOLD.write_bytes(build_page().encode("utf-8"))
    return GOLD.read_bytes()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Project:
    proj = Project(tmp_path_factory.mktemp("film-page") / "proj")
    proj.write("test_avg.py", SUITE)
    res = proj.run("--escope")
    assert res.returncode == 1, res.out
    return proj


def test_exported_page_is_the_gold_page_byte_for_byte(recorded: Project) -> None:
    out = recorded.path / "film.html"
    res = subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", "export", "test_average", "--html",
                          "-o", str(out)], cwd=recorded.path, env=clean_env(), capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    with Recording.open("test_average", escope_dir=str(recorded.escope_dir)) as rec:
        data = film_data(rec, MAX_STEPS)
    template = _gold().decode("utf-8")
    expected = (template.replace("{{TITLE}}", escape(f"escope film: {data['test']}"))
                        .replace("{{DATA}}", _json_for_script(data)))
    page = out.read_bytes()
    assert page == expected.encode("utf-8")
    # the recorded values really are in it, escaped for the script block they sit in
    assert b"test_average" in page and b"\\u003c/script\\u003e\\u0026" in page


def test_sources_inline_into_the_gold_template() -> None:
    assert build_page().encode("utf-8") == _gold()


def test_sources_are_real_files_a_linter_can_read() -> None:
    html = (SOURCES / "film.html").read_text(encoding="utf-8")
    css = (SOURCES / "film.css").read_text(encoding="utf-8")
    js = (SOURCES / "film.js").read_text(encoding="utf-8")
    # the HTML names its style and script as files, once each; they hold no HTML of their own
    assert html.count(STYLE_LINK) == 1 and html.count(SCRIPT_LINK) == 1
    assert html.startswith("<!doctype html>") and "<style>" not in html
    assert "</style>" not in css and "<script" not in js and "</script>" not in js
    # what the exported page inlines is every byte of the two files
    page = build_page()
    assert "<style>\n" + css + "</style>" in page and "<script>\n" + js + "</script>" in page
    assert STYLE_LINK not in page and SCRIPT_LINK not in page


def test_assets_are_declared_package_data() -> None:
    text = (SOURCES.parent.parent / "pyproject.toml").read_text(encoding="utf-8")
    for ext in ("html", "css", "js"):
        assert f'"{ASSETS}/*.{ext}"' in text
