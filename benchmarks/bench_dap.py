"""``escope dap`` request times on a recording of over a million events.

It records the program of bench_replay.py (a loop calling ``work``
116,000 times) with ``pytest --escope``, starts the real ``escope dap``
over pipes and times each request from the moment it is written to the
moment its response is read (what an editor waits for; a motion's
``stopped`` event follows its response, and the state it shows is built
before the response is sent).  Each request is timed at random steps near
the start (first 5%) and near the end (last 5%) of the film, placed there
with ``goto`` (not timed); the figure is the median.  Breakpoint searches
are timed for a near hit and for the worst case, a hit a whole film away;
film-long searches also as the first of a fresh session (nothing of the
film read yet) and again.

    python benchmarks/bench_dap.py [--samples N] [--keep DIR] [--json OUT]

Not a timed test: run it by hand and copy the table into
docs/performance.md ("escope dap").
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).parent))
from bench_replay import BUDGET_MS, recording  # noqa: E402

#: Lines of bench_replay.PROGRAM: ``acc.append(y)`` in work, ``total +=``
#: in the loop, the final assert, ``acc = []`` before the loop.
APPEND_LINE, LOOP_LINE, ASSERT_LINE, BEFORE_LOOP_LINE = 5, 13, 16, 11
#: Fresh sessions per film-long search timed as a session's first.
FRESH_SESSIONS = 3


class Client:
    """A minimal synchronous DAP client of ``escope dap`` over pipes."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "pytest_escope.replay.cli", "dap"], cwd=cwd, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.seq = 0
        self.events: list[dict[str, Any]] = []

    def _read(self, stream: IO[bytes]) -> dict[str, Any]:
        length = 0
        while True:
            line = stream.readline()
            if not line:
                raise SystemExit("escope dap ended early")
            if not line.strip():
                break
            length = int(line.split(b":")[1])
        return json.loads(stream.read(length))

    def request(self, command: str, **arguments: Any) -> tuple[float, dict[str, Any]]:
        """(milliseconds to the response, the response)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.seq += 1
        body = json.dumps({"seq": self.seq, "type": "request", "command": command,
                           "arguments": arguments}).encode()
        t0 = time.perf_counter()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()
        while True:
            m = self._read(self.proc.stdout)
            if m["type"] == "response" and m["request_seq"] == self.seq:
                ms = (time.perf_counter() - t0) * 1000
                if not m["success"]:
                    raise SystemExit(f"{command} failed: {m.get('message')}")
                return ms, m
            self.events.append(m)

    def ok(self, command: str, **arguments: Any) -> dict[str, Any]:
        return self.request(command, **arguments)[1].get("body", {})

    def close(self) -> None:
        try:
            self.request("disconnect")
        except SystemExit:
            pass
        self.proc.wait(timeout=60)


def measure(path: Path, samples: int, seed: int) -> dict[str, Any]:
    """Every figure of the table, by name (ms), plus ``events``."""
    rng = random.Random(seed)
    results: dict[str, Any] = {}
    # The first launch unpacks the film into an empty cache (once per
    # recording, as every escope command's first open); later ones find it.
    cache = tempfile.mkdtemp(prefix="escope-bench-cache-")
    try:
        env = dict(os.environ, ESCOPE_FILM_CACHE=cache)
        first = Client(path.parent, env)
        first.ok("initialize", adapterID="bench")
        results["launch, first open (unpacks the film once)"], _ = first.request("launch", recording=str(path))
        first.close()
        c = Client(path.parent, env)
        c.ok("initialize", adapterID="bench")
        results["launch"], _ = c.request("launch", recording=str(path))
        _requests(c, results, rng, samples)
        _first_searches(path, env, results)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return results


def _requests(c: Client, results: dict[str, Any], rng: random.Random, samples: int) -> None:
    results["configurationDone (stop at the failure)"], _ = c.request("configurationDone")
    test_file = str(Path(c.ok("stackTrace", threadId=1)["stackFrames"][0]["source"]["path"]))
    # the launch's console line: "escope: replaying TEST (failed), steps FIRST-LAST"
    said = next(e["body"]["output"] for e in c.events if e.get("event") == "output")
    n = int(said.rsplit("-", 1)[1]) + 1
    span = max(1, n // 20)
    thread = 1

    def at(step: int) -> None:
        c.ok("goto", threadId=thread, targetId=step + 1)

    def timed(name: str, steps: list[int], command: str, args: Any = None, prepare: Any = None) -> None:
        times = []
        for s in steps:
            at(s)
            extra = prepare(s) if prepare else {}
            a = dict(args or {})
            a.update(extra)
            ms, _ = c.request(command, **a)
            times.append(ms)
        results[name] = statistics.median(times)

    def first_frame(_s: int) -> dict[str, Any]:
        return {"frameId": c.ok("stackTrace", threadId=thread)["stackFrames"][0]["id"]}

    def locals_ref(_s: int) -> dict[str, Any]:
        fid = c.ok("stackTrace", threadId=thread)["stackFrames"][0]["id"]
        return {"variablesReference": c.ok("scopes", frameId=fid)["scopes"][0]["variablesReference"]}

    for region, (lo, hi) in {"start": (1, span), "end": (n - span, n - 2)}.items():
        steps = [rng.randint(lo, hi) for _ in range(samples)]
        timed(f"goto/{region}", steps, "goto", {"threadId": thread}, lambda s: {"targetId": s + 2})
        timed(f"threads/{region}", steps, "threads")
        timed(f"stackTrace/{region}", steps, "stackTrace", {"threadId": thread})
        timed(f"scopes/{region}", steps, "scopes", None, first_frame)
        timed(f"variables (Locals)/{region}", steps, "variables", None, locals_ref)
        timed(f"evaluate acc/{region}", steps, "evaluate", {"expression": "acc", "context": "watch"})
        timed(f"next/{region}", steps, "next", {"threadId": thread})
        timed(f"stepBack/{region}", steps, "stepBack", {"threadId": thread})
        timed(f"stepIn/{region}", steps, "stepIn", {"threadId": thread})
        timed(f"stepOut/{region}", steps, "stepOut", {"threadId": thread})
        timed(f"gotoTargets (loop line)/{region}", steps, "gotoTargets",
              {"source": {"path": test_file}, "line": LOOP_LINE})
        c.ok("setBreakpoints", source={"path": test_file}, breakpoints=[{"line": APPEND_LINE}])
        timed(f"continue to a breakpoint hit every call/{region}", steps, "continue", {"threadId": thread})
        timed(f"reverseContinue to it/{region}", steps, "reverseContinue", {"threadId": thread})
        c.ok("setBreakpoints", source={"path": test_file},
             breakpoints=[{"line": APPEND_LINE, "condition": "y == 3"}])
        timed(f"continue, condition y == 3 (1 hit in 7)/{region}", steps, "continue", {"threadId": thread})
        c.ok("setBreakpoints", source={"path": test_file}, breakpoints=[])
        c.ok("setExceptionBreakpoints", filters=["raised"])
        timed(f"reverseContinue, raised exceptions (none before)/{region}", steps[:5], "reverseContinue",
              {"threadId": thread})
        c.ok("setExceptionBreakpoints", filters=[])
    # breakpoints a whole film away: the search reads every line event between
    c.ok("setBreakpoints", source={"path": test_file}, breakpoints=[{"line": ASSERT_LINE}])
    timed("continue to a breakpoint a film ahead (start -> assert)", [1, 2, 3], "continue", {"threadId": thread})
    c.ok("setBreakpoints", source={"path": test_file}, breakpoints=[{"line": APPEND_LINE, "hitCondition": "3"}])
    # the first search of a hit-count breakpoint finds all its hits once; later ones reuse them
    at(1)
    results["continue, hitCondition 3 (first: counts every hit)"], _ = c.request("continue", threadId=thread)
    timed("continue, hitCondition 3 (hits counted)", [1, 2, 3], "continue", {"threadId": thread})
    c.ok("setBreakpoints", source={"path": test_file}, breakpoints=[{"line": APPEND_LINE, "condition": "y == 99"}])
    timed("continue, condition never true (a film of candidates)", [1], "continue", {"threadId": thread})
    c.ok("setBreakpoints", source={"path": test_file}, breakpoints=[])
    results["events"] = n
    c.close()


def _first_searches(path: Path, env: dict[str, str], results: dict[str, Any]) -> None:
    """Film-long searches as the first of a session (a fresh ``escope dap``
    each, nothing read yet), then the same search again; medians of
    ``FRESH_SESSIONS`` sessions."""
    cases = [
        ("a line breakpoint a film ahead (start -> assert)", 1, True, [{"line": ASSERT_LINE}]),
        ("condition never true (a film of candidates)", 1, True, [{"line": APPEND_LINE, "condition": "y == 99"}]),
        ("condition i == 100000 (a new value at each hit)", 1, True,
         [{"line": APPEND_LINE, "condition": "i == 100000"}]),
        ("hitCondition % 3 from the end (counts every hit)", -50, True,
         [{"line": APPEND_LINE, "hitCondition": "% 3"}]),
        ("hitCondition % 3 and y == 3, from the end", -50, True,
         [{"line": APPEND_LINE, "hitCondition": "% 3", "condition": "y == 3"}]),
        ("a line breakpoint a film behind (end -> before the loop)", -2, False, [{"line": BEFORE_LOOP_LINE}]),
    ]
    times: dict[str, list[float]] = {}
    for name, at, forward, breakpoints in cases * FRESH_SESSIONS:
        c = Client(path.parent, env)
        c.ok("initialize", adapterID="bench")
        c.ok("launch", recording=str(path))
        c.ok("configurationDone")
        test_file = str(Path(c.ok("stackTrace", threadId=1)["stackFrames"][0]["source"]["path"]))
        said = next(e["body"]["output"] for e in c.events if e.get("event") == "output")
        n = int(said.rsplit("-", 1)[1]) + 1
        step = at if at > 0 else n + at
        c.ok("setBreakpoints", source={"path": test_file}, breakpoints=breakpoints)
        command = "continue" if forward else "reverseContinue"
        for label in ("first search of a session", "again"):
            c.ok("goto", threadId=1, targetId=step + 1)
            times.setdefault(f"{command}, {name}: {label}", []).append(c.request(command, threadId=1)[0])
        c.close()
    for key, values in times.items():
        results[key] = statistics.median(values)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=116_000)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="record into (or reuse a recording in) this directory")
    ap.add_argument("--json", type=Path, help="write the figures here")
    a = ap.parse_args()
    with recording(a.keep, a.iterations) as path:
        results = measure(path, a.samples, a.seed)
    results["python"] = sys.version.split()[0]
    print(f"| request (median of {a.samples}) | ms | within {BUDGET_MS:.0f} ms |")
    print("|---|---:|:---:|")
    for key, value in results.items():
        if isinstance(value, float):
            print(f"| {key} | {value:.2f} | {'yes' if value <= BUDGET_MS else 'NO'} |")
    print(f"\n{results['events']} events; Python {results['python']}")
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
