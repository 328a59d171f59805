"""Replay speed on a recording of over a million events (issue: escope replay, item 5).

It records a real program -- a pytest test whose loop calls a function
116,000 times, with a running total rebound 116,000 times and a list
mutated in place -- with ``pytest --escope``, then measures, as medians:
opening the recording, ``state_at`` at random steps, one step forward and
one step back (``n``/``rn`` and ``s``/``rs``) at random points,
``history`` of the total and of the list (a page, as the API and the CLI
give it, and the whole), and ``events --limit 100`` with filters.  Random
points are drawn near the start (first 5%) and near the end (last 5%) to
show the cost does not depend on the position.

    python benchmarks/bench_replay.py [--iterations N] [--keep DIR] [--json OUT] [--format 2]

``--iterations 1160000`` films some 10 million events (minutes to record,
about 100 MB).  ``--format 2`` measures the same film rewritten as a
schema-2 recording (its key frames dropped): the path every command took
before key frames, unpacking the film into the cache on first use.

Not a timed test: run it by hand and copy the table into
docs/performance.md ("Replay").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

PROGRAM = '''
def work(i, acc):
    x = i * 2
    y = x % 7
    acc.append(y)
    return x + y


def test_million():
    total = 0
    acc = []
    for i in range({n}):
        total += work(i, acc)
        if len(acc) > 20:
            acc.clear()
    assert total < 0
'''

BUDGET_MS = 50.0


def record(workdir: Path, iterations: int) -> Path:
    (workdir / "test_million.py").write_text(PROGRAM.format(n=iterations))
    (workdir / "pytest.ini").write_text("[pytest]\n")
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "--escope", "--escope-keep=all", "-q", "-p", "no:cacheprovider",
                    "test_million.py"], cwd=workdir, env=env, stdout=subprocess.DEVNULL, check=False)
    print(f"recorded in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    found = sorted(workdir.glob(".escope/runs/*/tests/*.sqlite"))
    if not found:
        raise SystemExit("no recording was written")
    return found[-1]


@contextlib.contextmanager
def recording(keep: Path | None, iterations: int) -> Iterator[Path]:
    """The benchmark's recording: reused from ``keep`` (or made there), else
    made in a temporary directory that is removed afterwards."""
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
        existing = sorted(keep.glob(".escope/runs/*/tests/*.sqlite"))
        yield existing[-1] if existing else record(keep, iterations)
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield record(Path(tmp), iterations)


def cli(argv: list[str]) -> None:
    """One ``escope`` command in this process, its output thrown away (the
    process start is the same for every command, and not replay's)."""
    from pytest_escope.replay import cli as escope
    with open(os.devnull, "w") as sink:
        saved, sys.stdout, saved_err, sys.stderr = sys.stdout, sink, sys.stderr, sink
        try:
            escope.main(argv)
        finally:
            sys.stdout, sys.stderr = saved, saved_err


def as_format_2(path: Path) -> Path:
    """A copy of the recording without its key frames, marked schema 2."""
    import shutil
    import sqlite3
    twin = path.with_name(path.stem + ".format2.sqlite")
    if not twin.exists():
        shutil.copyfile(path, twin)
        db = sqlite3.connect(twin)
        db.execute("DROP TABLE keyframes")
        db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        db.commit()
        db.execute("VACUUM")
        db.close()
    return twin


def shell_prompt_ms(path: Path, samples: int) -> tuple[float, float]:
    """``escope replay PATH`` from the shell to its first prompt and out
    (``q``): a new interpreter each time, as a user starts it.  Medians of
    wall and CPU milliseconds (CPU: what a loaded machine cannot inflate)."""
    import resource
    # an installed package has its bytecode compiled: write it once
    # (PYTHONDONTWRITEBYTECODE would make every start compile every module)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", "--version"], env=env,
                   stdout=subprocess.DEVNULL, check=False)
    walls, cpus = [], []
    for _ in range(samples):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", "replay", str(path)], input="q\n",
                       text=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, env=env)
        walls.append((time.perf_counter() - t0) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def calibration_ms() -> float:
    """How fast this machine runs Python now, to read the figures by."""
    t0 = time.perf_counter()
    s = 0
    for i in range(1_000_000):
        s += i
    return (time.perf_counter() - t0) * 1000


def cache_bytes() -> int:
    root = Path(os.environ["ESCOPE_FILM_CACHE"])
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


def median_ms(fn: Callable[[Any], Any], args: list[Any]) -> float:
    times = []
    for a in args:
        t0 = time.perf_counter()
        fn(a)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def measure(path: Path, samples: int, seed: int) -> dict[str, Any]:
    from pytest_escope.replay import Recording
    from pytest_escope.replay import navigation as nav

    rng = random.Random(seed)
    results: dict[str, Any] = {}
    # The first command a user runs on a new recording: an empty cache.  A
    # schema-3 film is read where it lies; a schema-2 one is unpacked into
    # the cache first, and later opens find it there.
    os.environ["ESCOPE_FILM_CACHE"] = tempfile.mkdtemp(prefix="escope-bench-cache-")
    t0 = time.perf_counter()
    first = Recording.open(path)
    results["first open"] = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    first.state_at(first.failure().step)
    results["first open + state at the failure"] = results["first open"] + (time.perf_counter() - t0) * 1000
    first.close()
    results["size_bytes"] = path.stat().st_size
    results["open"] = median_ms(lambda _: Recording.open(path).close(), list(range(samples)))
    wall, cpu = shell_prompt_ms(path, max(3, samples // 10))
    results["escope replay TEST to the first prompt (shell), wall"] = wall
    results["escope replay TEST to the first prompt (shell), CPU"] = cpu
    rec = Recording.open(path)
    n = len(rec.steps)
    results["events"] = n
    results["path"] = str(path)
    span = max(1, n // 20)
    regions = {"start": (rec.first_step, rec.first_step + span), "end": (rec.last_step - span, rec.last_step - 1)}
    for region, (lo, hi) in regions.items():
        # a fresh connection per region: no cache carried over from the other one
        rec.close()
        rec = Recording.open(path)
        steps = [rng.randint(lo, hi) for _ in range(samples)]
        cold = []
        for step in steps[:10]:
            # a new Recording each time: nothing of the film decoded yet
            fresh = Recording.open(path)
            t0 = time.perf_counter()
            fresh.state_at(step)
            cold.append((time.perf_counter() - t0) * 1000)
            fresh.close()
        results[f"state_at, just opened/{region}"] = statistics.median(cold)
        results[f"state_at/{region}"] = median_ms(rec.state_at, steps)
        results[f"n/{region}"] = median_ms(lambda s: nav.over(rec, s, True), steps)
        results[f"rn/{region}"] = median_ms(lambda s: nav.over(rec, s, False), steps)
        results[f"s/{region}"] = median_ms(lambda s: nav.thread_step(rec, s, True), steps)
        results[f"rs/{region}"] = median_ms(lambda s: nav.thread_step(rec, s, False), steps)
        # one step as the session does it: move, then rebuild the state shown
        results[f"n+state/{region}"] = median_ms(lambda s: rec.state_at(nav.over(rec, s, True)), steps)
        results[f"rn+state/{region}"] = median_ms(lambda s: rec.state_at(nav.over(rec, s, False)), steps)
    results["cache bytes after state and motions"] = cache_bytes()
    for region, (lo, hi) in regions.items():
        steps = [rng.randint(lo, hi) for _ in range(samples)]
        results[f"events call work --limit 100/{region}"] = median_ms(
            lambda s: rec.events(kind="call", function="work", since=s, limit=100), steps[:20])
        results[f"events --node (total +=) --limit 100/{region}"] = median_ms(
            lambda s: rec.events(node="test_million.py:test_million:13:aug_assign", since=s, limit=100), steps[:20])
        results[f"events --kind return --thread MainThread --limit 100/{region}"] = median_ms(
            lambda s: rec.events(kind="return", thread="MainThread", since=s, limit=100), steps[:20])
    results["history total --limit 100"] = median_ms(lambda _: list(rec.history("total", limit=100)),
                                                     list(range(samples)))
    results["history acc --limit 100"] = median_ms(lambda _: list(rec.history("acc", limit=100)), list(range(samples)))
    # what a script and a user get: the lazy History and its first page; the CLI's page, in-process
    results["history total: first page h[:50]"] = median_ms(lambda _: rec.history("total")[:50], list(range(samples)))
    results["history acc: first page h[:50]"] = median_ms(lambda _: rec.history("acc")[:50], list(range(samples)))
    results["escope history total (text page)"] = median_ms(
        lambda _: cli(["history", str(path), "total"]), list(range(samples)))
    results["escope history total --json (page)"] = median_ms(
        lambda _: cli(["history", str(path), "total", "--json"]), list(range(samples)))
    results["escope history acc --json (page)"] = median_ms(
        lambda _: cli(["history", str(path), "acc", "--json"]), list(range(samples)))
    results["escope history total --since S (last 5%) (text page)"] = median_ms(
        lambda s: cli(["history", str(path), "total", "--since", str(s)]),
        [rng.randint(rec.last_step - span, rec.last_step - 1) for _ in range(5)])
    # a new Recording each time: what one `escope history`/`events` command pays
    for region, (lo, hi) in regions.items():
        def fresh_events(s: int) -> None:
            with Recording.open(path) as r:
                r.events(kind="call", function="work", since=s, limit=100)
        results[f"events call work --limit 100, just opened/{region}"] = median_ms(
            fresh_events, [rng.randint(lo, hi) for _ in range(10)])
    late = [rng.randint(rec.last_step - span, rec.last_step - 1) for _ in range(10)]
    results["history total --since S (last 5%): first page"] = median_ms(lambda s: rec.history("total", since=s)[:50],
                                                                       late)
    results["history acc --since S (last 5%): first page"] = median_ms(lambda s: rec.history("acc", since=s)[:50],
                                                                     late)
    changes = len(rec.history("total"))
    results["history total (changes)"] = changes
    results["history total: len() (every value found)"] = median_ms(lambda _: len(rec.history("total")), [0, 1, 2])
    results["history total (all values)"] = median_ms(lambda _: list(rec.history("total")), [0, 1, 2])
    results["escope history total --json --limit 0 (all)"] = median_ms(
        lambda _: cli(["history", str(path), "total", "--json", "--limit", "0"]), [0, 1, 2])
    results["history acc (changes)"] = len(rec.history("acc"))
    results["history acc: len() (every value found)"] = median_ms(lambda _: len(rec.history("acc")), [0])
    results["history acc (all values)"] = median_ms(lambda _: list(rec.history("acc")), [0])
    with tempfile.TemporaryDirectory() as page_dir:
        results["escope export --html (100,000 steps around the failure)"] = median_ms(
            lambda _: cli(["export", str(path), "--html", "-o", os.path.join(page_dir, "film.html")]), [0, 1, 2])
    results["history total --since S (last 5%), just opened: first page"] = median_ms(
        lambda s: Recording.open(path).history("total", since=s)[:50], late[:5])
    results["history acc --since S (last 5%), just opened: first page"] = median_ms(
        lambda s: Recording.open(path).history("acc", since=s)[:50], late[:5])
    results["flow (whole film)"] = median_ms(lambda _: Recording.open(path).flow(), [0, 1, 2])
    results["stats (whole film)"] = median_ms(lambda _: Recording.open(path).stats(), [0, 1, 2])
    results["calibration: 1M-iteration Python loop"] = calibration_ms()
    results["cache bytes at the end"] = cache_bytes()
    rec.close()
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=116_000)
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="record into (or reuse a recording in) this directory")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--format", type=int, choices=(2, 3), default=3,
                    help="2: measure the recording rewritten as schema 2 (unpacked on first use)")
    a = ap.parse_args()
    with recording(a.keep, a.iterations) as path:
        results = measure(as_format_2(path) if a.format == 2 else path, a.samples, a.seed)
    results["python"] = sys.version.split()[0]
    print(f"| operation (median of {a.samples}) | ms | within {BUDGET_MS:.0f} ms |")
    print("|---|---:|:---:|")
    for key, value in results.items():
        if isinstance(value, float):
            print(f"| {key} | {value:.2f} | {'yes' if value <= BUDGET_MS else 'NO'} |")
    print(f"\nfile {results['size_bytes']:,} bytes; cache after state and motions "
          f"{results['cache bytes after state and motions']:,} bytes, at the end {results['cache bytes at the end']:,}")
    print(f"\n{results['events']} events; history of total: {results['history total (changes)']} values, "
          f"of acc: {results['history acc (changes)']} values; Python {results['python']}")
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
