"""Files (SPEC 3.6): run dir layout, the run index, one self-contained
recording per test, permissions, safe names, keep, max-events, node cache."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import sys
from pathlib import Path

import pytest

from conftest import Project, Rec, Run, clean_env, module_project, write_files

WEIRD_IDS = ["a/b", "..", "../../etc/passwd", "ünïcødé-名前", "x" * 300, "x" * 299 + "y", "CON",
             "with space", "back\\slash", ":colon*?<>|", ".hidden", "-"]

FILES = {
    "conftest.py": '''
        import os
        import sys

        import pytest


        @pytest.fixture
        def resource():
            res = ["ready"]
            yield res
            res.clear()


        @pytest.fixture
        def broken():
            raise RuntimeError("setup breaks")


        @pytest.fixture
        def bad_teardown():
            yield 1
            raise RuntimeError("teardown breaks")


        def pytest_sessionfinish(session):
            plugin = session.config.pluginmanager.get_plugin("escope-session")
            heavy = [m for m in ("libcst", "apsw", "pytest_escope.recorder.session") if m in sys.modules]
            if plugin is not None and os.environ.get("CACHE_OUT"):
                cache = plugin.recorder.cache
                with open(os.environ["CACHE_OUT"], "w") as fh:
                    fh.write(f"{cache.parsed} {cache.hits} {','.join(heavy) or '-'}")
            if plugin is None and os.environ.get("MODULES_OUT"):
                with open(os.environ["MODULES_OUT"], "w") as fh:
                    fh.write(",".join(heavy) or "-")
    ''',
    "unused.py": '''
        def never_imported():
            return 1
    ''',
    "test_files.py": '''
        import pytest

        WEIRD = WEIRD_IDS_HERE


        def test_pass(resource):
            resource.append(1)
            assert resource == ["ready", 1]


        def test_fail(resource):
            total = sum(resource and [1, 2])
            assert total == 4, "total is off"


        def test_setup_error(broken):
            pass


        def test_teardown_error(bad_teardown):
            assert bad_teardown == 1


        def test_skip():
            pytest.skip("not today")


        @pytest.mark.parametrize("v", range(len(WEIRD)), ids=WEIRD)
        def test_weird(v):
            assert v < 0


        def test_many_events():
            seen = []
            for i in range(300):
                seen.append(i % 7)
            assert len(seen) == 0, "the end"
    '''.replace("WEIRD_IDS_HERE", repr(WEIRD_IDS)),
}

N_TESTS = 6 + len(WEIRD_IDS)


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return write_files(module_project(tmp_path_factory, "files"), FILES)


@pytest.fixture(scope="module")
def failed_run(proj: Project) -> tuple[Run, str]:
    """First run, defaults: keep failed recordings only."""
    res = proj.run("--escope", "-rA", env=clean_env(CACHE_OUT=str(proj.path.parent / "cache1")))
    assert res.returncode == 1, res.out
    return proj.latest(), (proj.path.parent / "cache1").read_text()


@pytest.fixture(scope="module")
def all_run(proj: Project, failed_run: tuple[Run, str]) -> tuple[Run, str, dict[Path, int]]:
    """Second run into the same escope dir, keeping everything; the cache
    files' mtimes are taken before it."""
    cache = proj.escope_dir / "cache" / "nodes"
    before = {p: p.stat().st_mtime_ns for p in cache.iterdir()}
    res = proj.run("--escope", "--escope-keep=all", env=clean_env(CACHE_OUT=str(proj.path.parent / "cache2")))
    assert res.returncode == 1, res.out
    return proj.latest(), (proj.path.parent / "cache2").read_text(), before


# -- layout and index -------------------------------------------------------------


def test_run_dir_layout(proj: Project, failed_run: tuple[Run, str]) -> None:
    run, _ = failed_run
    assert re.fullmatch(r"\d{8}T\d{9}Z-[0-9a-f]{6}", run.path.name)
    assert run.path.parent == proj.escope_dir / "runs"
    assert (proj.escope_dir / "latest").read_text().strip() == run.path.name
    top = sorted(p.name for p in run.path.iterdir())
    assert top == ["index.sqlite", "tests"]  # no -wal, -shm or journal left behind
    recs = sorted((run.path / "tests").iterdir())
    assert recs and all(p.suffix == ".sqlite" and p.is_file() for p in recs)
    assert list((proj.escope_dir / "cache" / "nodes").glob("*.json"))


def test_index_run_facts(proj: Project, failed_run: tuple[Run, str]) -> None:
    run, _ = failed_run
    facts = run.facts()
    assert facts["run_id"] == run.path.name
    assert facts["python"] == sys.version.split()[0]
    assert facts["platform"] == sys.platform
    assert "--escope" in facts["args"]
    assert Path(facts["rootdir"]).resolve() == proj.path.resolve()
    assert facts["strategy"] == "balanced"
    assert facts["backend"] == ("monitoring" if sys.version_info >= (3, 12) else "settrace")
    assert facts["exitstatus"] == "1"
    assert int(facts["finished_unix_ns"]) >= int(facts["started_unix_ns"])
    assert facts["schema_version"] == "2"  # the run index has the attempt column


def test_index_test_rows(failed_run: tuple[Run, str]) -> None:
    run, _ = failed_run
    rows = run.tests()
    assert len(rows) == N_TESTS
    short = {tid.split("::")[1]: r for tid, r in rows.items()}
    phases = {k: (r["outcome"], r["setup"], r["call"], r["teardown"]) for k, r in short.items()}
    assert phases["test_pass"] == ("passed", "passed", "passed", "passed")
    assert phases["test_fail"] == ("failed", "passed", "failed", "passed")
    assert phases["test_setup_error"] == ("error", "error", None, "passed")
    assert phases["test_teardown_error"] == ("error", "passed", "passed", "error")
    assert phases["test_skip"] == ("skipped", "passed", "skipped", "passed")
    assert short["test_fail"]["failure"] == "AssertionError: total is off"
    assert short["test_setup_error"]["failure"] == "RuntimeError: setup breaks"
    for tid, r in rows.items():
        assert r["worker"] == "main"
        assert r["events"] >= 1 or r["outcome"] == "skipped", tid
        assert r["duration_ns"] > 0
        if r["outcome"] in ("passed", "skipped"):
            assert r["recording"] is None and r["bytes"] == 0, tid  # keep=failed
            continue
        path = run.path / r["recording"]
        assert path.is_file(), tid
        assert r["bytes"] == path.stat().st_size
        rec = Rec(path)
        meta = rec.meta
        assert meta["test_id"] == tid
        assert meta["complete"] == "1"
        assert int(meta["event_count"]) == r["events"]
        assert rec.q("SELECT count(*) FROM events")[0][0] == r["events"]


def test_only_failed_recordings_are_kept_by_default(failed_run: tuple[Run, str]) -> None:
    run, _ = failed_run
    kept = {Rec(p).meta["test_id"].split("::")[1].split("[")[0] for p in (run.path / "tests").iterdir()}
    assert kept == {"test_fail", "test_setup_error", "test_teardown_error", "test_weird", "test_many_events"}
    assert len(list((run.path / "tests").iterdir())) == 4 + len(WEIRD_IDS)


def test_keep_all_keeps_every_recording(all_run: tuple[Run, str, dict]) -> None:
    run, _, _ = all_run
    rows = run.tests()
    assert len(rows) == N_TESTS
    assert all(r["recording"] for r in rows.values())
    assert len(list((run.path / "tests").iterdir())) == N_TESTS
    rec = run.recording("test_pass")
    assert rec.meta["outcome"] == "passed"
    assert rec.lines()


def test_each_recording_has_setup_call_teardown(all_run: tuple[Run, str, dict]) -> None:
    run, _, _ = all_run
    rec = run.recording("test_pass")
    phases = {p: (s, e, o) for p, s, e, o in rec.q("SELECT phase, start_step, end_step, outcome FROM phases")}
    assert sorted(phases, key=lambda p: phases[p][0]) == ["setup", "call", "teardown"]
    assert all(o == "passed" for _, _, o in phases.values())
    assert phases["setup"][1] <= phases["call"][0] and phases["call"][1] <= phases["teardown"][0]
    # the fixture's code before its yield is in setup, after it in teardown
    ev = rec.events()
    fixture_steps = [e.step for e in ev if e.function == "resource" and e.kind == "line"]
    assert fixture_steps and fixture_steps[0] < phases["setup"][1] and fixture_steps[-1] >= phases["teardown"][0]
    err = run.recording("test_setup_error")
    assert dict(err.q("SELECT phase, outcome FROM phases")) == {"setup": "error", "teardown": "passed"}
    td = run.recording("test_teardown_error")
    assert dict(td.q("SELECT phase, outcome FROM phases")) == {"setup": "passed", "call": "passed", "teardown": "error"}


def test_sources_are_embedded(proj: Project, all_run: tuple[Run, str, dict]) -> None:
    run, _, _ = all_run
    rec = run.recording("test_pass")
    files = {path: (sha, rec.source(path)) for path, sha in rec.q("SELECT path, sha256 FROM files")}
    assert set(files) == {"test_files.py", "conftest.py"}
    for path, (sha, src) in files.items():
        text = (proj.path / path).read_text(encoding="utf-8")
        assert src == text
        assert sha == hashlib.sha256(text.encode()).hexdigest()
    # every embedded file has its node index
    for (file,) in rec.q("SELECT file FROM files"):
        assert rec.q("SELECT count(*) FROM nodes WHERE file = ?", file)[0][0] > 0


def test_files_are_owner_only(all_run: tuple[Run, str, dict]) -> None:
    run, _, _ = all_run
    files = run.files()
    assert len(files) == N_TESTS + 1
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
    assert set(modes.values()) == {0o600}, modes


def test_safe_file_names(failed_run: tuple[Run, str]) -> None:
    run, _ = failed_run
    rows = [r for tid, r in run.tests().items() if "test_weird" in tid]
    assert len(rows) == len(WEIRD_IDS)
    names = [Path(r["recording"]).name for r in rows]
    assert len(set(names)) == len(names)
    for r in rows:
        rel = r["recording"]
        assert Path(rel).parent == Path("tests"), rel
        name = Path(rel).name
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*\.sqlite", name), name
        assert ".." not in name and "/" not in name and "\\" not in name
        assert len(name) <= 160
        assert (run.path / rel).resolve().parent == (run.path / "tests").resolve()
        assert Rec(run.path / rel).meta["test_id"] == r["test_id"]


# -- node index cache --------------------------------------------------------------------


def test_cache_holds_only_files_that_ran(proj: Project, failed_run: tuple[Run, str]) -> None:
    cached = {p.stem for p in (proj.escope_dir / "cache" / "nodes").glob("*.json")}
    sha = {name: hashlib.sha256((proj.path / name).read_bytes()).hexdigest()
           for name in ("test_files.py", "conftest.py", "unused.py")}
    assert sha["test_files.py"] in cached and sha["conftest.py"] in cached
    assert sha["unused.py"] not in cached
    parsed, hits = map(int, failed_run[1].split()[:2])
    assert parsed == 2  # each file once for the whole session, not once per test


def test_second_run_skips_libcst(proj: Project, all_run: tuple[Run, str, dict]) -> None:
    run, counts, before = all_run
    parsed, hits, modules = counts.split()
    assert int(parsed) == 0 and int(hits) == 2
    # not even imported: libcst takes 0.4 s to import
    assert "libcst" not in modules.split(",") and "apsw" in modules.split(",")
    cache = proj.escope_dir / "cache" / "nodes"
    after = {p: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert after == before


def test_broken_cache_entry_is_rebuilt(proj: Project, all_run: tuple[Run, str, dict]) -> None:
    sha = hashlib.sha256((proj.path / "test_files.py").read_bytes()).hexdigest()
    entry = proj.escope_dir / "cache" / "nodes" / f"{sha}.json"
    entry.write_text("{not json")
    out = proj.path.parent / "cache3"
    esc = proj.path.parent / "escope-broken-cache"
    esc.mkdir()
    (esc / "cache").symlink_to(proj.escope_dir / "cache")
    res = proj.run("--escope", f"--escope-dir={esc}", "-k", "test_fail", env=clean_env(CACHE_OUT=str(out)))
    assert res.returncode == 1, res.out
    assert out.read_text().split()[0] == "1"
    rec = proj.latest(esc).recording("test_fail")
    assert rec.unmapped_lines() == [] and rec.lines()
    assert entry.read_text().startswith("{") and '"version"' in entry.read_text()


# -- max events ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def capped(proj: Project) -> Rec:
    esc = proj.path.parent / "escope-capped"
    res = proj.run("--escope", "--escope-max-events=50", f"--escope-dir={esc}", "-k", "test_many_events")
    assert res.returncode == 1, res.out
    run = proj.latest(esc)
    row = list(run.tests().values())[0]
    rec = run.recording("test_many_events")
    rec.row = row  # type: ignore[attr-defined]
    return rec


def test_max_events_keeps_the_newest(capped: Rec) -> None:
    meta = capped.meta
    total = int(meta["event_count"])
    assert total > 600  # 300 iterations, two line steps each
    steps = [r[0] for r in capped.q("SELECT step FROM events ORDER BY step")]
    assert len(steps) == 50
    assert steps == list(range(total - 50, total))
    assert int(meta["dropped_events"]) == total - 50
    assert int(meta["first_step"]) == total - 50
    assert capped.row["dropped"] == total - 50  # type: ignore[attr-defined]
    assert capped.row["events"] == total  # type: ignore[attr-defined]
    # the failure is inside what was kept, and it is the last thing filmed
    assert int(meta["failure_step"]) >= total - 50
    assert capped.events()[-1].kind == "unwind"


def test_max_events_state_at_first_kept_step(capped: Rec) -> None:
    first = int(capped.meta["first_step"])
    frame = capped.frames("test_many_events")[0]
    i = capped.value_at(frame, "i", first)
    assert i is not None and i[0] == "int" and 250 <= int(i[1]) <= 299
    # every kept event's activation is still there
    assert capped.q("SELECT count(*) FROM events e LEFT JOIN activations a ON a.act = e.act "
                    "WHERE a.act IS NULL")[0][0] == 0
    # the list's newest snapshot before the cut is kept
    assert capped.q("SELECT count(*) FROM vals WHERE type = 'list' AND step < ?", first)[0][0] >= 1


def test_max_events_leaves_no_dangling_binding(capped: Rec) -> None:
    first = int(capped.meta["first_step"])
    frame = capped.frames("test_many_events")[0]
    assert capped.q("SELECT count(*) FROM bindings b LEFT JOIN vals v ON v.value = b.value "
                    "WHERE b.value IS NOT NULL AND v.value IS NULL")[0][0] == 0
    seen = capped.value_at(frame, "seen", first)
    assert seen is not None and seen[0] == "list"


def test_a_run_without_escope_imports_no_recorder(proj: Project) -> None:
    """With pytest-escope installed but --escope off, pytest pays nothing
    for it: no recorder, no SQLite binding, no libcst (0.5 s of imports
    at every run before)."""
    out = proj.path.parent / "modules-plain"
    res = proj.run("-q", "-k", "test_pass", env=clean_env(MODULES_OUT=str(out)))
    assert res.returncode == 0, res.out
    assert out.read_text() == "-"
