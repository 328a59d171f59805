"""``escope diff`` on two recordings of over a million events that agree
until their last 1%.

It records a real pytest test twice with ``pytest --escope
--escope-keep=all``: a loop calls a function 116,000 times (1,049,530
events), and from iteration ``CUT`` on (99% of the film) the function
computes another value in the second run, so the films part there and
every later iteration diverges again.  It then times ``escope diff A.sqlite
B.sqlite --json`` in this process (the command as the user runs it, minus
the interpreter's start), and once as a subprocess, and checks the answer:
a value divergence at the line that changed, on the step where the 99%
mark falls.

    python benchmarks/bench_diff.py [--iterations N] [--rounds R] [--keep DIR] [--json OUT]

Not a timed test: run it by hand and copy the figures into
docs/performance.md ("escope diff").
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

PROGRAM = '''
import os

CUT = {cut}
MOD = int(os.environ.get("BENCH_MOD", "7"))


def work(i, acc):
    x = i * 2
    y = x % 7 if i < CUT else x % MOD
    acc.append(y)
    return x + y


def test_million():
    total = 0
    acc = []
    for i in range({n}):
        total += work(i, acc)
        if len(acc) > 20:
            acc.clear()
    assert total > 0
'''

BUDGET_S = 2.0


def record(workdir: Path, iterations: int, mod: str) -> Path:
    """One recording of the program; ``mod`` is the modulus used after CUT."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", BENCH_MOD=mod)
    t0 = time.perf_counter()
    before = set(workdir.glob(".escope/runs/*/tests/*.sqlite"))
    subprocess.run([sys.executable, "-m", "pytest", "--escope", "--escope-keep=all", "-q", "-p", "no:cacheprovider",
                    "test_million.py"], cwd=workdir, env=env, stdout=subprocess.DEVNULL, check=False)
    print(f"recorded in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    found = sorted(set(workdir.glob(".escope/runs/*/tests/*.sqlite")) - before)
    if not found:
        raise SystemExit("no recording was written")
    return found[-1]


def diff_in_process(a: Path, b: Path) -> dict[str, Any]:
    from pytest_escope.replay import cli
    out = io.StringIO()
    with redirect_stdout(out):
        status = cli.main(["diff", str(a), str(b), "--json"])
    if status != 0:
        raise SystemExit(f"escope diff exited {status}")
    return json.loads(out.getvalue())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=116_000, help="loop iterations (116,000: ~1.05 M events)")
    parser.add_argument("--rounds", type=int, default=5, help="timed diffs (the median is reported)")
    parser.add_argument("--keep", metavar="DIR", help="record into DIR and keep it (default: a temporary directory)")
    parser.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    args = parser.parse_args()
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="escope-bench-diff-"))
    workdir.mkdir(parents=True, exist_ok=True)
    cut = args.iterations * 99 // 100
    (workdir / "test_million.py").write_text(PROGRAM.format(n=args.iterations, cut=cut))
    (workdir / "pytest.ini").write_text("[pytest]\n")
    a = record(workdir, args.iterations, "7")
    b = record(workdir, args.iterations, "5")

    times, cpu = [], []
    result: dict[str, Any] = {}
    for _ in range(args.rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        result = diff_in_process(a, b)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", "diff", str(a), str(b), "--json"],
                          capture_output=True, text=True, check=False)
    whole = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)

    from pytest_escope.replay.film_reader import FilmReader
    reader = FilmReader(a)
    events = reader.end_step
    reader.close()
    first = result["first_divergence"]
    # the first changed value is y at the CUT-th iteration, on the line that computes it
    line = [n for n, text in enumerate(PROGRAM.splitlines(), 1) if "y = x % 7" in text][0]
    ok = first["kind"] == "value" and first["a"]["line"] == line and "y" in first["names"] \
        and first["a"]["step"] > events * 0.98
    figures = {
        "events": events,
        "bytes": [a.stat().st_size, b.stat().st_size],
        "first_divergence_step": first["a"]["step"] if first["a"] else None,
        "divergences": result["divergences"],
        "diff_in_process_s": {"median": statistics.median(times), "min": min(times), "max": max(times)},
        "diff_in_process_cpu_s": statistics.median(cpu),
        "load_average": os.getloadavg()[0],
        "diff_subprocess_s": whole,
        "budget_s": BUDGET_S,
        "answer_right": ok,
    }
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    if not ok:
        print("the first divergence is not the expected one", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
