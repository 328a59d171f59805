"""``escope export TEST --html``: the film page, checked in real headless
Chromium over CDP (tests/_cdp.py).  The page is loaded from a file, stepped
with real key events, and what its DOM shows at every step is compared with
``Recording.state_at`` -- the page rebuilds states in JavaScript, so this
is the proof that both agree.  A screenshot is kept in the test's tmp dir
(and copied to ``$ESCOPE_TEST_ARTIFACTS`` when set)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from _cdp import Browser, find_chromium
from conftest import Project, clean_env
from pytest_escope.replay import Recording
from pytest_escope.replay.film import MAX_REPR, _cut

needs_chromium = pytest.mark.skipif(find_chromium() is None, reason="needs chromium (apt-get install -y chromium)")

LIB = '''
class Ledger:
    def __init__(self):
        self.entries = []
        self.balance = 0

    def post(self, amount):
        self.entries.append(amount)
        self.balance += amount
        if self.balance < 0:
            raise ValueError(f"overdrawn by {-self.balance}")
        return self.balance


def settle(ledger, amounts):
    seen = 0
    for a in amounts:
        seen += 1
        ledger.post(a)
    return seen
'''

SUITE = '''
from bank.ledger import Ledger, settle


def test_overdraft():
    ledger = Ledger()
    label = "</script><img src=x onerror=window.pwned=1>"
    token = "hunter2"
    got = settle(ledger, [10, 5, -30, 7])
    assert got == 4, label


def test_big():
    total = 0
    for i in range(6000):
        total += i
    assert total == -1
'''

DOM = """(() => {
  const q = (s) => document.querySelector(s), qa = (s) => [...document.querySelectorAll(s)];
  return {
    step: Number(q('#step-num').textContent),
    kind: q('#kind').textContent,
    stack: qa('#stack li').map((li) => li.textContent),
    locals: qa('#locals tr').filter((tr) => tr.dataset.name).map((tr) =>
        [tr.dataset.name, tr.querySelector('.type').textContent, tr.querySelector('.repr').textContent]),
    exception: q('#exception').textContent,
    current: (q('#source li.cur') || {}).textContent,
    hash: location.hash,
  };
})()"""


@pytest.fixture(scope="module")
def film(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("film")
    project = Project(root / "proj")
    project.write("bank/__init__.py", "")
    project.write("bank/ledger.py", LIB)
    project.write("test_bank.py", SUITE)
    res = project.run("--escope")
    assert "2 failed" in res.stdout, res.out
    out = root / "film.html"
    res = subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", "export", "test_overdraft", "--html",
                          "-o", str(out)], cwd=project.path, capture_output=True, text=True, env=clean_env(),
                         timeout=120)
    assert res.returncode == 0, res.stderr
    rec_path = next(project.escope_dir.glob("runs/*/tests/*test_overdraft*.sqlite"))
    return {"project": project, "html": out, "recording": rec_path, "stdout": res.stdout}


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if find_chromium() is None:
        pytest.skip("needs chromium (apt-get install -y chromium)")
    b = Browser(tmp_path_factory.mktemp("chromium") / "profile")
    yield b
    b.quit()


def expected(rec: Recording, step: int) -> dict[str, Any]:
    st = rec.state_at(step)
    inner = st.stack[-1]
    source = rec.source_lines(inner.code)
    return {
        "step": step,
        "kind": st.kind,
        "stack": [f"{f.function} {f.file}:{f.line}" for f in st.stack],
        "locals": sorted([name, v.type, _cut(v.repr, MAX_REPR) + (_notes(v))] for name, v in inner.locals.items()),
        "exception": (f"{_cut(st.exception.value.repr, MAX_REPR)}  (raised at step {st.exception.step})"
                      if st.exception else "none"),
        "current": (source[inner.line - 1] or " ") if 0 < inner.line <= len(source) else None,
        "hash": f"#step={step}",
    }


def _notes(v: Any) -> str:
    notes = [n for n, on in (("redacted", v.redacted), ("truncated", v.truncated),
                             ("could not be rendered", v.unrenderable)) if on]
    return f"  ({', '.join(notes)})" if notes else ""


def shown(b: Browser) -> dict[str, Any]:
    got = b.eval(DOM)
    got["locals"] = sorted(got["locals"])
    return got


def keep_screenshot(b: Browser, path: Path) -> None:
    b.screenshot(path)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000
    dest = os.environ.get("ESCOPE_TEST_ARTIFACTS")
    if dest:
        Path(dest).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(dest) / path.name)


def test_page_is_self_contained(film: dict[str, Any]) -> None:
    text = film["html"].read_text(encoding="utf-8")
    assert film["stdout"].startswith(f"wrote {film['html']} (")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)  # nothing fetched from anywhere
    assert "default-src 'none'" in text  # and the page forbids it
    assert text.count("<script") == 2 and "innerHTML" not in text
    assert "</script><img" not in text  # the recorded string cannot end the data block
    data = text.split('id="film-data">', 1)[1].split("</script>", 1)[0]
    assert json.loads(data)["test"].endswith("test_overdraft")


def test_redacted_value_never_reaches_the_page(film: dict[str, Any]) -> None:
    text = film["html"].read_text(encoding="utf-8")
    data = json.loads(text.split('id="film-data">', 1)[1].split("</script>", 1)[0])
    b, v = data["bindings"], data["vals"]
    token = data["names"].index("token")
    shown = [b["value"][i] for i in range(len(b["name"])) if b["name"][i] == token]
    assert shown and all(v["repr"][i] == "<redacted>" and v["flags"][i] & 2 for i in shown)
    assert not any("hunter2" in r for r in v["repr"])  # the secret is only in the embedded source


@needs_chromium
def test_keyboard_steps_show_the_replayed_state(film: dict[str, Any], browser: Browser, tmp_path: Path) -> None:
    b = browser
    b.open(film["html"].as_uri())
    with Recording.open(film["recording"]) as rec:
        fail = rec.failure()
        assert fail is not None
        # it opens at the failure, the exception in flight and its line highlighted
        got = shown(b)
        assert got == expected(rec, fail.step)
        assert "ValueError" in got["exception"] and "overdrawn by 15" in got["exception"]
        assert "raise ValueError" in got["current"]
        keep_screenshot(b, tmp_path / "film-at-failure.png")
        # Home, then every step forward with the Right key: each state agrees with replay
        b.key("Home")
        assert shown(b) == expected(rec, rec.first_step)
        for step in range(rec.first_step + 1, rec.last_step + 1):
            b.key("ArrowRight")
            assert shown(b) == expected(rec, step), f"step {step}"
        # Right at the end stays there; Left walks back
        b.key("ArrowRight")
        assert shown(b)["step"] == rec.last_step
        for step in range(rec.last_step - 1, rec.last_step - 6, -1):
            b.key("ArrowLeft")
            assert shown(b) == expected(rec, step)
        # f jumps to the failure; Shift+Left steps back over calls in this frame
        b.key("f")
        assert shown(b)["step"] == fail.step
        b.key("Home")
        depth0 = len(shown(b)["stack"])
        for _ in range(8):
            b.key("ArrowRight", shift=True)
            assert len(shown(b)["stack"]) <= depth0
        keep_screenshot(b, tmp_path / "film-stepped.png")


@needs_chromium
def test_url_fragment_opens_a_step(film: dict[str, Any], browser: Browser) -> None:
    with Recording.open(film["recording"]) as rec:
        step = (rec.first_step + rec.last_step) // 2
        browser.open(film["html"].as_uri() + f"#step={step}")
        assert shown(browser) == expected(rec, step)


@needs_chromium
def test_variable_history(film: dict[str, Any], browser: Browser) -> None:
    b = browser
    with Recording.open(film["recording"]) as rec:
        fail = rec.failure()
        assert fail is not None
        settle_frame = next(f for f in rec.state_at(fail.step).stack if f.function == "settle")
        want = [e.value.repr for e in rec.history("seen", frame=settle_frame.frame)]
    b.open(film["html"].as_uri())
    b.eval("[...document.querySelectorAll('#stack li')].find((li) => li.textContent.startsWith('settle')).click()")
    b.eval("document.querySelector('#locals tr[data-name=seen] td.name').click()")
    items = b.eval("[...document.querySelectorAll('#history li')].map((li) => li.textContent)")
    assert [i.split(" ", 1)[1].split(": ", 1)[1] for i in items] == want
    assert b.eval("document.querySelector('#history-of').textContent") == "seen in settle"
    # clicking an entry goes to that step
    first_step = int(items[0].split()[0])
    b.eval("document.querySelector('#history li').click()")
    assert shown(b)["step"] == first_step


@needs_chromium
def test_recorded_text_never_becomes_markup(film: dict[str, Any], browser: Browser) -> None:
    b = browser
    b.open(film["html"].as_uri())
    b.key("f")
    b.eval("document.querySelector('#stack li').click()")  # the test's own frame
    assert b.eval("document.querySelectorAll('img').length") == 0
    assert b.eval("typeof window.pwned") == "undefined"
    texts = b.eval("[...document.querySelectorAll('#locals td.repr')].map((td) => td.textContent)")
    assert any("<img src=x" in t for t in texts)
    token = b.eval("document.querySelector('#locals tr[data-name=token] td.repr').textContent")
    assert token == "<redacted>  (redacted)"  # the page shows the redacted value, never the secret
    assert not any("hunter2" in t for t in texts)


@needs_chromium
def test_large_film_is_windowed_and_responsive(film: dict[str, Any], browser: Browser, tmp_path: Path) -> None:
    project: Project = film["project"]
    out = tmp_path / "big.html"
    res = subprocess.run([sys.executable, "-m", "pytest_escope.replay.cli", "export", "test_big", "--html", "-o",
                          str(out), "--max-steps", "5000"], cwd=project.path, capture_output=True, text=True,
                         env=clean_env(), timeout=120)
    assert res.returncode == 0, res.stderr
    assert "a window around the failure" in res.stdout
    rec_path = next(project.escope_dir.glob("runs/*/tests/*test_big*.sqlite"))
    b = browser
    t0 = time.perf_counter()
    b.open(out.as_uri())
    load_s = time.perf_counter() - t0
    assert load_s < 10
    assert "This page holds steps" in b.eval("document.querySelector('#window-note').textContent")
    with Recording.open(rec_path) as rec:
        fail = rec.failure()
        assert fail is not None
        assert shown(b) == expected(rec, fail.step)
        lo = b.eval("window.escopeFilm.lo")
        assert lo > rec.first_step
        b.key("Home")
        assert shown(b) == expected(rec, lo)  # the first step of the window still has its locals
        t0 = time.perf_counter()
        for _ in range(20):
            b.key("PageDown")
        per_key = (time.perf_counter() - t0) / 20
        assert shown(b) == expected(rec, lo + 2000)
    assert per_key < 0.5
