"""Third-party test suites the benchmarks and the same-behaviour test run.

Real projects' own tests are the honest workload for a recorder: code we
did not write, with generators, closures, ``unittest`` subtests and
exceptions used for control flow.  We fetch pinned PyPI sdists (they ship
their tests), unpack them once into a cache and run them from there, so the
package under test is imported from the unpacked source tree (pytest's
rootdir ``sys.path`` insertion) and is in escope's scope.

The cache is ``benchmarks/.cache/`` (or ``$ESCOPE_THIRDPARTY_DIR``).  Once
it is populated nothing here touches the network.

    python benchmarks/thirdparty.py            # fetch + unpack, print the paths
    python benchmarks/thirdparty.py --check    # also run each suite with plain pytest

One suite, ``shapes`` (synthetic workloads), ships in this repository
(``benchmarks/shapes/``) and is only copied, never downloaded.  The corpus
and how to measure it: docs/performance.md, ``benchmarks/corpus.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CACHE_ENV = "ESCOPE_THIRDPARTY_DIR"
DEFAULT_CACHE = Path(__file__).resolve().parent / ".cache"


@dataclass(frozen=True)
class Suite:
    """One pinned sdist and where its tests live inside it."""

    name: str  # short name used on the command line and in reports
    dist: str  # PyPI distribution name
    version: str
    tests: str  # path of the tests, relative to the unpacked sdist
    #: test files (relative to the unpacked sdist) left out, each with why
    exclude: dict[str, str] = field(default_factory=dict)
    #: single tests (pytest node ids) left out, each with why
    deselect: dict[str, str] = field(default_factory=dict)
    #: ``pythonpath`` for the pytest.ini we pin in the unpacked sdist (``src`` layouts)
    pythonpath: str = ""
    #: extra pytest arguments every run of the suite needs
    args: tuple[str, ...] = ()
    #: a folder of ``benchmarks/`` shipped in this repository instead of a PyPI sdist
    local: str = ""

    @property
    def requirement(self) -> str:
        return f"{self.dist}=={self.version}"

    @property
    def dirname(self) -> str:
        if self.local:
            return self.name
        # sdist tarballs unpack into <normalised_name>-<version>/
        return f"{self.dist.replace('-', '_')}-{self.version}"


SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        # Every suite is green with plain pytest on 3.11.7 and 3.12.1 (``--check``), with escope's
        # [test] extra installed and nothing else.  Counts and seconds: plain, 3.12.1, this VM.
        # 671 tests (12k unittest subtests), none deselected (issue 16: a workload is never left out
        # to meet a budget).  Green on 3.11 and 3.12.  Three tests dominate any recorded run:
        # test_recipes.py::PrimeFunctionTests::test_primes (28 s of the 32 s plain run, ~5*10**8
        # generator steps), test_more.py::DiscreteFourierTransformTests::test_roundtrip (11 M
        # events) and test_recipes.py::PolynomialFromRootsTests::test_large (~10**6 yields over
        # 450-digit ints): benchmarks/corpus.py gives them a per-test timeout that its report names,
        # it never deselects them.
        Suite("more-itertools", "more-itertools", "10.7.0", "tests"),
        # 180 tests, inside the package.  Green on 3.11 and 3.12 with no exclusions.
        Suite("toolz", "toolz", "1.0.0", "toolz/tests"),
        # 423 tests, 5 s plain.  Big mutable containers (BarrelList: a list of lists; IndexedSet
        # sliced over every (start, stop, step)), LRI/LRU caches with linked nodes, gcutils
        # (gc.collect() in a loop), tracebacks and exceptions.  Its tests/conftest.py implements
        # pytest_ignore_collect(path, config), an argument pytest 9 no longer has: --noconftest.
        # That hook only skips *_py2 files, none of which exist, so on Python 3 the same tests run.
        Suite("boltons", "boltons", "25.0.0", "tests", args=("--noconftest",)),
        # 216 tests, 2 s plain.  Linked-node caches (LFU, LRU, TTL with doubly linked lists), copied
        # and pickled.  src/ layout: the unpacked src/ goes on sys.path through pytest.ini.
        Suite("cachetools", "cachetools", "5.5.2", "tests", pythonpath="src"),
        # 638 tests (102 skipped: the C pvector's variants), 11 s plain.  Persistent containers (a
        # 32-way trie vector, a HAMT-like map, checked records), pure Python here (the C pvector is
        # not built from the unpacked sdist).  It stands in for a sorted-list library:
        # sortedcontainers' sdists (2.0.5 to 2.4.0) ship no tests.  Its hypothesis_vector_test.py
        # needs hypothesis (in escope's [test] extra).
        Suite("pyrsistent", "pyrsistent", "0.20.0", "tests"),
        # 1,341 tests, 20-32 s plain.  gc/weakref-heavy: generated classes (slots, weakref slots,
        # cached properties, frozen instances), validators raising for control flow,
        # copy/pickle/evolve.  src/ layout.  Needs hypothesis (in escope's [test] extra).
        Suite("attrs", "attrs", "25.3.0", "tests", pythonpath="src", exclude={
            "tests/test_packaging.py": "reads attrs' installed distribution metadata "
                                       "(importlib.metadata); run from the unpacked sdist it is not installed",
        }, deselect={
            "tests/test_converters.py::TestPipe::test_wrapped_annotation":
                "fails with plain pytest on Python 3.12.1 (also with attrs 24.2.0): "
                "get_return_type() of a wrapped pipe converter is None, the test expects bool",
        }),
        # 1,905 tests (1.7k subtests), 112 s plain.  Exception-heavy parsing: pyparsing backtracks
        # by raising ParseException, with and without packrat memoisation; the examples/ grammars
        # (SQL, Lucene, ...).
        Suite("pyparsing", "pyparsing", "3.2.3", "tests", exclude={
            "tests/test_diagram.py": "needs pyparsing's [diagrams] extra (railroad-diagrams, jinja2), not installed",
        }, deselect={
            "tests/test_examples.py::TestExamples::test_range_check":
                "needs pyparsing's [diagrams] extra (railroad-diagrams, jinja2), not installed",
        }),
        # 6 tests, 2 s plain.  Synthetic workloads, one per pathological shape of issue 16, shipped
        # in this repository (benchmarks/shapes/): nothing to download.
        Suite("shapes", "escope-shapes", "0", ".", local="shapes"),
    )
}


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser().resolve() if env else DEFAULT_CACHE


def _sdist_file(where: Path, suite: Suite) -> Path | None:
    stem = suite.dirname.lower()
    for candidate in where.iterdir():
        name = candidate.name.lower()
        if name.startswith(stem) and name.endswith((".tar.gz", ".zip")):
            return candidate
        if name.startswith(f"{suite.dist.lower()}-{suite.version}") and name.endswith((".tar.gz", ".zip")):
            return candidate
    return None


def download(suites: list[Suite], where: Path, python: str = sys.executable) -> None:
    """Fetch the sdists with pip (the only step that needs the network)."""
    missing = [s for s in suites if _sdist_file(where, s) is None]
    if not missing:
        return
    where.mkdir(parents=True, exist_ok=True)
    cmd = [python, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           "--disable-pip-version-check", "-d", str(where), *(s.requirement for s in missing)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pip download failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n"
                           f"fetch them by hand with: {' '.join(cmd)}")


def _extract(archive: Path, into: Path, suite: Suite) -> Path:
    target = into / suite.dirname
    if (target / suite.tests).is_dir():
        return target
    with tempfile.TemporaryDirectory(dir=into) as tmp:
        if archive.name.endswith(".zip"):
            import zipfile
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(tmp, filter="data")
                else:  # pragma: no cover - Python without PEP 706
                    tf.extractall(tmp)
        roots = [p for p in Path(tmp).iterdir() if p.is_dir()]
        if len(roots) != 1:
            raise RuntimeError(f"{archive}: expected one top-level directory, found {roots}")
        if target.exists():
            shutil.rmtree(target)
        os.replace(roots[0], target)
    return target


def ensure(names: list[str] | None = None, *, python: str = sys.executable) -> dict[str, Path]:
    """Make sure each suite is unpacked in the cache; return its tests' path.

    Network only if an sdist is not already in ``cache_dir()/sdists``.
    """
    suites = [SUITES[n] for n in (names or list(SUITES))]
    local = [s for s in suites if s.local]
    suites = [s for s in suites if not s.local]
    root = cache_dir()
    sdists = root / "sdists"
    todo = [s for s in suites if not (root / s.dirname / s.tests).is_dir()]
    if todo:
        sdists.mkdir(parents=True, exist_ok=True)
        download(todo, sdists, python)
        for s in todo:
            archive = _sdist_file(sdists, s)
            if archive is None:
                raise RuntimeError(f"pip reported success but no sdist of {s.requirement} is in {sdists}")
            _extract(archive, root, s)
    for s in suites:
        _pin_rootdir(root / s.dirname, s)
    paths = {s.name: root / s.dirname / s.tests for s in suites}
    paths.update({s.name: project_dir(s.name) / s.tests for s in local})
    return paths


def _pin_rootdir(project: Path, suite: Suite) -> None:
    """Give the unpacked sdist a ``pytest.ini`` of its own.

    Without it pytest walks up from the cache for a config file and, inside
    our checkout, picks the repository's ``pyproject.toml`` (its addopts and
    testpaths would leak into the third-party run).
    """
    ini = project / "pytest.ini"
    text = "# written by benchmarks/thirdparty.py: stops pytest's config search here\n[pytest]\n"
    if suite.pythonpath:
        text += f"pythonpath = {suite.pythonpath}\n"
    if not ini.exists() or ini.read_text(encoding="utf-8") != text:
        ini.write_text(text, encoding="utf-8")


def project_dir(name: str) -> Path:
    """The unpacked sdist (the rootdir to run the suite from)."""
    suite = SUITES[name]
    if suite.local:
        return Path(__file__).resolve().parent / suite.local
    return cache_dir() / suite.dirname


def working_copy(name: str, dest: Path) -> Path:
    """Copy the unpacked sdist to ``dest/<dirname>`` and return it.

    Runs happen in a copy so the cache stays pristine (no ``.escope`` or
    ``__pycache__`` left in it), and because escope, installed editable,
    treats its whole checkout as "the plugin itself" and records nothing
    under it -- including ``benchmarks/.cache``.
    """
    ensure([name])
    target = dest / SUITES[name].dirname
    shutil.copytree(project_dir(name), target, ignore=shutil.ignore_patterns("__pycache__", ".escope"))
    return target


def pytest_args(name: str, project: Path | None = None) -> list[str]:
    """Arguments that select the suite (paths and exclusions), run from ``project``."""
    suite = SUITES[name]
    args = [f"--rootdir={project or project_dir(name)}", *suite.args, suite.tests]
    for path in suite.exclude:
        args.append(f"--ignore={path}")
    for nodeid in suite.deselect:
        args.append(f"--deselect={nodeid}")
    return args


def _check(names: list[str], python: str) -> int:
    bad = 0
    with tempfile.TemporaryDirectory(prefix="escope-thirdparty-check-") as tmp:
        for name in names:
            # in a copy, out of this checkout (see working_copy), as the benchmarks run it
            project = working_copy(name, Path(tmp))
            cmd = [python, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-q",
                   *pytest_args(name, project)]
            print(f"$ (cd {project} && {' '.join(cmd)})", flush=True)
            proc = subprocess.run(cmd, cwd=project, capture_output=True, text=True)
            tail = proc.stdout.strip().splitlines()[-1:] or ["(no output)"]
            print(f"  exit {proc.returncode}: {tail[0]}", flush=True)
            bad += proc.returncode != 0
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suites", nargs="*", metavar="SUITE", help=f"one of {', '.join(SUITES)} (default: all)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for pip and --check")
    parser.add_argument("--check", action="store_true", help="run each suite with plain pytest")
    args = parser.parse_args(argv)
    names = args.suites or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        parser.error(f"unknown suite {unknown[0]!r}; choose from {', '.join(SUITES)}")
    try:
        paths = ensure(names, python=args.python)
    except RuntimeError as exc:
        print(f"thirdparty: {exc}", file=sys.stderr)
        return 2
    for name, path in paths.items():
        print(f"{name}\t{SUITES[name].requirement}\t{path}")
    if args.check:
        return _check(names, args.python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
