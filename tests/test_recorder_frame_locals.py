"""Reading a frame's locals leaves no trace the test can see.

On Python 3.12, ``frame.f_locals`` (FastToLocals) writes every local into
the dict that ``locals()`` returned to the test and keeps one more reference
to each value.  The compiled callbacks read locals one by one
(``PyFrame_GetVar``) instead; 3.13's ``f_locals`` is a view that writes
nothing.  Each probe runs plain and recorded, and must pass both ways.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from conftest import Project, clean_env
from reliability import summary

PROBES = '''
import sys


def test_locals_dict_is_a_snapshot():
    d = locals()
    y = 1
    z = [y]
    assert "y" not in d and "z" not in d, sorted(d)


def test_refcount_of_a_mutated_list():
    lst = [1, 2, 3]
    before = sys.getrefcount(lst)
    lst.append(4)
    after = sys.getrefcount(lst)
    assert before == after == 2, (before, after)


def helper(items):
    items.append(len(items))
    return sys.getrefcount(items)


def test_refcount_of_an_argument():
    data = []
    inside = helper(data)
    print("PROBE refs inside a call", inside, "after", sys.getrefcount(data))
'''


@pytest.fixture(scope="module")
def probes(tmp_path_factory: pytest.TempPathFactory) -> Project:
    proj = Project(tmp_path_factory.mktemp("frame-locals") / "proj")
    proj.write("test_probes.py", PROBES)
    return proj


def _probe_lines(text: str) -> list[str]:
    return re.findall(r"PROBE [^\n]*", text)


@pytest.fixture(scope="module")
def plain(probes: Project) -> list[str]:
    res = probes.run("-s")
    assert summary(res.stdout) == "3 passed", res.out[-3000:]
    lines = _probe_lines(res.stdout)
    assert len(lines) == 1, res.stdout
    return lines


@pytest.mark.skipif(sys.version_info < (3, 12), reason="3.11 records with sys.settrace, whose trampoline "
                    "syncs f_locals before every trace call (docs/reliability.md)")
@pytest.mark.parametrize("strategy", ["minimal", "balanced", "full_trace"])
def test_recorded_run_behaves_as_plain(probes: Project, plain: list[str], strategy: str, tmp_path: Path) -> None:
    res = probes.run("-s", "--escope", "--escope-keep=all", f"--escope-strategy={strategy}",
                     f"--escope-dir={tmp_path / 'escope'}", env=clean_env())
    assert summary(res.stdout) == "3 passed", res.out[-3000:]
    assert _probe_lines(res.stdout) == plain
    # and the mutation was still filmed
    rec = probes.latest(tmp_path / "escope").recording("test_refcount_of_a_mutated_list")
    try:
        shown = rec.history("lst")
    finally:
        rec.close()
    if strategy != "minimal":
        assert shown[-2:] == ["[1, 2, 3]", "[1, 2, 3, 4]"], shown
