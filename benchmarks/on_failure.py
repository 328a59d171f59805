"""What ``--escope-on-failure`` costs: an all-green suite, and one failing test.

Two measurements, each plain pytest against ``--escope-on-failure`` on the
same working copy, alternating (plain, on-failure, plain, ...) round by
round so a slow minute of a shared machine hits both alike:

* **green**: the suite as it ships (all tests pass).  Budget: on-failure /
  plain <= 1.02 (wall and CPU of the pytest process, medians of the rounds).
* **one failure**: the same suite plus one file with a single failing test
  (``test_escope_bench_fail.py``).  The difference of the medians is what
  the failing test's recorded rerun costs (a fresh pytest that collects
  one file and records one test).

    python benchmarks/on_failure.py                        # more-itertools and toolz, 3 rounds
    python benchmarks/on_failure.py --suites toolz --rounds 5 --json /tmp/onf.json

CPU is user + system time of the pytest process and of its children (the
reruns), from ``wait4``.  Suites and their
cache: ``benchmarks/thirdparty.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import thirdparty  # noqa: E402

BUDGET = 1.02
FAILING_TEST = '''
def test_escope_bench_fail():
    values = [n * n for n in range(10)]
    assert sum(values) == 284
'''


@dataclass
class Sample:
    suite: str
    case: str  # "green" or "one failure"
    mode: str  # "plain" or "on-failure"
    round: int
    wall_s: float
    cpu_s: float
    exit_code: int
    summary: str
    #: the recorded reruns alone, from the run index's facts (on-failure runs with a failure)
    rerun_wall_s: float | None = None
    rerun_cpu_s: float | None = None


def _rerun_facts(escope_dir: Path) -> tuple[float | None, float | None]:
    """(wall, CPU) seconds of the reruns, as the session wrote them in its run index."""
    for index in escope_dir.glob("runs/*/index.sqlite"):
        db = sqlite3.connect(f"file:{index}?mode=ro", uri=True)
        try:
            facts = dict(db.execute("SELECT key, value FROM run"))
        finally:
            db.close()
        if "reruns_wall_ns" in facts:
            return int(facts["reruns_wall_ns"]) / 1e9, int(facts["reruns_cpu_ns"]) / 1e9
    return None, None


def _run(python: str, suite: str, project: Path, on_failure: bool, workdir: Path) -> tuple[float, float, int, str]:
    env = dict(os.environ)
    for name in ("PYTEST_ESCOPE", "PYTEST_ADDOPTS"):
        env.pop(name, None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    cmd = [python, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-q",
           *thirdparty.pytest_args(suite, project)]
    if on_failure:
        cmd += ["--escope-on-failure", f"--escope-dir={workdir / 'escope'}"]
    out, err = workdir / "out.txt", workdir / "err.txt"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        start = _now()
        proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = _now() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    # wait4's usage is the session's own plus its reaped children's: the reruns
    cpu = usage.ru_utime + usage.ru_stime
    lines = [line for line in out.read_text(errors="replace").splitlines() if line.strip()]
    return wall, cpu, proc.returncode, lines[-1] if lines else ""


def _now() -> float:
    return time.perf_counter()


def measure(python: str, suites: list[str], rounds: int) -> list[Sample]:
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="escope-onf-bench-") as tmp:
        copies = {s: thirdparty.working_copy(s, Path(tmp) / s) for s in suites}
        for rnd in range(rounds):
            for suite, project in copies.items():
                for case in ("green", "one failure"):
                    failing = project / thirdparty.SUITES[suite].tests / "test_escope_bench_fail.py"
                    if case == "one failure":
                        failing.write_text(FAILING_TEST)
                    for mode in ("plain", "on-failure"):
                        with tempfile.TemporaryDirectory(dir=tmp) as work:
                            wall, cpu, code, summary = _run(python, suite, project, mode == "on-failure",
                                                            Path(work))
                            rerun_wall, rerun_cpu = _rerun_facts(Path(work) / "escope")
                        samples.append(Sample(suite, case, mode, rnd, wall, cpu, code, summary, rerun_wall, rerun_cpu))
                        rerun = f"  rerun {rerun_wall:.2f} s wall {rerun_cpu:.2f} s cpu" if rerun_wall else ""
                        print(f"round {rnd + 1}/{rounds}  {suite:15} {case:12} {mode:10} "
                              f"{wall:7.2f} s wall {cpu:7.2f} s cpu  exit {code}  {summary}{rerun}", flush=True)
                    if case == "one failure":
                        failing.unlink()
    return samples


_IMPORT_COST = """
import time, pytest, pytest_escope.plugin
start = time.perf_counter()
import pytest_escope.on_failure
print(time.perf_counter() - start)
"""

_HOOK_COST = """
import time, pytest
from pathlib import Path
from pytest_escope.on_failure import OnFailurePlugin
plugin = OnFailurePlugin(None, 3, Path("."), "")
reports = [[pytest.TestReport(f"t.py::test_{i}", ("t.py", i, f"test_{i}"), {}, "passed", None, when)
            for when in ("setup", "call", "teardown")] for i in range(20000)]
start = time.process_time()
for phases in reports:
    for report in phases:
        plugin.pytest_runtest_logreport(report)
print((time.process_time() - start) / len(reports))
"""


def fixed_costs(python: str, repeat: int = 7) -> tuple[float, float]:
    """What the unrecorded session adds to plain pytest, measured apart from
    the suites (whose run-to-run noise on a shared machine is far above it):
    (seconds to import the on-failure modules, the best of ``repeat``
    fresh processes; seconds of CPU the plugin's report hook spends per
    passing test)."""
    def best(code: str) -> float:
        runs = [float(subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout)
                for _ in range(repeat)]
        return min(runs)
    return best(_IMPORT_COST), best(_HOOK_COST)


def report(samples: list[Sample]) -> str:
    out = [f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
           f"load {os.getloadavg()[0]:.1f}; python {platform.python_version()}", "",
           "| suite | case | plain wall s | on-failure wall s | ratio | plain CPU s | on-failure CPU s | ratio |",
           "|---|---|---|---|---|---|---|---|"]
    for suite in dict.fromkeys(s.suite for s in samples):
        for case in ("green", "one failure"):
            pick = {m: [s for s in samples if s.suite == suite and s.case == case and s.mode == m]
                    for m in ("plain", "on-failure")}
            if not pick["plain"] or not pick["on-failure"]:
                continue
            pw = statistics.median(s.wall_s for s in pick["plain"])
            ow = statistics.median(s.wall_s for s in pick["on-failure"])
            pc = statistics.median(s.cpu_s for s in pick["plain"])
            oc = statistics.median(s.cpu_s for s in pick["on-failure"])
            if case == "green":
                ratio, cratio = f"{ow / pw:.3f}", f"{oc / pc:.3f}"
            else:
                # the rerun alone, as the session timed it: the difference of two
                # whole-suite medians is mostly the neighbours' noise
                reruns = [s for s in pick["on-failure"] if s.rerun_wall_s is not None]
                rw = statistics.median(s.rerun_wall_s or 0.0 for s in reruns) if reruns else float("nan")
                rc = statistics.median(s.rerun_cpu_s or 0.0 for s in reruns) if reruns else float("nan")
                ratio, cratio = f"rerun {rw:.2f} s", f"rerun {rc:.2f} s"
            out.append(f"| {suite} | {case} | {pw:.2f} | {ow:.2f} | {ratio} | {pc:.2f} | {oc:.2f} | {cratio} |")
    out.append("")
    out.append(f"green: ratio of medians, budget <= {BUDGET}; one failure: the median time of its recorded rerun")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", default=sys.executable, help="interpreter with pytest-escope installed")
    ap.add_argument("--suites", default="more-itertools,toolz", help="comma-separated suite names")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write every sample here")
    args = ap.parse_args(argv)
    suites = [s for s in args.suites.split(",") if s]
    unknown = [s for s in suites if s not in thirdparty.SUITES]
    if unknown:
        print(f"unknown suite(s): {', '.join(unknown)}; pick from {', '.join(thirdparty.SUITES)}", file=sys.stderr)
        return 2
    imports, per_test = fixed_costs(args.python)
    samples = measure(args.python, suites, args.rounds)
    text = report(samples)
    print()
    print(text)
    print(f"fixed costs of the unrecorded session: importing the on-failure modules {imports * 1e3:.1f} ms; "
          f"the report hook {per_test * 1e6:.2f} us of CPU per test (3 reports)")
    if args.json:
        args.json.write_text(json.dumps([asdict(s) for s in samples], indent=1))
    wrong = [s for s in samples if (s.exit_code != 0) != (s.case == "one failure")]
    if wrong:
        print(f"unexpected exit status in {len(wrong)} run(s): a green suite failed, or the failure passed",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
