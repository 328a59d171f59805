"""The documents that describe interfaces stay true to the code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_escope.recorder import schema

ROOT = Path(__file__).resolve().parent.parent


def _tables_and_columns(sql: str) -> dict[str, list[str]]:
    tables: dict[str, list[str]] = {}
    for m in re.finditer(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+) \((.*?)\n\)", sql, re.S):
        cols = []
        for line in m.group(2).splitlines():
            line = line.split("--")[0].strip()
            word = line.split(" ")[0] if line else ""
            if word and word.upper() not in ("PRIMARY", "UNIQUE", "FOREIGN"):
                cols.append(word)
        tables[m.group(1)] = cols
    return tables


def test_every_table_and_column_of_the_schema_is_documented() -> None:
    doc = (ROOT / "docs" / "recording-format.md").read_text()
    tables = _tables_and_columns(schema.SCHEMA)
    assert set(tables) == set(schema.TABLES)
    for table, cols in tables.items():
        assert f"`{table}`" in doc, f"table {table} is not documented"
        for col in cols:
            assert f"`{col}`" in doc, f"column {table}.{col} is not documented"
    assert f"schema_version {schema.SCHEMA_VERSION}" in doc


def test_run_index_columns_are_documented() -> None:
    doc = (ROOT / "docs" / "recording-format.md").read_text()
    for table, cols in _tables_and_columns(schema.INDEX_SCHEMA).items():
        for col in cols:
            assert f"`{col}`" in doc, f"index column {table}.{col} is not documented"


def test_readme_quick_start_is_two_commands_and_names_the_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```console\n(.*?)\n```", quick, re.S)
    assert len(commands) == 2
    assert all("\n" not in c for c in commands)
    assert "--escope" in commands[0] and "escope replay" in commands[0]
    assert "pytest" in commands[1]
    # .ci/run reads the test command from the line after this marker
    assert "<!-- test-command -->\n```console\n" + commands[1] in quick


def test_documents_linked_from_the_readme_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    for link in re.findall(r"\]\((docs/[^)]+)\)", readme):
        assert (ROOT / link).is_file(), f"README links to missing {link}"


def _install_block(doc: str, name: str) -> list[str]:
    block = doc.split(f"<!-- install: {name} -->\n```console\n", 1)[1].split("\n```", 1)[0]
    return block.splitlines()


def test_ci_install_lines_name_no_index_but_the_marked_one() -> None:
    doc = (ROOT / "docs" / "ci.md").read_text()
    assert _install_block(doc, "index (not published yet)") == ["python -m pip install pytest-escope"]
    index_line = doc.split("<!-- install: index (not published yet) -->", 1)[1].split("\n```\n", 1)[0]
    for line in doc.replace(index_line, "").splitlines():
        code = line.split("#", 1)[0]
        if "pip install" in code and not code.startswith("escope: error:"):  # an error text quoted
            assert "./pytest-escope" in code or "wheels/pytest_escope-*.whl" in code, line


@pytest.mark.slow
def test_ci_install_lines_work(tmp_path: Path) -> None:
    """docs/ci.md's install lines, run as written in a fresh venv: from the
    checkout, and from a wheel built from it."""
    import shutil
    import subprocess
    import sys

    from conftest import clean_env

    doc = (ROOT / "docs" / "ci.md").read_text()
    shutil.copytree(ROOT, tmp_path / "pytest-escope", ignore=shutil.ignore_patterns(
        ".git", "build", "dist", ".escope", "*.egg-info", "__pycache__", ".venv*", ".pytest_cache", "*.so"))
    for name in ("checkout", "wheel"):
        venv = tmp_path / f"venv-{name}"
        env = clean_env()
        env.pop("PYTHONPATH", None)
        env.pop("VIRTUAL_ENV", None)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env, timeout=300)
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
        for line in _install_block(doc, name):
            res = subprocess.run(line, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                                 timeout=900)
            assert res.returncode == 0, f"{line}\n{res.stdout}\n{res.stderr}"
        res = subprocess.run([str(venv / "bin" / "escope"), "--version"], capture_output=True, text=True,
                             env=env, timeout=120)
        assert res.returncode == 0 and res.stdout.startswith("escope (pytest-escope) "), res.stderr
        shutil.rmtree(venv)


def test_import_graph_in_architecture_is_what_the_script_prints_now() -> None:
    res = subprocess.run([sys.executable, str(ROOT / "docs" / "import_graph.py")], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr  # also: nothing in recorder/ imports pytest or replay/
    doc = (ROOT / "docs" / "architecture.md").read_text()
    block = doc.split("<!-- import-graph: generated by python docs/import_graph.py -->\n```text\n", 1)[1]
    assert block.split("```\n<!-- /import-graph -->", 1)[0] == res.stdout, \
        "docs/architecture.md's import graph is stale: paste the output of python docs/import_graph.py"
