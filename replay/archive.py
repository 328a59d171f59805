"""Portable archives of a run: ``escope pack`` and ``--run ARCHIVE``.

An archive is a plain ``.tar.gz`` (what CI upload steps, ``tar`` and every
archive tool handle) holding one directory::

    escope-run/MANIFEST.json                 format, versions, run id, files
    escope-run/<run-id>/index.sqlite         the run's index (only packed tests keep a recording)
    escope-run/<run-id>/tests/<name>.sqlite  one recording per packed test
    escope-run/<run-id>/html/<name>.html     with --html: the film of each failed test
    escope-run/<run-id>/html/index.html      with --html: links to those films

``MANIFEST.json`` is the first member, so a reader knows every size and
sha256 before it writes a byte.  An archive comes from somewhere else (a CI
artifact), so reading one trusts nothing: each member must be a regular
file named in the manifest, under the run dir, with a safe name (no
absolute path, no ``..``, no link, no device), no larger than the manifest
says, and its sha256 must match.  Members are streamed into a private
temporary directory beside the cache entry and renamed into place only
when all of them check out, so a bad archive leaves nothing behind and
nothing is ever written outside the cache.  The cache entry is keyed by
the archive's sha256: replaying the same artifact twice extracts it once.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import tarfile
import tempfile
import time
import zlib
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import apsw

from ..recorder import schema
from .errors import RunError, SchemaTooNewError
from .runs import NOT_PASSED, Run, TestEntry, read_run

if TYPE_CHECKING:
    from .cli import Context

FORMAT_NAME = "pytest-escope archive"
#: 1: MANIFEST.json + index + recordings (+ html).
ARCHIVE_VERSION = 1
TOP = "escope-run"
MANIFEST = f"{TOP}/MANIFEST.json"
CACHE_ENV = "ESCOPE_CACHE_DIR"
#: Upper bounds for what one archive may unpack to; override with
#: ``$ESCOPE_MAX_ARCHIVE_BYTES`` for bigger runs.
MAX_TOTAL_BYTES = 16 << 30
MAX_MANIFEST_BYTES = 16 << 20
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_CHUNK = 1 << 20
_FIX_AGAIN = "download or copy the archive again, or make a new one with: escope pack"


class ArchiveError(RunError):
    """An archive that cannot be read: truncated, tampered, unsafe, foreign."""


class ArchiveTooNewError(ArchiveError, SchemaTooNewError):
    """The archive (or a recording in it) was made by a newer pytest-escope."""


# -- packing ---------------------------------------------------------------------

def _is_failed(t: TestEntry) -> bool:
    return t.outcome in NOT_PASSED


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _copy_index(run: Run, keep: set[str], dest: Path) -> None:
    """A single-file copy of the run index in which only packed tests keep
    their recording (so replaying a test that was left out says so)."""
    src = apsw.Connection(f"file:{run.path / 'index.sqlite'}?mode=ro",
                          flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
    try:
        out = apsw.Connection(str(dest))
        try:
            with out.backup("main", src, "main") as b:
                b.step()
            out.execute("PRAGMA journal_mode=DELETE")
            with out:
                rows = out.execute("SELECT rowid, recording FROM tests WHERE recording IS NOT NULL").fetchall()
                drop = [(rid,) for rid, rec in rows if rec not in keep]
                out.executemany("UPDATE tests SET recording = NULL WHERE rowid = ?", drop)
                out.execute("INSERT OR REPLACE INTO run VALUES ('packed_unix_ns', ?)", (str(time.time_ns()),))
            out.execute("VACUUM")
        finally:
            out.close()
    finally:
        src.close()


def select_tests(run: Run, include_all: bool) -> list[TestEntry]:
    """The tests an archive holds: failed ones (or all) that have a recording."""
    return [t for t in run.tests if t.recording is not None and t.recording.is_file()
            and (include_all or _is_failed(t))]


def pack_run(run_dir: Path, out: Path, include_all: bool = False, html: bool = False) -> str:
    """Write the archive of ``run_dir`` to ``out``; returns a short description.

    Called by ``escope pack`` and by the plugin's ``--escope-pack=PATH``.
    The archive is written beside ``out`` and renamed into place, owner-only.
    """
    run = read_run(Path(run_dir))
    tests = select_tests(run, include_all)
    out = Path(out)
    if out.is_dir():
        out = out / f"escope-{run.run_id}.tar.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    base = f"{TOP}/{run.run_id}"
    with tempfile.TemporaryDirectory(prefix="escope-pack-") as tmp_text:
        tmp = Path(tmp_text)
        files: list[tuple[str, Path]] = []
        keep = set()
        for t in tests:
            assert t.recording is not None
            rel = t.recording.relative_to(run.path).as_posix()
            keep.add(rel)
            files.append((f"{base}/{rel}", t.recording))
        index = tmp / "index.sqlite"
        _copy_index(run, keep, index)
        files.insert(0, (f"{base}/index.sqlite", index))
        if html:
            from .film import export_html
            pages = []
            (tmp / "html").mkdir()
            for t in tests:
                if not _is_failed(t):
                    continue
                assert t.recording is not None
                page = tmp / "html" / (t.recording.stem + ".html")
                export_html(t.recording, page, entry=t)
                pages.append((t, page.name))
                files.append((f"{base}/html/{page.name}", page))
            if pages:
                page = tmp / "html" / "index.html"
                page.write_text(_html_index(run, pages), encoding="utf-8")
                files.append((f"{base}/html/index.html", page))
        manifest = {
            "format": FORMAT_NAME, "archive_version": ARCHIVE_VERSION,
            "schema_version": schema.SCHEMA_VERSION, "index_schema_version": schema.INDEX_SCHEMA_VERSION,
            "run_id": run.run_id, "created_unix_ns": time.time_ns(),
            "tests": [{"test": t.test_id, "outcome": t.outcome,
                       "recording": f"{base}/{t.recording.relative_to(run.path).as_posix()}"}
                      for t in tests if t.recording is not None],
            "files": {name: {"size": path.stat().st_size, "sha256": _sha256_file(path)} for name, path in files},
        }
        blob = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")
        part = Path(tempfile.mkstemp(prefix=".escope-pack-", suffix=".part", dir=out.parent)[1])
        try:
            os.chmod(part, 0o600)
            with tarfile.open(part, "w:gz", format=tarfile.PAX_FORMAT) as tar:
                info = _info(MANIFEST, len(blob))
                tar.addfile(info, io.BytesIO(blob))
                for name, path in files:
                    with open(path, "rb") as fh:
                        tar.addfile(_info(name, path.stat().st_size), fh)
            os.replace(part, out)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    size = out.stat().st_size
    what = ("test" if include_all else "failed test") + ("" if len(tests) == 1 else "s")
    return f"{out} ({len(tests)} {what}, {_size(size)})"


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = int(time.time())
    return info


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _html_index(run: Run, pages: list[tuple[TestEntry, str]]) -> str:
    from html import escape
    items = "\n".join(f'<li><a href="{escape(name)}">{escape(t.test_id)}</a> <small>{escape(t.failure or "")}'
                      f"</small></li>" for t, name in pages)
    return (f'<!doctype html><meta charset="utf-8"><title>escope run {escape(run.run_id)}</title>'
            f"<style>body{{font:15px system-ui,sans-serif;margin:2em}}small{{color:#a33}}</style>"
            f"<h1>escope: failed tests of run {escape(run.run_id)}</h1><ul>{items}</ul>"
            f"<p>Replay any of them: <code>escope replay TEST --run ARCHIVE</code></p>\n")


# -- reading -----------------------------------------------------------------------

def cache_root() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "escope" / "archives"


def _max_total() -> int:
    try:
        return int(os.environ.get("ESCOPE_MAX_ARCHIVE_BYTES", "")) or MAX_TOTAL_BYTES
    except ValueError:
        return MAX_TOTAL_BYTES


def _bad(path: Path, problem: str, fix: str = _FIX_AGAIN) -> ArchiveError:
    return ArchiveError(problem, path=path, fix=fix)


def _check_manifest(path: Path, data: Any) -> tuple[str, dict[str, tuple[int, str]]]:
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise _bad(path, "not an escope archive (MANIFEST.json names another format)",
                   "pass an archive made by: escope pack")
    versions = {"archive_version": ARCHIVE_VERSION, "schema_version": schema.SCHEMA_VERSION,
                "index_schema_version": schema.INDEX_SCHEMA_VERSION}
    for key, ours in versions.items():
        v = data.get(key)
        if not isinstance(v, int) or v < 1:
            raise _bad(path, f"MANIFEST.json has no valid {key}")
        if v > ours:
            raise ArchiveTooNewError(f"made by a newer pytest-escope ({key} {v}; this escope reads up to {ours})",
                                     path=path, fix="upgrade: pip install -U pytest-escope")
    run_id = data.get("run_id")
    if not isinstance(run_id, str) or not _SAFE.match(run_id):
        raise _bad(path, "MANIFEST.json has no valid run id")
    files = data.get("files")
    if not isinstance(files, dict) or f"{TOP}/{run_id}/index.sqlite" not in files:
        raise _bad(path, "MANIFEST.json lists no run index")
    out: dict[str, tuple[int, str]] = {}
    for name, facts in files.items():
        _member_parts(path, name, run_id)
        if not isinstance(facts, dict):
            raise _bad(path, f"MANIFEST.json entry {name!r} is malformed")
        size, digest = facts.get("size"), facts.get("sha256")
        if not isinstance(size, int) or size < 0 or not isinstance(digest, str) \
                or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise _bad(path, f"MANIFEST.json entry {name!r} is malformed")
        out[name] = (size, digest)
    if sum(s for s, _ in out.values()) > _max_total():
        raise _bad(path, f"the archive would unpack to more than {_size(_max_total())}",
                   "set $ESCOPE_MAX_ARCHIVE_BYTES to allow more")
    return run_id, out


def _member_parts(path: Path, name: str, run_id: str) -> list[str]:
    """The path parts of an allowed member, or an ArchiveError."""
    parts = name.split("/")
    ok = (len(parts) >= 3 and parts[0] == TOP and parts[1] == run_id
          and all(_SAFE.match(p) for p in parts[2:])
          and (parts[2:] == ["index.sqlite"]
               or (len(parts) == 4 and parts[2] == "tests" and parts[3].endswith(".sqlite"))
               or (len(parts) == 4 and parts[2] == "html" and parts[3].endswith(".html"))))
    if not ok or "\\" in name or ".." in parts:
        raise _bad(path, f"unsafe or unexpected member {name[:120]!r}; nothing was extracted",
                   "do not open archives from unknown sources; make a new one with: escope pack")
    return parts


def extract_archive(path: Path, dest_root: Path | None = None) -> Path:
    """Extract (once) and verify ``path``; returns the extracted run dir."""
    path = Path(path)
    try:
        digest = _sha256_file(path)
    except OSError as exc:
        raise _bad(path, f"cannot read the archive ({exc.strerror or exc})", "check the path and its permissions")
    root = dest_root or cache_root()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    final = root / digest[:32]
    done = final / ".complete"
    if done.is_file():
        run_id = done.read_text(encoding="utf-8").strip()
        run_dir = final / TOP / run_id
        if _SAFE.match(run_id) and (run_dir / "index.sqlite").is_file():
            return run_dir
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    os.chmod(tmp, 0o700)
    try:
        run_id = _extract_into(path, tmp)
        _write(tmp / ".complete", io.BytesIO(run_id.encode() + b"\n"), 1 << 10, None, path, ".complete")
        if final.exists():
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / ".complete").is_file():  # another process won the race: use its copy
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final / TOP / run_id


def _extract_into(path: Path, dest: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head != b"\x1f\x8b":
        raise _bad(path, "not an escope archive (not a .tar.gz file)", "pass an archive made by: escope pack")
    try:
        with tarfile.open(path, "r|gz") as tar:
            return _extract_stream(path, tar, dest)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:  # disk full, permissions: not the archive
            raise _bad(path, f"cannot extract the archive ({exc.strerror or exc})",
                       f"check free space and permissions of {dest.parent}") from None
        raise _bad(path, "the archive is truncated or corrupt") from None


def _extract_stream(path: Path, tar: tarfile.TarFile, dest: Path) -> str:
    run_id: str | None = None
    expected: dict[str, tuple[int, str]] = {}
    seen: set[str] = set()
    for member in tar:
        name = member.name
        if run_id is None:
            if name != MANIFEST or not member.isreg():
                raise _bad(path, "not an escope archive (MANIFEST.json is not its first member)",
                           "pass an archive made by: escope pack")
            if member.size > MAX_MANIFEST_BYTES:
                raise _bad(path, "MANIFEST.json is too large")
            fh = tar.extractfile(member)
            assert fh is not None
            try:
                data = json.loads(fh.read(member.size + 1).decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise _bad(path, "MANIFEST.json is not valid JSON") from None
            run_id, expected = _check_manifest(path, data)
            _private_dirs(dest, TOP, run_id, "tests")
            _write(dest / TOP / "MANIFEST.json", io.BytesIO(json.dumps(data).encode()), 1 << 30, None, path, name)
            continue
        if member.isdir():
            if name.rstrip("/") not in _allowed_dirs(run_id):
                raise _bad(path, f"unexpected directory {name[:120]!r} in the archive; nothing was extracted",
                           "do not open archives from unknown sources; make a new one with: escope pack")
            continue
        if not member.isreg():
            raise _bad(path, f"member {name[:120]!r} is a link or special file; nothing was extracted",
                       "do not open archives from unknown sources; make a new one with: escope pack")
        parts = _member_parts(path, name, run_id)
        if name not in expected or name in seen:
            raise _bad(path, f"member {name[:120]!r} is not listed in MANIFEST.json (tampered?)")
        size, digest = expected[name]
        if member.size != size:
            raise _bad(path, f"member {name!r} has {member.size} bytes, MANIFEST.json says {size} (tampered?)")
        target = dest.joinpath(*parts)
        _private_dirs(dest, *parts[:-1])
        fh = tar.extractfile(member)
        assert fh is not None
        _write(target, fh, size, digest, path, name)
        seen.add(name)
    if run_id is None:
        raise _bad(path, "the archive is empty or truncated")
    missing = sorted(set(expected) - seen)
    if missing:
        raise _bad(path, f"the archive lacks {len(missing)} file(s) its manifest lists, e.g. {missing[0]!r} "
                         "(truncated?)")
    _check_index(path, dest / TOP / run_id)
    return run_id


def _private_dirs(base: Path, *parts: str) -> None:
    """Create base/parts... owner-only, whatever the umask says."""
    for i in range(1, len(parts) + 1):
        d = base.joinpath(*parts[:i])
        if not d.is_dir():
            d.mkdir(mode=0o700)
            os.chmod(d, 0o700)


def _allowed_dirs(run_id: str) -> set[str]:
    base = f"{TOP}/{run_id}"
    return {TOP, base, f"{base}/tests", f"{base}/html"}


def _write(target: Path, src: IO[bytes], size: int, digest: str | None, archive: Path, name: str) -> None:
    h = hashlib.sha256()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    written = 0
    with os.fdopen(fd, "wb") as out:
        while True:
            chunk = src.read(_CHUNK)
            if not chunk:
                break
            written += len(chunk)
            if written > size:
                raise _bad(archive, f"member {name!r} is larger than MANIFEST.json says (tampered?)")
            h.update(chunk)
            out.write(chunk)
    if digest is not None and (written != size or h.hexdigest() != digest):
        raise _bad(archive, f"member {name!r} does not match its sha256 in MANIFEST.json (tampered or damaged)")


def _check_index(archive: Path, run_dir: Path) -> None:
    """The index may only point at recordings inside the run dir."""
    run = read_run(run_dir)
    for t in run.tests:
        if t.recording is None:
            continue
        rel = os.path.relpath(t.recording, run_dir).replace(os.sep, "/")
        parts = rel.split("/")
        if len(parts) != 2 or parts[0] != "tests" or not _SAFE.match(parts[1]):
            raise _bad(archive, f"the index names a recording outside the run ({rel[:80]!r}; tampered?)")


def find_extracted_run(path: Path) -> Path | None:
    """The run dir inside an extracted archive (``DIR``, ``DIR/escope-run``)."""
    for top in (path / TOP, path):
        manifest = top / "MANIFEST.json"
        if manifest.is_file():
            try:
                run_id = json.loads(manifest.read_text(encoding="utf-8")).get("run_id")
            except (OSError, ValueError, AttributeError):
                run_id = None
            if isinstance(run_id, str) and _SAFE.match(run_id) and (top / run_id / "index.sqlite").is_file():
                return top / run_id
            raise ArchiveError("an extracted escope archive without its run index", path=top,
                               fix="extract the archive again (tar xzf FILE)")
    return None


def extract_run(path: Path) -> Path:
    """``resolve_run``'s hook: the run dir of an archive file."""
    return extract_archive(Path(path))


# -- the command ---------------------------------------------------------------------

def cmd_pack(ctx: "Context") -> int:
    from .runs import find_escope_dir, resolve_run
    a = ctx.args
    d = getattr(a, "escope_dir", None)
    run = resolve_run(getattr(a, "run", None), find_escope_dir(d) if d else None)
    out = Path(a.output) if a.output else Path(f"escope-{run.run_id}.tar.gz")
    tests = select_tests(run, a.all)
    desc = pack_run(run.path, out, include_all=a.all, html=a.html)
    ctx.say(f"packed {desc}")
    if not tests and not a.all:
        ctx.say(f"no failed test with a recording in run {run.run_id}; every test: escope pack --all{ctx.carry()}")
    ctx.hint("replay it anywhere", f"escope replay --run {shlex.quote(str(out))}")
    return 0


def add_pack(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from .cli import _common
    p = sub.add_parser("pack", help="one portable .tar.gz of a run (failed tests) for CI artifacts")
    _common(p, test=False, json_opt=False)
    p.add_argument("--all", action="store_true", help="every recorded test, not only the failed ones")
    p.add_argument("--html", action="store_true", help="add an HTML film of each failed test (html/)")
    p.add_argument("-o", "--output", metavar="FILE", help="archive path (default: escope-<run-id>.tar.gz)")
    return p
