"""One workload (more-itertools, or a test of benchmarks/shapes) recorded in this process, without pytest:
where the recorder's CPU goes, per thread, and what the garbage collector
costs (docs/performance.md, "Method").

The suite benchmark (recording.py) says how much slower a run is; this
says why, fast enough to try a change in a minute.  Each run times the
workload plain, then recorded (after one warm-up recording), and prints
the CPU of the test thread, of everything else (the writer thread) and
the collections of each generation with their time.

    python benchmarks/inprocess.py sieve minimal write
    python benchmarks/inprocess.py sieve minimal write --spill-events 0   # one write at the end
    python benchmarks/inprocess.py lines balanced discard
    python benchmarks/inprocess.py lines balanced write --flush-seconds 0   # no flusher thread
    python benchmarks/inprocess.py lfu balanced write    # benchmarks/shapes: an object changed at every step

``write`` writes the recording (spilling every --spill-events events as a
real run does); ``discard`` films and throws it away.  Never a timing
assertion: the figures go into docs/performance.md with the command.
"""

from __future__ import annotations

import argparse
import gc
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import thirdparty  # noqa: E402


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _sieve() -> None:
    # FactorTests::test_cross_check: generators delegating with `yield from`
    from more_itertools import factor, sieve
    for n in range(2000):
        set(factor(n)) <= set(sieve(n + 1))


def _factor() -> None:
    from more_itertools import factor
    for n in range(2, 20000):
        list(factor(n))


def _lines() -> None:
    # line-dense code that mutates lists in place (balanced's snapshots)
    from more_itertools import chunked_even, distinct_permutations, interleave_evenly, islice_extended
    for _ in range(300):
        list(interleave_evenly([list(range(50)), list(range(30)), list(range(7))]))
        list(distinct_permutations([1, 1, 2, 2, 3], 3))
        list(chunked_even(range(200), 7))
        list(islice_extended(range(300), 10, 250, 3))


WORKLOADS = {"sieve": _sieve, "factor": _factor, "lines": _lines}
#: tests of benchmarks/shapes (issue-16 shapes) run as workloads: an object
#: changed at every step, a container built by method calls
SHAPES = {"lfu": "test_lfu_cache_reads_copy_pickle", "indexed": "test_indexed_set_slices",
          "calls": "test_five_million_events"}


class _GcClock:
    """Collections per generation and the seconds they took."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._t = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t = time.perf_counter()
        else:
            g = info["generation"]
            self.count[g] += 1
            self.seconds[g] += time.perf_counter() - self._t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workload", choices=sorted([*WORKLOADS, *SHAPES]))
    ap.add_argument("strategy", choices=["minimal", "balanced", "full_trace"])
    ap.add_argument("mode", choices=["write", "discard"])
    ap.add_argument("--spill-events", type=int, default=100_000,
                    help="spill every N events, as a real run (0: never, one write at the end)")
    ap.add_argument("--flush-seconds", type=float, default=None,
                    help="how often the flusher thread takes what is in memory (default: a real run's; 0: never)")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="escope-inprocess-"))
    # a copy outside this checkout: escope films nothing inside its own
    if args.workload in SHAPES:
        project = tmp / "shapes"
        shutil.copytree(Path(__file__).resolve().parent / "shapes", project)
    else:
        project = thirdparty.working_copy("more-itertools", tmp)
    sys.path.insert(0, str(project))
    from pytest_escope.recorder.config import RecorderConfig
    from pytest_escope.recorder.session import Recorder

    if args.workload in SHAPES:
        import test_shapes
        work = getattr(test_shapes, SHAPES[args.workload])
    else:
        work = WORKLOADS[args.workload]
    work()  # imports, caches
    t = _cpu()
    work()
    plain = _cpu() - t

    try:
        never = args.spill_events <= 0
        cfg = RecorderConfig(rootdir=project, strategy=args.strategy,
                             spill_events=10**12 if never else args.spill_events,
                             spill_seconds=10**6 if never else 2.0,
                             flush_seconds=0 if never else (RecorderConfig.flush_seconds if args.flush_seconds is None
                                                            else args.flush_seconds))
        recorder = Recorder(cfg, tmp / "cache")
        warm = recorder.recording(tmp / "warm.sqlite", {"nodeid": "warm-up"}, keep_in_memory=True)
        warm.start()
        work()
        warm.stop()
        warm.discard()

        clock = _GcClock()
        gc.callbacks.append(clock)
        rec = recorder.recording(tmp / "film.sqlite", {"nodeid": args.workload}, keep_in_memory=True)
        t = _cpu()
        thread_t = time.thread_time()
        rec.start()
        work()
        rec.stop()
        events = rec.event_count
        if args.mode == "write":
            rec.finish({"outcome": "passed"})
        else:
            rec.discard()
        total = _cpu() - t
        test_thread = time.thread_time() - thread_t
        gc.callbacks.remove(clock)
        size = (tmp / "film.sqlite").stat().st_size if (tmp / "film.sqlite").exists() else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"{args.workload} {args.strategy} {args.mode}: plain {plain:.3f} s, recorded {total:.3f} s CPU "
          f"({total / plain:.1f}x), {events:,} events, {(total - plain) / max(events, 1) * 1e6:.2f} us/event, "
          f"{size / max(events, 1):.1f} bytes/event")
    print(f"  test thread {test_thread:.2f} s, other threads (the writer) {total - test_thread:.2f} s, "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")
    print("  gc: " + ", ".join(f"gen{g} {clock.count[g]} in {clock.seconds[g]:.2f} s" for g in range(3)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
