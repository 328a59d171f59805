"""A re-raised exception stays in flight while the frames unwind.

``except ParseError: out.append(None); raise`` raises the exception again
from the ``raise`` line.  Both backends film that re-raise as an
``exception`` step at that line when the frame unwinds from it (a bare
``raise``, the end of a ``finally``, an ``except`` clause that does not
match, a ``with`` whose ``__exit__`` lets it through), so the replayer
shows the exception in flight at every later step of the unwinding: in
``escope replay``, ``escope events``, the HTML film and DAP's "Exception"
scope.  A re-raise caught again in the same frame is not filmed (nothing is
in flight at the next line), by either backend.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from _cdp import Browser, find_chromium
from _dap import DapPeer
from conftest import BACKENDS, Project, Rec, Run, clean_env, module_project, needs_monitoring, write_files

PARSER = '''
class ParseError(Exception):
    pass


def parse_number(text):
    if not text.strip().isdigit():
        raise ParseError(f"not a number: {text!r}")
    return int(text)


def parse_all(fields, out):
    for field in fields:
        try:
            out.append(parse_number(field))
        except ParseError:
            out.append(None)
            raise
    return out


def strict(field):
    try:
        return parse_number(field)
    except KeyError:
        return None


def with_cleanup(field, log):
    try:
        return parse_number(field)
    finally:
        log.append("closed")


class Guard:
    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        return False


def guarded(field):
    with Guard():
        return parse_number(field)


def after_other_error(field):
    try:
        return parse_number(field)
    except ParseError:
        try:
            {}["missing"]
        except KeyError:
            pass
        raise


def caught_again(field):
    try:
        try:
            return parse_number(field)
        except ParseError:
            raise
    except ParseError:
        fallback = -1
    return fallback
'''

SUITE = '''
import pytest

from parser import (ParseError, after_other_error, caught_again, guarded, parse_all, strict,
                    with_cleanup)


def test_rows_fail():
    out = []
    parse_all(["1", "x2"], out)


def test_every_reraise():
    log = []
    for fn, field in ((strict, "a"), (with_cleanup, "b"), (guarded, "c"), (after_other_error, "d")):
        args = (field, log) if fn is with_cleanup else (field,)
        with pytest.raises(ParseError):
            fn(*args)
    assert log == ["closed"]
    assert caught_again("e") == -1
'''

#: function -> (the line it re-raises from, the exception re-raised)
RERAISES = {
    "parse_all": ("raise", "ParseError(\"not a number: 'x2'\")"),
    "strict": ("except KeyError:", "ParseError(\"not a number: 'a'\")"),
    "with_cleanup": ('log.append("closed")', "ParseError(\"not a number: 'b'\")"),
    "guarded": ("return parse_number(field)", "ParseError(\"not a number: 'c'\")"),
    "after_other_error": ("raise", "ParseError(\"not a number: 'd'\")"),
}


def _variants() -> list[str]:
    return BACKENDS + (["monitoring-pure"] if "monitoring" in BACKENDS else [])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    proj: Project = write_files(module_project(tmp_path_factory, "reraise"),
                                {"parser.py": PARSER, "test_parser.py": SUITE})
    out = {}
    for variant in _variants():
        backend = variant.split("-")[0]
        esc = proj.path.parent / f"escope-{variant}"
        env = clean_env(ESCOPE_PURE_PYTHON="1") if variant == "monitoring-pure" else None
        res = proj.run("--escope", "--escope-keep=all", f"--escope-backend={backend}", f"--escope-dir={esc}", env=env)
        assert "1 failed, 1 passed" in res.stdout, res.out
        out[variant] = proj.latest(esc)
    return out


def _line_of(source: str, needle: str, function: str) -> int:
    """The line of ``needle`` inside ``def function``'s body."""
    lines = source.splitlines()
    start = next(i for i, text in enumerate(lines) if text.startswith(f"def {function}("))
    return next(i for i in range(start, len(lines)) if needle in lines[i]) + 1


PARSER_SOURCE = PARSER.lstrip("\n")


@pytest.mark.parametrize("variant", _variants())
@pytest.mark.parametrize("function", sorted(RERAISES))
def test_reraise_is_filmed_before_the_unwind(variant: str, function: str, runs: dict[str, Run]) -> None:
    tid = "test_rows_fail" if function == "parse_all" else "test_every_reraise"
    rec = runs[variant].recording(tid)
    mine = [e for e in rec.events() if e.function == function and e.kind in ("exception", "unwind")]
    needle, value = RERAISES[function]
    line = _line_of(PARSER_SOURCE, needle, function)
    assert [(e.kind, e.line, e.value_repr) for e in mine[-2:]] == [("exception", line, value), ("unwind", line, None)]


@pytest.mark.parametrize("variant", _variants())
def test_reraise_caught_in_its_frame_is_not_filmed(variant: str, runs: dict[str, Run]) -> None:
    rec = runs[variant].recording("test_every_reraise")
    kinds = [e.kind for e in rec.events() if e.function == "caught_again"]
    assert "exception" not in kinds and "unwind" not in kinds
    assert kinds[-1] == "return"


@pytest.mark.parametrize("variant", _variants())
def test_failure_step_stays_at_the_first_raise(variant: str, runs: dict[str, Run]) -> None:
    rec = runs[variant].recording("test_rows_fail")
    first = next(e for e in rec.events() if e.kind == "exception" and e.function == "parse_number")
    assert rec.meta["failure_step"] == str(first.step)


@needs_monitoring
@pytest.mark.parametrize("tid", ["test_rows_fail", "test_every_reraise"])
def test_backends_film_the_same_exceptions(tid: str, runs: dict[str, Run]) -> None:
    def film(run: Run) -> list[tuple]:
        return [(e.file, e.line, e.kind, e.function, e.value_repr) for e in run.recording(tid).events()]
    reference = film(runs["settrace"])
    assert reference == film(runs["monitoring"]) == film(runs["monitoring-pure"])


# -- the replayer shows it in flight ---------------------------------------------------


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", *args], cwd=cwd, capture_output=True,
                          text=True, env=clean_env(), timeout=120)


def _unwind_steps(rec: Rec) -> list[int]:
    """The steps after the re-raise in parse_all: each frame unwinding."""
    events = rec.events()
    again = max(e.step for e in events if e.kind == "exception" and e.function == "parse_all")
    return [e.step for e in events if e.step > again]


@pytest.mark.parametrize("variant", _variants())
def test_replay_shows_the_exception_at_every_unwind_step(variant: str, runs: dict[str, Run]) -> None:
    rec = runs[variant].recording("test_rows_fail")
    steps = _unwind_steps(rec)
    assert len(steps) == 2  # parse_all, then the test, unwind
    for step in steps:
        res = _cli("replay", str(rec.path), "--step", str(step), "--json", cwd=rec.path.parent)
        assert res.returncode == 0, res.stderr
        state = json.loads(res.stdout)
        assert state["kind"] == "unwind"
        assert state["exception"]["repr"] == RERAISES["parse_all"][1], state["exception"]
    res = _cli("replay", str(rec.path), "--step", str(steps[-1]), "--print", "--no-color", cwd=rec.path.parent)
    assert "exception " + RERAISES["parse_all"][1] in res.stdout, res.stdout


def test_events_list_the_reraise(runs: dict[str, Run]) -> None:
    rec = runs[BACKENDS[-1]].recording("test_rows_fail")
    res = _cli("events", str(rec.path), "--kind", "exception", cwd=rec.path.parent)
    assert res.returncode == 0, res.stderr
    rows = [r for r in res.stdout.splitlines() if " exception " in r]
    assert [r.split()[2] for r in rows] == ["parse_number", "parse_all"], res.stdout
    assert all("ParseError" in r for r in rows), res.stdout


def test_dap_exception_scope_at_the_unwind(runs: dict[str, Run]) -> None:
    rec = runs[BACKENDS[-1]].recording("test_rows_fail")
    step = _unwind_steps(rec)[-1]
    peer = DapPeer(rec.path.parent)
    try:
        thread = peer.launch(recording=str(rec.path))["body"]["threadId"]
        peer.ok("goto", threadId=thread, targetId=step + 1)
        assert peer.event("stopped")["body"]["reason"] == "goto"
        top = peer.ok("stackTrace", threadId=thread)["stackFrames"][0]
        assert top["instructionPointerReference"] == str(step)
        scopes = peer.ok("scopes", frameId=top["id"])["scopes"]
        assert [s["name"].split(" (")[0] for s in scopes] == ["Locals", "Exception"]
        exc = peer.ok("variables", variablesReference=scopes[1]["variablesReference"])["variables"]
        assert exc[0]["name"] == "ParseError" and "x2" in exc[0]["value"]
    finally:
        assert peer.close() == 0, peer.stderr()


@pytest.mark.skipif(find_chromium() is None, reason="needs chromium (apt-get install -y chromium)")
def test_html_film_shows_the_exception_at_the_unwind(runs: dict[str, Run], tmp_path: Path) -> None:
    rec = runs[BACKENDS[-1]].recording("test_rows_fail")
    page = tmp_path / "film.html"
    res = _cli("export", str(rec.path), "--html", "-o", str(page), cwd=rec.path.parent)
    assert res.returncode == 0, res.stderr
    browser = Browser(tmp_path / "profile")
    try:
        for step in _unwind_steps(rec):
            browser.open(page.as_uri() + f"#step={step}")
            shown: Any = browser.eval("document.querySelector('#exception').textContent")
            assert "ParseError" in shown and "x2" in shown, (step, shown)
    finally:
        browser.quit()
