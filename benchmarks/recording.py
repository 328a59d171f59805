"""Recording overhead: third-party suites with and without ``--escope``.

One invocation runs every configuration of every suite, round-robin, for
``--rounds`` rounds on the same machine, so a slow minute of a shared box
hits all configurations alike.  Each escope run gets a fresh ``--escope-dir``
in a temporary directory (so the libcst node index cache starts cold, as
on a fresh CI checkout).  Ratios are taken against plain pytest of the same
round; the table shows medians.  Wall time is what a user waits for, but
on a shared machine it mostly measures the neighbours: the CPU time of the
pytest process (user + system, all its threads, from ``getrusage``) is
reported beside it, with its own ratio, and is the figure to trust when the
load average (kept per run in the JSON) is above the number of CPUs.

    python benchmarks/recording.py --python /tmp/v312/bin/python --rounds 3
    python benchmarks/recording.py --suites toolz --configs plain,balanced/all --rounds 1

A configuration that crashes or times out is reported, never fatal.  Test
outcomes that differ from plain pytest are recorder bugs (docs/reliability.md): they
are printed loudly with the test ids that differ.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import thirdparty  # noqa: E402

STRATEGIES = ("minimal", "balanced", "full_trace")


@dataclass(frozen=True)
class Config:
    name: str  # e.g. "balanced/all"
    strategy: str | None = None  # None: no escope
    keep: str | None = None
    coverage: bool = False


def all_configs() -> list[Config]:
    configs = [Config("plain")]
    for strategy in STRATEGIES:
        for keep in ("failed", "all"):
            configs.append(Config(f"{strategy}/{keep}", strategy, keep))
    configs.append(Config("coverage", coverage=True))
    return configs


@dataclass
class Run:
    suite: str
    config: str
    round: int
    ok: bool = False
    error: str = ""
    exit_code: int | None = None
    wall_s: float = 0.0
    cpu_s: float = 0.0  # user + system of the pytest process (and its children)
    load: float = 0.0  # 1-minute load average when the run started
    summary: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)  # junit test id -> outcome
    failures: dict[str, str] = field(default_factory=dict)  # junit test id -> message
    events: int | None = None
    index_rows: int | None = None
    kept: int | None = None
    kept_events: int | None = None
    recording_bytes: int | None = None
    ratio: float | None = None
    cpu_ratio: float | None = None
    escope_commit: str = ""  # the checkout escope was imported from, at the start of the run


_COUNT = re.compile(r"(\d+) (subtests passed|subtests failed|subtests skipped|passed|failed|skipped|"
                    r"xfailed|xpassed|errors?|warnings?|deselected)")


def parse_summary(stdout: str) -> tuple[str, dict[str, int]]:
    """The ``-q`` closing line and its counts (``error`` and ``errors`` merged)."""
    for line in reversed(stdout.strip().splitlines()):
        stripped = line.strip("= ")
        if re.search(r"\bin [0-9.]+s\b", stripped) and _COUNT.search(stripped):
            counts: dict[str, int] = {}
            for n, word in _COUNT.findall(stripped):
                word = {"error": "errors", "warning": "warnings"}.get(word, word)
                counts[word] = counts.get(word, 0) + int(n)
            return stripped, counts
    return "", {}


def parse_junit(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Outcome of every test case in a JUnit XML file, and failure messages."""
    outcomes: dict[str, str] = {}
    messages: dict[str, str] = {}
    if not path.exists():
        return outcomes, messages
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        tid = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = child.tag
                messages[tid] = (child.get("message") or "")[:300]
                break
            if child.tag == "skipped":
                outcome = "xfailed" if (child.get("type") == "pytest.xfail") else "skipped"
        # a case can appear twice (call failed + teardown error): keep the worst
        if outcomes.get(tid) not in ("failure", "error"):
            outcomes[tid] = outcome
    return outcomes, messages


def read_index(escope_dir: Path) -> dict[str, Any]:
    """Figures from the run's index.sqlite and the recording files on disk."""
    indexes = list(escope_dir.glob("runs/*/index.sqlite"))
    if len(indexes) != 1:
        raise RuntimeError(f"expected one run index under {escope_dir}, found {len(indexes)}")
    index = indexes[0]
    db = sqlite3.connect(f"file:{index}?mode=ro", uri=True)
    try:
        rows, events = db.execute("SELECT count(*), coalesce(sum(events), 0) FROM tests").fetchone()
        kept, kept_events = db.execute(
            "SELECT count(*), coalesce(sum(events), 0) FROM tests WHERE recording IS NOT NULL").fetchone()
    finally:
        db.close()
    size = sum(p.stat().st_size for p in index.parent.glob("tests/*.sqlite"))
    return {"index_rows": rows, "events": events, "kept": kept, "kept_events": kept_events,
            "recording_bytes": size}


def command(python: str, suite: str, project: Path, config: Config, workdir: Path) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    env.pop("PYTEST_ESCOPE", None)
    env.pop("PYTEST_ADDOPTS", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    base = ["-m", "pytest", "-p", "no:cacheprovider", "-q", *thirdparty.pytest_args(suite, project),
            f"--junitxml={workdir / 'junit.xml'}"]
    if config.coverage:
        cmd = [python, "-m", "coverage", "run", f"--data-file={workdir / '.coverage'}", *base]
        env["COVERAGE_CORE"] = "sysmon" if _version(python) >= (3, 12) else "ctrace"
    else:
        cmd = [python, *base]
    if config.strategy:
        cmd += ["--escope", f"--escope-strategy={config.strategy}", f"--escope-keep={config.keep}",
                f"--escope-dir={workdir / 'escope'}"]
    return cmd, env


_VERSIONS: dict[str, tuple[int, int]] = {}

_COMMIT = """
import os, subprocess, pytest_escope
root = os.path.dirname(os.path.dirname(os.path.abspath(pytest_escope.__file__)))
try:
    # the last commit that changed what is measured: commits to benchmarks/ or docs/ made
    # while a benchmark runs do not change it
    head = subprocess.run(["git", "-C", root, "log", "-1", "--format=%h", "--", "recorder", "pytest_escope",
                           "setup.py", "pyproject.toml"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "recorder", "pytest_escope"],
                           capture_output=True, text=True).stdout.strip()
    print(head + ("+dirty" if dirty else ""))
except OSError:
    print("")
"""


def escope_commit(python: str) -> str:
    """Which escope a run measures: an editable install follows its checkout,
    so a commit landing mid-benchmark changes what later runs import.  The
    last commit that touched the recorder or the plugin (+dirty if they have
    uncommitted changes)."""
    proc = subprocess.run([python, "-c", _COMMIT], capture_output=True, text=True)
    return proc.stdout.strip() or "unknown"


def _version(python: str) -> tuple[int, int]:
    if python not in _VERSIONS:
        out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.split()
        _VERSIONS[python] = (int(out[0]), int(out[1]))
    return _VERSIONS[python]


def coverage_core(python: str) -> str:
    """The core coverage.py really uses under our COVERAGE_CORE setting."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "s.py"
        script.write_text("x = 1\n")
        env = dict(os.environ, COVERAGE_CORE="sysmon" if _version(python) >= (3, 12) else "ctrace")
        proc = subprocess.run([python, "-m", "coverage", "run", f"--data-file={tmp}/.c", "--debug=sys", str(script)],
                              capture_output=True, text=True, env=env, cwd=tmp)
        m = re.search(r"^\s*core: (\S+)", proc.stdout + proc.stderr, re.M)
        return m.group(1) if m else "unknown"


_SEED = """
import os, sys
from pathlib import Path
from pytest_escope.recorder.nodes import NodeIndexCache
project, target = Path(sys.argv[1]), Path(sys.argv[2])
cache = NodeIndexCache(target)
for path in sorted(project.rglob("*.py")):
    cache.get(path.read_bytes().decode("utf-8", "surrogateescape"), path.relative_to(project).as_posix())
print(cache.parsed)
"""


def seed_node_cache(python: str, project: Path, target: Path) -> str:
    """Index every file of the suite once, into ``target`` (escope's libcst cache
    layout: ``<escope-dir>/cache/nodes``), so runs can start with a warm cache."""
    target.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([python, "-c", _SEED, str(project), str(target)], capture_output=True, text=True)
    if proc.returncode != 0:
        return f"seeding the node cache failed, runs are cold: {proc.stderr.strip().splitlines()[-1:]}"
    return f"{proc.stdout.strip()} files indexed"


def run_one(python: str, suite: str, project: Path, config: Config, rnd: int, timeout: float,
            keep_runs: Path | None, seed: Path | None = None) -> Run:
    run = Run(suite, config.name, rnd, escope_commit=escope_commit(python))
    workdir = Path(tempfile.mkdtemp(prefix=f"escope-bench-{config.name.replace('/', '-')}-"))
    try:
        if seed is not None and config.strategy:
            shutil.copytree(seed, workdir / "escope" / "cache" / "nodes")
        cmd, env = command(python, suite, project, config, workdir)
        run.load = os.getloadavg()[0]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            run.wall_s = time.perf_counter() - start
            run.error = f"timed out after {timeout:.0f}s"
            return run
        run.wall_s = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # children's usage grows only when a child is reaped: this is the run just finished
        run.cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        run.exit_code = proc.returncode
        run.summary, run.counts = parse_summary(proc.stdout)
        run.outcomes, run.failures = parse_junit(workdir / "junit.xml")
        if not run.counts:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            run.error = f"no pytest summary line (exit {proc.returncode}):\n{tail}"
            return run
        if config.strategy:
            try:
                for key, value in read_index(workdir / "escope").items():
                    setattr(run, key, value)
            except Exception as exc:  # a broken index is a result, not a crash of the benchmark
                run.error = f"run index unreadable: {exc}"
                return run
        run.ok = True
        if keep_runs is not None and config.strategy and config.keep == "all":
            dest = keep_runs / f"{suite}-{config.name.replace('/', '-')}"
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(workdir / "escope", dest)
        return run
    except Exception as exc:
        run.error = f"{type(exc).__name__}: {exc}"
        return run
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _outcome_key(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if k not in ("warnings",)}


def summarise(runs: list[Run], suites: list[str], configs: list[Config]) -> tuple[list[dict[str, Any]], list[str]]:
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for suite in suites:
        plain = {r.round: r for r in runs if r.suite == suite and r.config == "plain" and r.ok}
        plain_counts = next((r.counts for r in plain.values()), None)
        plain_outcomes = next((r.outcomes for r in plain.values()), {})
        for config in configs:
            mine = [r for r in runs if r.suite == suite and r.config == config.name]
            ok = [r for r in mine if r.ok]
            for r in ok:
                base = plain.get(r.round)
                if base is not None and base.wall_s > 0:
                    r.ratio = r.wall_s / base.wall_s
                if base is not None and base.cpu_s > 0:
                    r.cpu_ratio = r.cpu_s / base.cpu_s
            row: dict[str, Any] = {
                "suite": suite, "config": config.name, "runs": len(mine), "ok": len(ok),
                "wall_s": _median([r.wall_s for r in ok]),
                "ratio": _median([r.ratio for r in ok if r.ratio is not None]),
                "cpu_s": _median([r.cpu_s for r in ok if r.cpu_s]),
                "cpu_ratio": _median([r.cpu_ratio for r in ok if r.cpu_ratio is not None]),
                "load": _median([r.load for r in mine]),
                "events": _median([r.events for r in ok if r.events is not None]),
                "events_per_s": _median([r.events / r.wall_s for r in ok if r.events and r.wall_s]),
                "bytes_per_event": None,
                "recording_mb": None,
                "outcomes": ok[0].summary if ok else "",
                "escope_commits": sorted({r.escope_commit for r in mine}),
                "errors": sorted({r.error.splitlines()[0] for r in mine if r.error}),
            }
            if config.keep == "all":
                per = [r.recording_bytes / r.kept_events for r in ok if r.kept_events and r.recording_bytes]
                row["bytes_per_event"] = _median(per)
                row["recording_mb"] = _median([r.recording_bytes / 1e6 for r in ok if r.recording_bytes])
            rows.append(row)
            for r in mine:
                if r.error:
                    problems.append(f"{suite} {config.name} round {r.round}: {r.error}")
            if plain_counts is None:
                continue
            for r in ok:
                if _outcome_key(r.counts) != _outcome_key(plain_counts):
                    diff = sorted(t for t in set(r.outcomes) | set(plain_outcomes)
                                  if r.outcomes.get(t) != plain_outcomes.get(t))
                    lines = [f"OUTCOMES DIFFER: {suite} {config.name} round {r.round}: "
                             f"{r.summary!r} vs plain {next(iter(plain.values())).summary!r}"]
                    for t in diff[:20]:
                        lines.append(f"    {t}: plain={plain_outcomes.get(t)} here={r.outcomes.get(t)} "
                                     f"{r.failures.get(t, '')!r}")
                    problems.append("\n".join(lines))
                if config.strategy and not r.events:
                    problems.append(f"NOTHING RECORDED: {suite} {config.name} round {r.round}: 0 events "
                                    f"in {r.index_rows} index rows (is the suite out of escope's scope?)")
                if config.strategy and r.index_rows is not None:
                    ran = len(r.outcomes)
                    if r.index_rows != ran:
                        problems.append(f"INDEX ROWS: {suite} {config.name} round {r.round}: "
                                        f"{r.index_rows} rows in index.sqlite for {ran} test cases in junit")
    return rows, problems


def _fmt(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def markdown(rows: list[dict[str, Any]]) -> str:
    out = ["| suite | configuration | ok/runs | median wall s | median × plain | CPU s | CPU × plain | events "
           "| events/s | bytes/event | recordings MB | outcomes |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        outcomes = r["outcomes"] or ("; ".join(r["errors"]) or "—")
        out.append(
            f"| {r['suite']} | {r['config']} | {r['ok']}/{r['runs']} | {_fmt(r['wall_s'], '.1f')} "
            f"| {_fmt(r['ratio'], '.2f')} | {_fmt(r.get('cpu_s'), '.1f')} | {_fmt(r.get('cpu_ratio'), '.2f')} "
            f"| {_fmt(r['events'], ',.0f')} | {_fmt(r['events_per_s'], ',.0f')} "
            f"| {_fmt(r['bytes_per_event'], '.1f')} | {_fmt(r['recording_mb'], ',.0f')} | {outcomes} |")
    return "\n".join(out)


def write_json(path: Path, header: dict[str, Any], runs: list[Run], rows: list[dict[str, Any]],
               problems: list[str]) -> None:
    data = dict(header, summary=rows, problems=problems, markdown=markdown(rows),
                runs=[{k: v for k, v in asdict(r).items() if k not in ("outcomes", "failures")} for r in runs])
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter to benchmark (default: this one)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--suites", default=",".join(thirdparty.SUITES), help="comma-separated")
    names = [c.name for c in all_configs()]
    parser.add_argument("--configs", default=",".join(names), help=f"comma-separated subset of {', '.join(names)}")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds for one run before it counts as crashed")
    parser.add_argument("--json", type=Path, help="also write every run and the summary here")
    parser.add_argument("--node-cache", choices=("warm", "cold"), default="warm",
                        help="warm: every fresh --escope-dir starts with the suite's libcst node index "
                             "already cached (as on a second local run); cold: as on a fresh CI checkout")
    parser.add_argument("--keep-runs", type=Path, help="copy the last round's keep=all run dirs here (for breakdown.py)")
    args = parser.parse_args(argv)

    suites = [s for s in args.suites.split(",") if s]
    wanted = [c for c in args.configs.split(",") if c]
    by_name = {c.name: c for c in all_configs()}
    unknown = [c for c in wanted + suites if c not in by_name and c not in thirdparty.SUITES]
    if unknown:
        parser.error(f"unknown suite or configuration {unknown[0]!r}")
    configs = [by_name[c] for c in names if c in wanted]
    if "plain" not in wanted:
        configs.insert(0, by_name["plain"])  # ratios need it
    thirdparty.ensure(suites, python=args.python)
    if args.keep_runs:
        args.keep_runs.mkdir(parents=True, exist_ok=True)

    python = args.python
    version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True).stdout.strip()
    core = coverage_core(python) if any(c.coverage for c in configs) else None
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    print(f"# Python {version} ({python}); {os.cpu_count()} CPUs; {platform.platform()}; {started}", file=sys.stderr)
    if core:
        print(f"# coverage core: {core}", file=sys.stderr)

    copies = Path(tempfile.mkdtemp(prefix="escope-bench-suites-"))
    projects = {suite: thirdparty.working_copy(suite, copies) for suite in suites}
    seeds: dict[str, Path | None] = {suite: None for suite in suites}
    if args.node_cache == "warm" and any(c.strategy for c in configs):
        for suite in suites:
            seeds[suite] = copies / f"seed-{suite}"
            t = time.perf_counter()
            note = seed_node_cache(python, projects[suite], seeds[suite])  # type: ignore[arg-type]
            print(f"# {suite}: node cache seeded in {time.perf_counter() - t:.1f}s ({note})", file=sys.stderr)
    header = {"python": version, "executable": python, "cpus": os.cpu_count(), "platform": platform.platform(),
              "started": started, "rounds": args.rounds, "node_cache": args.node_cache, "coverage_core": core,
              "suites": suites, "configs": [c.name for c in configs]}
    runs: list[Run] = []
    for rnd in range(1, args.rounds + 1):
        for suite in suites:
            for config in configs:
                run = run_one(python, suite, projects[suite], config, rnd, args.timeout,
                              args.keep_runs if rnd == args.rounds else None, seeds[suite])
                runs.append(run)
                state = run.summary if run.ok else f"FAILED: {run.error.splitlines()[0] if run.error else '?'}"
                extra = f" events={run.events:,}" if run.events is not None else ""
                extra += f" escope@{run.escope_commit}"
                print(f"round {rnd} {suite:15} {config.name:20} {run.wall_s:8.1f}s cpu {run.cpu_s:7.1f}s "
                      f"load {run.load:4.1f}{extra}  {state}",
                      file=sys.stderr, flush=True)
                if args.json:  # after every run, so an interrupted benchmark still leaves its figures
                    write_json(args.json, header, runs, *summarise(runs, suites, configs))

    shutil.rmtree(copies, ignore_errors=True)
    rows, problems = summarise(runs, suites, configs)
    print(f"Python {version}, {os.cpu_count()} CPUs, {args.rounds} round(s), started {started}, "
          f"node cache {args.node_cache}"
          + (f", coverage core {core}" if core else ""))
    print()
    print(markdown(rows))
    commits = sorted({r.escope_commit for r in runs if r.escope_commit})
    print(f"\nescope commit(s) measured: {', '.join(commits)}"
          + (" -- the checkout changed during the benchmark, compare with care" if len(commits) > 1 else ""))
    for problem in problems:
        print("\n!!! " + problem, file=sys.stderr)
    if args.json:
        write_json(args.json, header, runs, rows, problems)
    return 1 if any(p.startswith("OUTCOMES DIFFER") for p in problems) else 0


if __name__ == "__main__":
    sys.exit(main())
