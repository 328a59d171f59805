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

    @property
    def requirement(self) -> str:
        return f"{self.dist}=={self.version}"

    @property
    def dirname(self) -> str:
        # sdist tarballs unpack into <normalised_name>-<version>/
        return f"{self.dist.replace('-', '_')}-{self.version}"


SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        # 671 tests (12k unittest subtests).  Green on 3.11 and 3.12 with no exclusions;
        # three tests are deselected because filming them dominates any run (see why below).
        Suite("more-itertools", "more-itertools", "10.7.0", "tests", deselect={
            "tests/test_recipes.py::PrimeFunctionTests::test_primes":
                "28 s of the 32 s plain run: nth_prime(i) for each of the 9,592 primes below 10**5 "
                "re-runs the sieve generator, about 5*10**8 generator steps; filming it takes hours",
            "tests/test_more.py::DiscreteFourierTransformTests::test_roundtrip":
                "0.8 s plain but 11M events under balanced (3.4M generator yield/resume pairs): "
                "alone it takes longer than the rest of the suite together",
            "tests/test_recipes.py::PolynomialFromRootsTests::test_large":
                "0.7 s plain; convolve() yields ~10**6 times over lists of 450-digit ints: "
                "more than 5 minutes under balanced",
        }),
        # 180 tests, inside the package.  Green on 3.11 and 3.12 with no exclusions.
        Suite("toolz", "toolz", "1.0.0", "toolz/tests"),
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
        _pin_rootdir(root / s.dirname)
    return {s.name: root / s.dirname / s.tests for s in suites}


def _pin_rootdir(project: Path) -> None:
    """Give the unpacked sdist a ``pytest.ini`` of its own.

    Without it pytest walks up from the cache for a config file and, inside
    our checkout, picks the repository's ``pyproject.toml`` (its addopts and
    testpaths would leak into the third-party run).
    """
    ini = project / "pytest.ini"
    if not ini.exists():
        ini.write_text("# written by benchmarks/thirdparty.py: stops pytest's config search here\n[pytest]\n",
                       encoding="utf-8")


def project_dir(name: str) -> Path:
    """The unpacked sdist (the rootdir to run the suite from)."""
    return cache_dir() / SUITES[name].dirname


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
    args = [f"--rootdir={project or project_dir(name)}", suite.tests]
    for path in suite.exclude:
        args.append(f"--ignore={path}")
    for nodeid in suite.deselect:
        args.append(f"--deselect={nodeid}")
    return args


def _check(names: list[str], python: str) -> int:
    bad = 0
    for name in names:
        cmd = [python, "-m", "pytest", "-p", "no:cacheprovider", "-q", *pytest_args(name)]
        print(f"$ (cd {project_dir(name)} && {' '.join(cmd)})", flush=True)
        proc = subprocess.run(cmd, cwd=project_dir(name), capture_output=True, text=True)
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
