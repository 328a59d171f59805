"""The watch map (which names a line's statement may rebind or mutate) comes
from Python's own parser while filming; the node index (libcst) is built
only for the recordings that are kept.  The two walks must agree."""

from __future__ import annotations

import sysconfig
import unicodedata
from pathlib import Path

import pytest

from conftest import Project, clean_env

from pytest_escope.recorder.line_effects import called_names, line_effects
from pytest_escope.recorder.node_walk import walk_module

ROOT = Path(__file__).resolve().parent.parent


def _real_sources() -> list[Path]:
    """The project's own code and tests, the stdlib's top-level modules (they
    use every statement form, ``match`` included) and, when fetched, the
    third-party suites' files."""
    files = sorted((ROOT / "recorder").glob("*.py")) + sorted((ROOT / "replay").glob("*.py"))
    files += sorted((ROOT / "tests").glob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py"))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    # every statement form, `match` (dataclasses, traceback), async, walrus,
    # star-except, odd layouts; libcst takes a second per 3,000 lines
    files += [stdlib / name for name in (
        "dataclasses.py", "traceback.py", "ast.py", "contextlib.py", "functools.py", "argparse.py",
        "inspect.py", "shutil.py", "tarfile.py", "typing.py", "enum.py", "textwrap.py", "json/decoder.py",
        "asyncio/tasks.py", "asyncio/taskgroups.py", "email/_header_value_parser.py", "sqlite3/__main__.py",
        "test/test_unicode_identifiers.py", "tomllib/_parser.py", "zipfile/__init__.py", "zipfile.py",
    )]
    return [f for f in files if f.is_file()]


def _nfkc(entry: tuple[tuple[str, ...], tuple[str, ...]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    # Python stores identifiers NFKC-normalized (so do frame locals); libcst
    # keeps the spelling of the source
    bound, mutated = entry
    return (tuple(unicodedata.normalize("NFKC", n) for n in bound),
            tuple(unicodedata.normalize("NFKC", n) for n in mutated))


def test_watch_map_equals_the_node_index_walk_on_real_source() -> None:
    files = _real_sources()
    assert len(files) > 60
    compared = lines = 0
    for path in files:
        source = path.read_text("utf-8", "surrogateescape")
        try:
            expected = walk_module(source, "x.py", "sha").watch
        except Exception:
            continue  # libcst cannot parse it: the node index covers it with one node
        got = line_effects(source)
        expected = {line: _nfkc(entry) for line, entry in expected.items()}
        assert got == expected, f"{path}: first differing line " + str(
            min(line for line in set(got) | set(expected) if got.get(line) != expected.get(line)))
        compared += 1
        lines += len(got)
    assert compared > 60 and lines > 40_000


def test_watch_map_of_every_statement_form() -> None:
    source = '''\
import os.path as osp, sys
from json import (loads,
                  dumps as d)
@deco(a)
@other
def f(x,
      y):  # header comment
    # a comment before the body
    p = 1; q = g(
        x)
    if (x and
            y): z = 1; w.append(q)
    elif y:
        pass
    else: t = 2
    try:
        pass
    except (E,
            F) as e:
        v = 2
    finally: u = 3
    for i in range(3): x.add(i)
    while n := next(it): pass
    with open(p) as fh, q as (r, s):
        del r, s[0]
    k: int = 4
    h += [m for m in x if m]
    global G
    match x:
        case [1, *rest]:
            o = rest
        case _:
            pass
    return lambda lam: lam.pop()
'''
    got = line_effects(source)
    expected = walk_module(source, "x.py", "sha").watch
    assert got == expected
    assert got[1] == (("osp", "sys"), ())
    assert got[4][0] == ("f",) and got[4][1] == ("a",)
    assert got[9] == (("p", "q"), ("x",)) == got[10]
    assert got[12] == (("z",), ("q", "w"))
    assert got[20] == (("v", "e"), ())  # Python unbinds `e` after the handler
    assert got[22] == ((), ("i", "x"))
    assert got[27] == (("m",), ("h",))  # a comprehension variable is a local (3.12+)
    last = source.splitlines().index("    return lambda lam: lam.pop()") + 1
    assert got[last] == ((), ())  # a lambda's body runs in a frame of its own


def test_unparsable_source_gives_an_empty_map() -> None:
    assert line_effects("def broken(:\n    pass\n") == {}
    assert called_names("def broken(:\n    pass\n") == {}


def test_called_names_sit_on_the_watch_map_lines() -> None:
    """A plain name called on a line (a bound method in a local, re-read
    after the statement) is keyed like the watch map: a multi-line
    statement on each of its lines, a one-line body on its header's."""
    source = """\
def wire(log, handlers, payload):
    sink = log.append
    sink(
        ("start", payload))
    for handler in handlers: handler(payload)
    total = len(log) + obj.count(x)
    return deliver(lambda item: sink(item))
"""
    got = called_names(source)
    assert got == {3: ("sink",), 4: ("sink",), 5: ("handler",), 6: ("len",), 7: ("deliver",)}
    assert set(got) <= set(line_effects(source))
    for path in _real_sources()[:40]:
        text = path.read_text("utf-8", "surrogateescape")
        assert set(called_names(text)) <= set(line_effects(text)), path


COLD = {
    "test_cold.py": '''
        import sys

        def helper(items):
            items.append(len(items))
            return items

        def test_passes():
            assert helper([1]) == [1, 1]

        def test_fails():
            data = helper([])
            data = helper(data)
            assert data == [0, 2]
    ''',
    "conftest.py": '''
        import os
        import sys

        def pytest_sessionfinish(session):
            with open(os.environ["MODULES_AT_END"], "w") as fh:
                fh.write("libcst" if "libcst" in sys.modules else "-")
    ''',
}


@pytest.mark.parametrize("select, kept", [("test_passes", 0), ("", 1)])
def test_a_cold_run_indexes_only_kept_recordings(tmp_path: Path, select: str, kept: int) -> None:
    """A fresh checkout has no node cache: a run whose tests all pass (keep
    failed) never imports libcst and caches nothing; a failed test's
    recording still ties every line step to its statement."""
    project = Project(tmp_path / "proj")
    for name, text in COLD.items():
        project.write(name, text)
    out = tmp_path / "modules.txt"
    args = ["--escope", "-q"] + (["-k", select] if select else [])
    res = project.run(*args, env=clean_env(MODULES_AT_END=str(out)))
    assert res.returncode == (0 if select else 1), res.out
    cache = project.escope_dir / "cache" / "nodes"
    cached = list(cache.glob("*.json")) if cache.exists() else []
    if not kept:
        assert out.read_text() == "-", "libcst was imported by a run that kept no recording"
        assert cached == []
        return
    assert out.read_text() == "libcst"
    assert len(cached) == 1  # the test file: the conftest ran no filmed line
    rec = project.latest().recording("test_fails")
    try:
        assert rec.unmapped_lines() == []
        line = rec.line_of("test_cold.py", "data = helper(data)")
        assert rec.node_of("test_cold.py", line) == f"test_cold.py:test_fails:{line}:assign"
        assert rec.history("data", "test_fails")[-1] == "[0, 2]" or "[0, 1]" in " ".join(rec.history("data", "test_fails"))
    finally:
        rec.close()
