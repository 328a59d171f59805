"""``history``: the lazy ``History`` sequence, its pages and ``since``, the
CLI's pages -- all checked against the whole list and against an
independent reading of the file (conftest's ``Rec``).

The recorded test rebinds names hundreds of times and mutates lists in
place in hundreds of frames, so a history spans several of the walk's
windows (64 bindings, then 256, 1024...) and an object's snapshots are cut
across windows.  No timing here: docs/performance.md has the figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_escope.replay import Recording
from pytest_escope.replay.history import PAGE, History

from conftest import Project, Rec, clean_env

LOOPS = 400
APPENDS = 700

PROGRAM = f'''
class Pair:
    def __init__(self):
        self.x = 0
        self.y = 0


def work(i, acc):
    x = i * 2
    acc.append(x % 7)
    return x % 5


def test_many():
    total = 0
    acc = []
    items = []
    pair = Pair()
    label = "v"
    for i in range({LOOPS}):
        total += work(i, acc)
        if len(acc) > 5:
            acc.clear()
        label = "v" + str(i // 100)
        pair.y = i
        if i % 10 == 0:
            pair.x = i
    for j in range({APPENDS}):
        items.append(j)
    gone = 1
    del gone
    assert total < 0
'''


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = Project(tmp_path_factory.mktemp("history") / "proj")
    project.write("test_many.py", PROGRAM)
    res = project.run("--escope", "--escope-keep=all")
    assert "1 failed" in res.stdout, res.out
    return next(project.escope_dir.glob("runs/*/tests/*test_many-*.sqlite"))


def expected_totals() -> list[str]:
    """The program's own sequence of ``total``: equal values are one value."""
    out, total = ["0"], 0
    for i in range(LOOPS):
        total += (i * 2) % 5
        if str(total) != out[-1]:
            out.append(str(total))
    return out


def oracle(path: Path, name: str, frame: int) -> list[str]:
    """Every distinct rendering ``name`` took in ``frame``, read with plain
    queries (conftest's ``Rec``), independent of replay/history.py."""
    rec = Rec(path)
    try:
        nid = rec._names[name]
        steps = {r[0] for r in rec.q("SELECT step FROM bindings WHERE frame = ? AND name = ?", frame, nid)}
        for (obj,) in rec.q("SELECT DISTINCT v.obj FROM bindings b JOIN vals v ON v.value = b.value "
                            "WHERE b.frame = ? AND b.name = ? AND v.obj IS NOT NULL", frame, nid):
            steps |= {r[0] for r in rec.q("SELECT step FROM vals WHERE obj = ?", obj)}
        end = rec.q("SELECT max(coalesce(end_step, 1 << 62)) FROM activations WHERE frame = ?", frame)[0][0]
        out: list[str] = []
        for step in sorted(s for s in steps if s <= end):
            v = rec.value_at(frame, name, step)  # None: not bound (yet, or any more)
            if v is not None and (not out or out[-1] != v[1]):
                out.append(v[1])
        return out
    finally:
        rec.close()


def shape(entries: Any) -> list[tuple]:
    return [(e.step, e.node, e.function, e.frame, e.value.to_json()) for e in entries]


def test_values_and_count_are_right(path: Path) -> None:
    with Recording.open(path) as rec:
        totals = rec.history("total")
        assert [e.value.repr for e in totals] == expected_totals()
        assert len(totals) == len(expected_totals())
        assert {e.function for e in totals} == {"test_many"}
        assert len({e.node for e in totals[1:]}) == 1 and totals[1].node.endswith(":aug_assign")
        # an equal value bound again (a new str each time) is not a new value
        assert [e.value.repr for e in rec.history("label")] == ["'v'", "'v0'", "'v1'", "'v2'", "'v3'"]
        # one binding, hundreds of in-place changes: each is a value
        items = rec.history("items")
        assert [e.value.repr for e in items[:3]] == ["[]", "[0]", "[0, 1]"]
        assert len(items) == APPENDS + 1 and items[-1].value.to_json()["len"] == APPENDS
        assert [e.value.repr for e in rec.history("pair.x")] == [str(i) for i in range(0, LOOPS, 10)]
        assert [e.value.repr for e in rec.history("gone")] == ["1", "<unbound>"]
        # every frame that holds acc sees its changes; each frame's list is what the file says
        acc = list(rec.history("acc"))
        frames = sorted({e.frame for e in acc})
        assert len(frames) == LOOPS + 1
        for frame in frames[:3] + frames[-2:]:
            mine = [e.value.repr for e in rec.history("acc", frame=frame)]
            assert mine == [e.value.repr for e in acc if e.frame == frame] == oracle(path, "acc", frame)
        test_frame = totals[0].frame
        assert [e.value.repr for e in rec.history("total", frame=test_frame)] == expected_totals()
        assert [e.step for e in acc] == sorted(e.step for e in acc)


@pytest.mark.parametrize("name", ["total", "acc", "items", "label", "pair.x", "gone"])
def test_pages_equal_the_whole(path: Path, name: str) -> None:
    with Recording.open(path) as rec:
        whole = shape(rec.history(name))
        assert whole
        for limit in (1, 7, 63, 64, 65, 320, 1000, len(whole), len(whole) + 5):
            assert shape(rec.history(name, limit=limit)) == whole[:limit]
            h = rec.history(name)
            assert shape(h[:limit]) == whole[:limit]
        # laziness: a first page does not walk a long history to its end
        h = rec.history(name)
        first = h[:5]
        if len(whole) > 300:
            assert not h.complete and h.known < len(whole)
        assert shape(first) == whole[:5] and bool(h)
        assert len(h) == len(whole) and h.complete and h.known == len(whole)
        assert shape([h[0], h[len(whole) // 2], h[-1]]) == [whole[0], whole[len(whole) // 2], whole[-1]]
        assert shape(h[-3:]) == whole[-3:] and shape(h[::97]) == whole[::97]
        assert h == list(rec.history(name))
        with pytest.raises(IndexError):
            h[len(whole)]


@pytest.mark.parametrize("name", ["total", "acc", "items", "pair.x"])
def test_since_and_page_continue_exactly(path: Path, name: str) -> None:
    with Recording.open(path) as rec:
        whole = shape(rec.history(name))
        steps = [w[0] for w in whole]
        for since in (0, steps[0], steps[1], steps[1] + 1, steps[len(steps) // 2] - 1, steps[-1],
                      steps[-1] + 1, rec.last_step + 5):
            assert shape(rec.history(name, since=since)) == [w for w in whole if w[0] >= since]
        # pages never split a step, so since = last step + 1 continues exactly
        for limit in (1, 3, PAGE, 333):
            got: list[tuple] = []
            since = None
            while True:
                entries, more = rec.history(name, since=since).page(limit)
                page = shape(entries)
                assert len(page) >= 1 and (len(page) >= limit or not more)
                assert len({p[0] for p in page[limit:]} | {page[min(limit, len(page)) - 1][0]}) == 1
                got += page
                if not more:
                    break
                since = page[-1][0] + 1
            assert got == whole
        assert rec.history(name).bindings() == rec.q1(
            "SELECT count(*) FROM bindings b JOIN names n ON n.name = b.name WHERE n.text = ?",
            (name.split(".")[0],))[0]


def test_a_page_keeps_one_steps_values_together(path: Path) -> None:
    with Recording.open(path) as rec:
        acc = rec.history("acc")
        whole = list(acc)
        # a change to acc inside work is seen in two frames at one step
        shared = next(i for i in range(1, len(whole)) if whole[i].step == whole[i - 1].step)
        entries, more = rec.history("acc").page(shared)  # the limit falls between the two
        assert more and len(entries) == shared + 1 and entries[-1].step == entries[-2].step


def test_empty_and_errors(path: Path) -> None:
    with Recording.open(path) as rec:
        h = rec.history("total", since=rec.last_step + 1)
        assert not h and len(h) == 0 and h.page(PAGE) == ([], False) and h[:3] == []
        assert list(rec.history("total", limit=0)) == []
        assert isinstance(rec.history("total"), History)
        from pytest_escope.replay.errors import UnknownNameError, UsageError
        with pytest.raises(UnknownNameError):
            rec.history("nosuch")
        with pytest.raises(UsageError):
            rec.history("total", limit=-1)


def escope(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", *args], cwd=cwd,
                          capture_output=True, text=True, env=clean_env(), timeout=120)


def test_cli_pages_follow_their_hints(path: Path) -> None:
    cwd = path.parent
    everything = json.loads(escope("history", str(path), "acc", "--json", "--limit", "0", cwd=cwd).stdout)
    with Recording.open(path) as rec:
        assert everything == [e.to_json() for e in rec.history("acc")]
    # --json: a page, and on stderr the command for the next one
    res = escope("history", str(path), "acc", "--json", cwd=cwd)
    assert res.returncode == 0
    first = json.loads(res.stdout)
    assert first == everything[:len(first)] and PAGE <= len(first) < len(everything)
    assert f"--since {first[-1]['step'] + 1}" in res.stderr and "--limit 0" in res.stderr
    # text: follow the "more:" hints to the end
    seen: list[int] = []
    args = ["history", str(path), "acc", "--limit", "400"]
    while True:
        res = escope(*args, cwd=cwd)
        assert res.returncode == 0, res.stderr
        lines = res.stdout.splitlines()
        seen += [int(line.split()[0]) for line in lines if line[:8].strip().isdigit()]
        if lines[-2] == "more:":  # a hint wider than the output is put on a line of its own
            lines[-2:] = ["more: " + lines[-1].strip()]
        if not lines[-1].startswith("more:"):
            break
        assert "acc was bound" in lines[-2] and "all: --limit 0" in lines[-2]
        assert lines[-1].startswith(f"more: escope history {path} acc --limit 400 --since ")
        since = lines[-1].split("--since ")[1]
        args = ["history", str(path), "acc", "--limit", "400", "--since", since]
    assert seen == [e["step"] for e in everything]
    done = escope("history", str(path), "label", cwd=cwd).stdout
    assert "5 values; see one" in done and "more:" not in done
