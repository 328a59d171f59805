"""How large a recording the HTML film handles, and how fast (docs/performance.md, "HTML film").

Records a pytest test whose loop calls a function N times (a running total
rebound N times, a list mutated in place on every call), exports its film
with several window sizes, and for each page measures: export time, page
size, time for headless Chromium to load the page and show the failure
(``data-ready``), and the median time of one keyboard step (Right) and of
one 100-step jump (PageDown), each measured in the page from the key event
to the rendered state.  Needs ``chromium`` on PATH; uses the stdlib CDP
client of the tests (tests/_cdp.py).

    python benchmarks/bench_film.py [--iterations N] [--keep DIR] [--windows 10000,50000,...]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _cdp import Browser  # noqa: E402

TEST = '''
def work(i, acc):
    x = i * 2
    acc.append(x)
    return x


def test_big():
    acc = []
    total = 0
    for i in range({n}):
        total += work(i, acc)
    assert total == -1
'''

STEP_JS = """new Promise((done) => {{
  const t0 = performance.now();
  document.dispatchEvent(new KeyboardEvent('keydown', {{key: '{key}'}}));
  requestAnimationFrame(() => done(performance.now() - t0));
}})"""


def record(where: Path, n: int) -> Path:
    proj = where / "proj"
    if not list(proj.glob(".escope/runs/*/tests/*.sqlite")):
        proj.mkdir(parents=True, exist_ok=True)
        (proj / "pytest.ini").write_text("[pytest]\n")
        (proj / "test_big.py").write_text(TEST.format(n=n))
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--escope"], cwd=proj,
                       capture_output=True)
    return next(proj.glob(".escope/runs/*/tests/*.sqlite"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=40000)
    ap.add_argument("--keep", type=Path)
    ap.add_argument("--windows", default="10000,25000,50000,100000,200000")
    a = ap.parse_args()
    where = a.keep or Path(tempfile.mkdtemp(prefix="bench-film-"))
    rec = record(where, a.iterations)
    from pytest_escope.replay import Recording
    from pytest_escope.replay.film import export_html
    with Recording.open(rec) as r:
        print(f"recording: {len(r.steps)} events, {rec.stat().st_size / 1e6:.1f} MB")
    b = Browser(where / "profile")
    try:
        print("| window (steps) | export s | page MB | load + first render s | step ms | 100-step jump ms |")
        print("|---:|---:|---:|---:|---:|---:|")
        for w in (int(x) for x in a.windows.split(",")):
            out = where / f"film-{w}.html"
            t0 = time.perf_counter()
            facts = export_html(rec, out, max_steps=w, max_bytes=1 << 40)
            export_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            b.open(out.as_uri())
            assert b.eval("document.body.dataset.ready") == "1"
            load_s = time.perf_counter() - t0
            steps = [b.call("Runtime.evaluate", expression=STEP_JS.format(key="ArrowLeft"), awaitPromise=True,
                            returnByValue=True)["result"]["value"] for _ in range(30)]
            jumps = [b.call("Runtime.evaluate", expression=STEP_JS.format(key="PageUp"), awaitPromise=True,
                            returnByValue=True)["result"]["value"] for _ in range(30)]
            span = facts["hi"] - facts["lo"] + 1
            print(f"| {span:,} | {export_s:.2f} | {facts['bytes'] / 1e6:.1f} | {load_s:.2f} | "
                  f"{statistics.median(steps):.1f} | {statistics.median(jumps):.1f} |")
    finally:
        b.quit()


if __name__ == "__main__":
    main()
