"""The documents that describe interfaces stay true to the code."""

from __future__ import annotations

import re
from pathlib import Path

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
