"""The benchmark corpus of issue 16: every suite, per strategy, against plain pytest.

Reports, per suite and per configuration (strategy / keep): the wall and CPU
ratios to plain pytest of the same round, the peak RSS of the pytest process
(``ru_maxrss`` of that child alone, from ``wait4``), bytes per event (from
``keep=all`` runs, the only ones that leave recordings), and the ten tests with
the highest per-test ratio (recorded / plain duration from the JUnit XML of both
runs).  Only tests that take >= 20 ms plain count for the "no test above 25x"
budget: they are starred.

    python benchmarks/corpus.py                                   # everything, 3 rounds
    python benchmarks/corpus.py --suites shapes,boltons --strategies minimal,balanced --rounds 1
    python benchmarks/corpus.py --keep both --json /tmp/corpus.json

The suites are those of ``benchmarks/thirdparty.py`` (PyPI sdists, plus the
synthetic ``shapes`` shipped in ``benchmarks/shapes/``), each run from a copy
outside the checkout.  Runs alternate round-robin (plain, then each
configuration, suite by suite), each escope run with a fresh ``--escope-dir``:
the node cache is cold, as on a fresh CI checkout.  ``-p no:randomly`` keeps
the test order fixed.

No test is deselected to make a run finish: ``--test-timeout`` (pytest-timeout,
signal method, on plain runs too) fails a test that runs longer, and the report
lists every such test as TIMED OUT, with the ratio it had reached at least.
Outcomes that differ from plain pytest otherwise are recorder bugs: they are
printed loudly and make the exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import recording  # noqa: E402
import thirdparty  # noqa: E402
from recording import Config, _median  # noqa: E402

BUDGET_MIN_PLAIN_S = 0.020  # tests shorter than this plain do not count for the per-test budget
BUDGET_TEST_RATIO = 25.0
RATIO_FLOOR_S = 0.001  # JUnit times below this are noise: ratios use at least this much plain time


@dataclass
class CorpusRun:
    suite: str
    config: str
    round: int
    ok: bool = False
    error: str = ""
    exit_code: int | None = None
    wall_s: float = 0.0
    cpu_s: float = 0.0
    maxrss_mb: float = 0.0
    load: float = 0.0
    summary: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    events: int | None = None
    index_rows: int | None = None
    kept: int | None = None
    kept_events: int | None = None
    recording_bytes: int | None = None
    escope_commit: str = ""
    timed_out: list[str] = field(default_factory=list)
    # not in the JSON's run list (too big); used for the per-test table
    outcomes: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)


def configs_for(strategies: list[str], keep: str) -> list[Config]:
    keeps = ("failed", "all") if keep == "both" else (keep,)
    return [Config(f"{s}/{k}", s, k) for s in strategies for k in keeps]


def junit_durations(path: Path) -> dict[str, float]:
    """Seconds per test case (setup + call + teardown, as pytest writes them).

    A test with subtests appears more than once: its largest entry (the test
    itself, which contains its subtests) is kept."""
    times: dict[str, float] = {}
    if not path.exists():
        return times
    for case in ET.parse(path).getroot().iter("testcase"):
        tid = f"{case.get('classname', '')}::{case.get('name', '')}"
        times[tid] = max(times.get(tid, 0.0), float(case.get("time") or 0.0))
    return times


def _is_timeout(message: str) -> bool:
    return "Timeout" in message and "pytest-timeout" in message


def spawn(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float,
          out: Path, err: Path) -> tuple[int | None, resource.struct_rusage, float]:
    """Run ``cmd``; return (exit code or None on timeout, its own rusage, wall seconds).

    ``wait4`` gives the resources of this child alone (``RUSAGE_CHILDREN``'s
    ``ru_maxrss`` is the largest of every child ever reaped)."""
    with open(out, "wb") as fo, open(err, "wb") as fe:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    fired = threading.Event()

    def kill() -> None:
        fired.set()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
    return (None if fired.is_set() else proc.returncode), usage, wall


def run_one(python: str, suite: str, project: Path, config: Config, rnd: int, *,
            run_timeout: float, test_timeout: float | None) -> CorpusRun:
    run = CorpusRun(suite, config.name, rnd, escope_commit=recording.escope_commit(python))
    workdir = Path(tempfile.mkdtemp(prefix=f"escope-corpus-{config.name.replace('/', '-')}-"))
    try:
        cmd, env = recording.command(python, suite, project, config, workdir)
        cmd += ["-p", "no:randomly"]
        if test_timeout:
            cmd += [f"--timeout={test_timeout:g}", "--timeout-method=signal"]
        run.load = os.getloadavg()[0]
        code, usage, run.wall_s = spawn(cmd, project, env, run_timeout, workdir / "out", workdir / "err")
        run.cpu_s = usage.ru_utime + usage.ru_stime
        run.maxrss_mb = usage.ru_maxrss / 1024  # KiB on Linux
        stdout = (workdir / "out").read_text(errors="replace")
        stderr = (workdir / "err").read_text(errors="replace")
        if code is None:
            run.error = f"whole run killed after {run_timeout:.0f}s (--run-timeout)"
            return run
        run.exit_code = code
        run.summary, run.counts = recording.parse_summary(stdout)
        junit = workdir / "junit.xml"
        run.outcomes, run.failures = recording.parse_junit(junit)
        run.durations = junit_durations(junit)
        run.timed_out = sorted(t for t, m in run.failures.items() if _is_timeout(m))
        if not run.counts:
            tail = "\n".join((stdout + stderr).strip().splitlines()[-15:])
            run.error = f"no pytest summary line (exit {code}):\n{tail}"
            return run
        if config.strategy:
            try:
                for key, value in recording.read_index(workdir / "escope").items():
                    setattr(run, key, value)
            except Exception as exc:  # a broken index is a result, not a crash of the benchmark
                run.error = f"run index unreadable: {exc}"
                return run
        run.ok = True
        return run
    except Exception as exc:
        run.error = f"{type(exc).__name__}: {exc}"
        return run
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def per_test(plain: list[CorpusRun], mine: list[CorpusRun]) -> list[dict[str, Any]]:
    """Per-test ratios, the median over rounds, highest first."""
    base = {r.round: r for r in plain if r.ok}
    ratios: dict[str, list[float]] = {}
    plain_s: dict[str, list[float]] = {}
    rec_s: dict[str, list[float]] = {}
    timed_out: set[str] = set()
    for r in mine:
        if not r.ok or r.round not in base:
            continue
        p = base[r.round]
        timed_out.update(r.timed_out)
        for tid, seconds in r.durations.items():
            if tid not in p.durations or tid in p.timed_out:
                continue
            ratios.setdefault(tid, []).append(seconds / max(p.durations[tid], RATIO_FLOOR_S))
            plain_s.setdefault(tid, []).append(p.durations[tid])
            rec_s.setdefault(tid, []).append(seconds)
    rows = []
    for tid, values in ratios.items():
        plain_med = _median(plain_s[tid]) or 0.0
        rows.append({"test": tid, "ratio": _median(values), "plain_s": plain_med, "recorded_s": _median(rec_s[tid]),
                     "counts_for_budget": plain_med >= BUDGET_MIN_PLAIN_S, "timed_out": tid in timed_out})
    rows.sort(key=lambda row: row["ratio"], reverse=True)
    return rows


def summarise(runs: list[CorpusRun], suites: list[str], configs: list[Config],
              top: int) -> tuple[list[dict[str, Any]], list[str]]:
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for suite in suites:
        plain = [r for r in runs if r.suite == suite and r.config == "plain"]
        by_round = {r.round: r for r in plain if r.ok}
        for r in plain:
            if r.error:
                problems.append(f"{suite} plain round {r.round}: {r.error}")
            for tid in r.timed_out:
                problems.append(f"TIMED OUT (plain!): {suite} round {r.round}: {tid}")
        for config in configs:
            mine = [r for r in runs if r.suite == suite and r.config == config.name]
            ok = [r for r in mine if r.ok]
            wall = [r.wall_s / by_round[r.round].wall_s for r in ok if r.round in by_round]
            cpu = [r.cpu_s / by_round[r.round].cpu_s for r in ok if r.round in by_round and by_round[r.round].cpu_s]
            tests = per_test(plain, mine)
            budget = [t for t in tests if t["counts_for_budget"]]
            timed_out = sorted({t for r in mine for t in r.timed_out})
            row: dict[str, Any] = {
                "suite": suite, "config": config.name, "runs": len(mine), "ok": len(ok),
                "plain_wall_s": _median([r.wall_s for r in by_round.values()]),
                "wall_s": _median([r.wall_s for r in ok]),
                "wall_ratio": _median(wall),
                "cpu_ratio": _median(cpu),
                "plain_rss_mb": _median([r.maxrss_mb for r in by_round.values()]),
                "rss_mb": _median([r.maxrss_mb for r in ok]),
                "events": _median([r.events for r in ok if r.events is not None]),
                "bytes_per_event": _median([r.recording_bytes / r.kept_events for r in ok
                                            if r.kept_events and r.recording_bytes]),
                "tests_over_budget": sum(1 for t in budget if t["ratio"] > BUDGET_TEST_RATIO),
                "worst_budget_test": budget[0] if budget else None,
                "top_tests": tests[:top],
                "timed_out": timed_out,
                "outcomes": ok[0].summary if ok else "",
                "load": _median([r.load for r in mine]),
                "escope_commits": sorted({r.escope_commit for r in mine}),
                "errors": sorted({r.error.splitlines()[0] for r in mine if r.error}),
            }
            rows.append(row)
            for r in mine:
                if r.error:
                    problems.append(f"{suite} {config.name} round {r.round}: {r.error}")
            for tid in timed_out:
                problems.append(f"TIMED OUT: {suite} {config.name}: {tid} (reported, not deselected)")
            for r in ok:
                base = by_round.get(r.round)
                if base is None:
                    continue
                differ = sorted(t for t in set(r.outcomes) | set(base.outcomes)
                                if r.outcomes.get(t) != base.outcomes.get(t) and t not in r.timed_out)
                if differ:
                    lines = [f"OUTCOMES DIFFER: {suite} {config.name} round {r.round}: "
                             f"{r.summary!r} vs plain {base.summary!r}"]
                    for t in differ[:20]:
                        lines.append(f"    {t}: plain={base.outcomes.get(t)} here={r.outcomes.get(t)} "
                                     f"{r.failures.get(t, '')!r}")
                    problems.append("\n".join(lines))
                if config.strategy and not r.events:
                    problems.append(f"NOTHING RECORDED: {suite} {config.name} round {r.round}: 0 events")
    return rows, problems


def _f(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def table(rows: list[dict[str, Any]]) -> str:
    out = ["| suite | config | ok | plain s | wall × | CPU × | RSS MB plain → rec | events | bytes/event "
           "| tests ≥20 ms >25× | worst ≥20 ms test | timed out |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        worst = r["worst_budget_test"]
        worst_s = (f"{worst['ratio']:.0f}× {worst['test'].split('::')[-1][:40]}"
                   f"{' (timed out)' if worst['timed_out'] else ''}") if worst else "—"
        rss = f"{_f(r['plain_rss_mb'], '.0f')} → {_f(r['rss_mb'], '.0f')}"
        ok = f"{r['ok']}/{r['runs']}" + ("" if not r["errors"] else " !")
        out.append(f"| {r['suite']} | {r['config']} | {ok} | {_f(r['plain_wall_s'], '.1f')} "
                   f"| {_f(r['wall_ratio'], '.2f')} | {_f(r['cpu_ratio'], '.2f')} | {rss} "
                   f"| {_f(r['events'], ',.0f')} | {_f(r['bytes_per_event'], '.0f')} "
                   f"| {r['tests_over_budget']} | {worst_s} | {len(r['timed_out'])} |")
    return "\n".join(out)


def top_tests(rows: list[dict[str, Any]]) -> str:
    out = []
    for r in rows:
        if not r["top_tests"]:
            continue
        out.append(f"\n{r['suite']} {r['config']}: highest per-test ratios "
                   f"(* = >= {BUDGET_MIN_PLAIN_S * 1000:.0f} ms plain, counts for the {BUDGET_TEST_RATIO:.0f}× budget)")
        for t in r["top_tests"]:
            mark = "*" if t["counts_for_budget"] else " "
            note = "  TIMED OUT: at least this ratio" if t["timed_out"] else ""
            out.append(f"  {mark} {t['ratio']:8.1f}×  {t['plain_s']:7.3f}s → {t['recorded_s']:8.2f}s  {t['test']}{note}")
    return "\n".join(out)


def write_json(path: Path, header: dict[str, Any], runs: list[CorpusRun], rows: list[dict[str, Any]],
               problems: list[str]) -> None:
    skip = ("outcomes", "failures", "durations")
    data = dict(header, summary=rows, problems=problems, table=table(rows),
                runs=[{k: v for k, v in asdict(r).items() if k not in skip} for r in runs])
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _has_timeout_plugin(python: str) -> bool:
    return subprocess.run([python, "-c", "import pytest_timeout"], capture_output=True).returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter to benchmark (default: this one)")
    parser.add_argument("--suites", default=",".join(thirdparty.SUITES),
                        help=f"comma-separated subset of {', '.join(thirdparty.SUITES)}")
    parser.add_argument("--strategies", default=",".join(recording.STRATEGIES),
                        help=f"comma-separated subset of {', '.join(recording.STRATEGIES)}")
    parser.add_argument("--keep", choices=("failed", "all", "both"), default="failed",
                        help="--escope-keep of the recorded runs; bytes/event needs 'all' (or 'both', which runs "
                             "each strategy twice); the budgets are stated for 'failed'")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--test-timeout", type=float, default=600,
                        help="seconds one test may run (pytest-timeout); 0: none.  Timed-out tests are reported")
    parser.add_argument("--run-timeout", type=float, default=4 * 3600,
                        help="seconds one pytest invocation may run before it is killed and reported")
    parser.add_argument("--top", type=int, default=10, help="how many tests to list per suite and configuration")
    parser.add_argument("--json", type=Path, default=Path(tempfile.gettempdir()) / "escope-corpus.json",
                        help="where to write every run and the summary (default: %(default)s)")
    args = parser.parse_args(argv)

    suites = [s for s in args.suites.split(",") if s]
    strategies = [s for s in args.strategies.split(",") if s]
    for name in suites:
        if name not in thirdparty.SUITES:
            parser.error(f"unknown suite {name!r}; choose from {', '.join(thirdparty.SUITES)}")
    for name in strategies:
        if name not in recording.STRATEGIES:
            parser.error(f"unknown strategy {name!r}; choose from {', '.join(recording.STRATEGIES)}")
    python = args.python
    if args.test_timeout and not _has_timeout_plugin(python):
        parser.error(f"--test-timeout needs pytest-timeout in {python} (escope's [test] extra), or --test-timeout 0")
    configs = configs_for(strategies, args.keep)
    plain = Config("plain")
    thirdparty.ensure(suites, python=python)

    version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True).stdout.strip()
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    print(f"# Python {version} ({python}); {os.cpu_count()} CPUs; {platform.platform()}; {started}",
          file=sys.stderr)
    copies = Path(tempfile.mkdtemp(prefix="escope-corpus-suites-"))
    projects = {suite: thirdparty.working_copy(suite, copies) for suite in suites}
    header = {"python": version, "executable": python, "cpus": os.cpu_count(), "platform": platform.platform(),
              "started": started, "rounds": args.rounds, "node_cache": "cold", "keep": args.keep,
              "test_timeout_s": args.test_timeout or None, "suites": suites,
              "versions": {s: thirdparty.SUITES[s].requirement for s in suites},
              "configs": ["plain", *(c.name for c in configs)]}
    runs: list[CorpusRun] = []
    try:
        for rnd in range(1, args.rounds + 1):
            for suite in suites:
                for config in (plain, *configs):
                    run = run_one(python, suite, projects[suite], config, rnd,
                                  run_timeout=args.run_timeout, test_timeout=args.test_timeout)
                    runs.append(run)
                    state = run.summary if run.ok else f"FAILED: {run.error.splitlines()[0] if run.error else '?'}"
                    extra = f" events={run.events:,}" if run.events is not None else ""
                    extra += f" timed-out={len(run.timed_out)}" if run.timed_out else ""
                    print(f"round {rnd} {suite:15} {config.name:20} {run.wall_s:8.1f}s cpu {run.cpu_s:7.1f}s "
                          f"rss {run.maxrss_mb:6.0f}MB load {run.load:4.1f}{extra} escope@{run.escope_commit}  "
                          f"{state}", file=sys.stderr, flush=True)
                    # after every run, so an interrupted benchmark still leaves its figures
                    write_json(args.json, header, runs, *summarise(runs, suites, configs, args.top))
    finally:
        shutil.rmtree(copies, ignore_errors=True)

    rows, problems = summarise(runs, suites, configs, args.top)
    write_json(args.json, header, runs, rows, problems)
    print(f"Python {version}, {os.cpu_count()} CPUs, {args.rounds} round(s), node cache cold, keep={args.keep}, "
          f"per-test timeout {args.test_timeout:g}s, started {started}")
    print()
    print(table(rows))
    print(top_tests(rows))
    commits = sorted({r.escope_commit for r in runs if r.escope_commit})
    print(f"\nescope commit(s) measured: {', '.join(commits)}"
          + (" -- the checkout changed during the benchmark, compare with care" if len(commits) > 1 else ""))
    print(f"JSON: {args.json}")
    for problem in problems:
        print("\n!!! " + problem, file=sys.stderr)
    return 1 if any(p.startswith("OUTCOMES DIFFER") for p in problems) else 0


if __name__ == "__main__":
    sys.exit(main())
