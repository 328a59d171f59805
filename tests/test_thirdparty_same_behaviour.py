"""A real project's own test suite behaves the same with and without escope
(SPEC 3.8), and the run index lists every test that ran (SPEC 3.6).

The suite is more-itertools' (pinned sdist, unpacked by
``benchmarks/thirdparty.py`` into ``benchmarks/.cache`` or
``$ESCOPE_THIRDPARTY_DIR``; CI populates it before the tests, and this
module populates it itself if it is missing).  It is code we did not write:
unittest classes, 12k subtests, generators everywhere, exceptions used for
control flow.  Both sessions run on a copy of the suite in a temporary
directory, with the same arguments, and are compared test by test.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import Project, Run, clean_env

ROOT = Path(__file__).resolve().parents[1]
SUITE = "more-itertools"

#: Left out here (thirdparty.py deselects nothing: the benchmark corpus runs
#: every test) to keep this module near two minutes.  The first three take
#: minutes to hours to film (test_primes: ~5*10**8 generator steps;
#: test_roundtrip: 11 M events; test_large: ~10**6 yields over 450-digit
#: ints); the last two are 70% of the rest of the suite's balanced events
#: (3.3 M and 0.5 M generator steps of ``sieve``).  None exercises anything
#: the other tests do not.
SLOW = (
    "tests/test_recipes.py::PrimeFunctionTests::test_primes",
    "tests/test_more.py::DiscreteFourierTransformTests::test_roundtrip",
    "tests/test_recipes.py::PolynomialFromRootsTests::test_large",
    "tests/test_recipes.py::FactorTests::test_cross_check",
    "tests/test_recipes.py::SieveTests::test_prime_counts",
)
FULL = os.environ.get("ESCOPE_THIRDPARTY_FULL") == "1"

def _thirdparty():
    spec = importlib.util.spec_from_file_location("escope_bench_thirdparty", ROOT / "benchmarks" / "thirdparty.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _junit(path: Path) -> dict[str, str]:
    """``classname::name`` -> passed / failure / error / skipped."""
    found: dict[str, str] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        key = f"{case.get('classname')}::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = f"{child.tag}: {(child.get('message') or '')[:200]}"
                break
            if child.tag == "skipped":
                outcome = "skipped"
        if not found.get(key, "").startswith(("failure", "error")):
            found[key] = outcome
    return found


def _junit_key(nodeid: str) -> str:
    """``tests/test_more.py::Cls::test_x`` -> junit's ``tests.test_more.Cls::test_x``."""
    parts = nodeid.split("::")
    module = parts[0][:-3].replace("/", ".")
    return f"{'.'.join([module, *parts[1:-1]])}::{parts[-1]}"


_COUNT = re.compile(r"(\d+) (subtests passed|subtests failed|subtests skipped|passed|failed|skipped|"
                    r"xfailed|xpassed|errors?|deselected)")


def _counts(stdout: str) -> dict[str, int]:
    last = stdout.strip().splitlines()[-1]
    return {word.rstrip("s") if word.startswith("error") else word: int(n) for n, word in _COUNT.findall(last)}


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, list[str]]:
    tp = _thirdparty()
    try:
        tp.ensure([SUITE])
    except RuntimeError as exc:  # no sdist in the cache and no index to fetch it from
        pytest.skip(f"{SUITE} sdist unavailable: {exc}")
    copy = tp.working_copy(SUITE, tmp_path_factory.mktemp("thirdparty"))
    args = tp.pytest_args(SUITE, copy) + [f"--deselect={nodeid}" for nodeid in SLOW]
    if not FULL:
        # CI runs this on every interpreter: its recipes module (about 140
        # tests, generators and subtests throughout) keeps that to a minute;
        # ESCOPE_THIRDPARTY_FULL=1 runs the whole suite (benchmarks do too)
        args = [("tests/test_recipes.py" if a == "tests" else a) for a in args]
        args += ["-k", "not prime and not Factor and not totient and not Polynomial and not sieve"]
    return Project(copy), args


@pytest.fixture(scope="module")
def plain(suite: tuple[Project, list[str]]) -> tuple[str, dict[str, str]]:
    project, args = suite
    xml = project.path.parent / "plain.xml"
    res = project.run("-q", "-p", "no:escope", f"--junitxml={xml}", *args, env=clean_env(), timeout=900)
    assert res.returncode == 0, res.out[-3000:]
    return res.stdout, _junit(xml)


@pytest.fixture(scope="module")
def recorded(suite: tuple[Project, list[str]]) -> tuple[str, dict[str, str], Run]:
    project, args = suite
    xml = project.path.parent / "escope.xml"
    esc = project.path.parent / "escope"
    res = project.run("-q", "--escope", "--escope-strategy=balanced", f"--escope-dir={esc}",
                      f"--junitxml={xml}", *args, env=clean_env(), timeout=1800)
    return res.stdout + "\n--- stderr ---\n" + res.stderr, _junit(xml), project.latest(esc)


def test_same_outcomes(plain: tuple[str, dict[str, str]], recorded: tuple[str, dict[str, str], Run]) -> None:
    plain_out, plain_cases = plain
    esc_out, esc_cases, _ = recorded
    differ = {t: (plain_cases.get(t), esc_cases.get(t)) for t in plain_cases.keys() | esc_cases.keys()
              if plain_cases.get(t) != esc_cases.get(t)}
    assert not differ, f"outcomes differ (plain, escope): {differ}"
    counts = _counts(plain_out)
    assert counts.get("passed", 0) > (600 if FULL else 100), plain_out[-500:]
    assert counts.get("subtests passed", 0) > (2_000 if FULL else 50), plain_out[-500:]
    assert _counts(esc_out.split("\n--- stderr ---\n")[0]) == counts, esc_out[-3000:]
    assert "escope warning" not in esc_out, esc_out[-3000:]


def test_index_lists_every_test_that_ran(recorded: tuple[str, dict[str, str], Run]) -> None:
    _, cases, run = recorded
    rows = run.tests()
    assert sorted(_junit_key(t) for t in rows) == sorted(cases)
    by_key = {_junit_key(t): r for t, r in rows.items()}
    for key, outcome in cases.items():
        expected = "passed" if outcome == "passed" else "skipped" if outcome == "skipped" else "failed"
        assert by_key[key]["outcome"] == expected, (key, by_key[key])
    assert sum(r["events"] for r in rows.values()) > (100_000 if FULL else 10_000)
    assert all(r["events"] > 0 for r in rows.values() if r["outcome"] == "passed")
    # default keep=failed: every test passed, so no recording is left behind
    assert all(r["recording"] is None for r in rows.values())
    assert not list((run.path / "tests").glob("*.sqlite"))
