"""Which code is filmed: the project's own files, never the interpreter's.

The decision is made once per code object (cached by ``id`` with the code
kept alive) and once per file; after that, the backends pay one dict lookup
(settrace) or nothing at all (sys.monitoring returns DISABLE).
"""

from __future__ import annotations

# Bound at import: a test that monkeypatches builtins must not reach the recorder.
from builtins import (
    any, bool, dict, float, getattr, id, int, isinstance, len, list, open, range, set, sorted, str,
    tuple,
)  # noqa: A004

import dis
import fnmatch
import hashlib
import os
import site
import sys
import sysconfig
import threading
from pathlib import Path
from types import CodeType

from .interrupts import owned_by_test
from .config import RecorderConfig
from .nodes import FileIndex, NodeIndexCache

_EXCLUDED_PARTS = {"site-packages", "dist-packages", ".tox", ".nox", ".venv", "venv",
                   "build", "dist", ".git", "__pypackages__", ".eggs", ".escope"}

_GEN_FLAGS = 0x20 | 0x100 | 0x200 | 0x80  # GENERATOR, COROUTINE, ITERABLE_COROUTINE, ASYNC_GENERATOR


def _system_dirs() -> list[str]:
    dirs: set[str] = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            dirs.add(os.path.realpath(sysconfig.get_paths()[key]))
        except KeyError:
            pass
    for p in (getattr(site, "getsitepackages", lambda: [])() or []):
        dirs.add(os.path.realpath(p))
    user = getattr(site, "getusersitepackages", lambda: None)()
    if user:
        dirs.add(os.path.realpath(user))
    return sorted(dirs)


def _own_package_dirs() -> list[str]:
    """escope's own code, never filmed: the folders of ``pytest_escope`` and
    its ``recorder`` and ``replay`` subpackages.  Each is found on its own
    because an editable install maps them to three separate folders of a
    checkout, whose parent may well hold a project being tested."""
    import importlib.util

    dirs = {os.path.realpath(os.path.dirname(os.path.abspath(__file__)))}
    for name in ("pytest_escope", "pytest_escope.replay"):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        for loc in (spec.submodule_search_locations or []) if spec else []:
            dirs.add(os.path.realpath(loc))
    return sorted(dirs)


class SourceFile:
    """One in-scope file: its text, its per-line watch map, and (built only
    when asked) its node index.

    Filming needs the watch map before the file's first line step; Python's
    own parser gives it in milliseconds.  The node index (libcst, about a
    third of a millisecond per line when not cached) names the statements of
    a recording that is kept, so the writer asks for it when the recording
    is finished, never while the test runs.
    """

    __slots__ = ("abspath", "relpath", "source", "sha256", "watch", "calls", "stat", "_cache", "_index", "_lock")

    def __init__(self, abspath: str, relpath: str, source: str, cache: NodeIndexCache, stat: tuple[float, int]) -> None:
        self.abspath = abspath
        self.relpath = relpath
        self.source = source
        self.sha256 = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()
        #: line -> (names rebound, names mutated); line -> plain names called
        self.watch, self.calls = cache.watch_map(source, self.sha256)
        self.stat = stat
        self._cache = cache
        self._index: FileIndex | None = None
        self._lock = threading.Lock()

    @property
    def index(self) -> FileIndex:
        """The node index, from the cache or libcst; built once, by whichever
        writer thread asks first."""
        index = self._index
        if index is None:
            with self._lock:
                index = self._index
                if index is None:
                    index = self._index = self._cache.get(self.source, self.relpath)
        return index


class CodeInfo:
    """A code object judged in scope, with what the tracers need of it."""

    __slots__ = ("code", "file", "qualname", "is_gen", "is_coro", "_needs_jump",
                 "method_self", "offset_lines", "watch", "namespace", "class_body")

    def __init__(self, code: CodeType, file: SourceFile) -> None:
        self.code = code
        self.file = file
        self.qualname = getattr(code, "co_qualname", code.co_name)
        flags = code.co_flags
        self.is_gen = bool(flags & _GEN_FLAGS)
        self.is_coro = bool(flags & (0x80 | 0x100 | 0x200))
        self.method_self = code.co_argcount > 0 and code.co_varnames[0] == "self"
        self.offset_lines: dict[int, int] | None = None
        self._needs_jump: bool | None = None
        #: its locals live in a dict, not in fast locals: a module or a class body
        self.namespace = not flags & _CO_OPTIMIZED
        #: a class body: the compiler fills its dict (``__module__``,
        #: ``__qualname__``...) with no statement naming what it binds, so
        #: every step of it looks at the whole dict (a class's own size)
        self.class_body = self.namespace and code.co_name != "<module>"
        self.watch = _watch_with_called_locals(code, file.calls, _watch_with_cells(code, file.watch))
        if self.class_body:
            self.watch = _watch_every_line(code, self.watch)

    @property
    def needs_jump(self) -> bool:
        """Whether a backward jump stays on one line (a step of its own).
        Asked only when lines are filmed: reading the bytecode cost
        ``minimal`` a tenth of a millisecond per function of the suite."""
        if self._needs_jump is None:
            self._needs_jump = _has_same_line_backward_jump(self.code)
        return self._needs_jump

    def line_of_offset(self, offset: int) -> int | None:
        table = self.offset_lines
        if table is None:
            table = {}
            for start, end, line in self.code.co_lines():
                if line is not None:
                    for off in range(start, end, 2):
                        table[off] = line
            self.offset_lines = table
        return table.get(offset)


def _watch_with_cells(code: CodeType, watch: dict) -> dict:
    """A function whose locals live in cells (a closure's ``nonlocal``
    target) can see them rebound by any call: re-read them at every step."""
    cells = tuple(code.co_cellvars)
    if not cells:
        return watch
    merged: dict = {}
    for _start, _end, line in code.co_lines():
        if line is None or line in merged:
            continue
        bound, mutated = watch.get(line, ((), ()))
        merged[line] = (bound + tuple(c for c in cells if c not in bound), mutated)
    return merged


def _watch_with_called_locals(code: CodeType, calls: dict, watch: dict) -> dict:
    """A local called by name (``sink(x)``) may be a bound method whose
    owner the call changes (``sink = log.append``): such locals join the
    names re-read after their line (``Collector.recheck_mutable`` looks at
    the owner).  Builtins and globals called by name are left out: a name
    that is not a local costs a failed lookup at every step."""
    if not calls:
        return watch
    local = frozenset((*code.co_varnames, *code.co_cellvars, *code.co_freevars))
    lines = {line for _start, _end, line in code.co_lines() if line is not None}
    extra: dict[int, tuple[str, ...]] = {}
    for line in lines:
        called = tuple(n for n in calls.get(line, ()) if n in local)
        if called:
            extra[line] = called
    if not extra:
        return watch
    # this code's own lines only: a copy of the file's map per function
    # would grow with the file times its functions
    merged = {line: watch[line] for line in lines if line in watch}
    for line, called in extra.items():
        bound, mutated = merged.get(line, ((), ()))
        more = tuple(n for n in called if n not in bound and n not in mutated)
        if more:
            merged[line] = (bound, mutated + more)
    return merged


def _watch_every_line(code: CodeType, watch: dict) -> dict:
    """Every line of ``code`` with a watch entry, so each step re-reads."""
    merged = dict(watch)
    for _start, _end, line in code.co_lines():
        if line is not None and line not in merged:
            merged[line] = ((), ())
    return merged


_CO_OPTIMIZED = 0x1  # inspect.CO_OPTIMIZED, without importing inspect

_BACKWARD_JUMPS = frozenset(dis.opmap[name] for name in ("JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT")
                            if name in dis.opmap)


def _has_same_line_backward_jump(code: CodeType) -> bool:
    """True when a loop jumps back within one line (a comprehension, a
    one-line ``for``): sys.settrace reports each iteration as a line step but
    sys.monitoring's LINE does not, so such code also needs JUMP events."""
    if sys.version_info < (3, 12):
        return False
    # Most code has no loop at all: its opcodes (the even bytes) tell at C
    # speed, where dis would build an Instruction per instruction.
    if _BACKWARD_JUMPS.isdisjoint(code.co_code[::2]):
        return False
    lines: dict[int, int] = {}
    for start, end, line in code.co_lines():
        if line is not None:
            for off in range(start, end, 2):
                lines[off] = line
    for ins in dis.get_instructions(code):
        if ins.opname.startswith("JUMP_BACKWARD"):
            target = ins.argval
            if isinstance(target, int) and lines.get(ins.offset) is not None and lines.get(ins.offset) == lines.get(target):
                return True
    return False


class Scope:
    """Decides, per file and per code object, whether it is recorded."""

    def __init__(self, config: RecorderConfig, cache: NodeIndexCache) -> None:
        self.config = config
        self.rootdir = os.path.realpath(str(config.rootdir))
        self.cache = cache
        self.never = [os.path.join(d, "") for d in _own_package_dirs()]
        for p in config.extra_excluded_dirs:
            self.never.append(os.path.join(os.path.realpath(str(p)), ""))
        self.system = [os.path.join(d, "") for d in _system_dirs()]
        self._files: dict[str, SourceFile | None] = {}
        self._codes: dict[int, tuple[CodeType, CodeInfo | None]] = {}

    # -- files ------------------------------------------------------------

    def _module_name(self, rel: str) -> str:
        mod = rel[:-3] if rel.endswith(".py") else rel
        mod = mod.replace(os.sep, ".").replace("/", ".")
        return mod[: -len(".__init__")] if mod.endswith(".__init__") else mod

    def _matches(self, patterns: tuple[str, ...], abspath: str, rel: str) -> bool:
        mod = self._module_name(rel)
        for pat in patterns:
            if (fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(abspath, pat)
                    or fnmatch.fnmatch(mod, pat) or fnmatch.fnmatch(mod, pat + ".*")
                    or fnmatch.fnmatch(rel, pat.rstrip("/") + "/*")):
                return True
        return False

    def wants_path(self, filename: str) -> bool:
        """Whether code from this file is filmed.  escope's own code and
        directory never are; then --escope-exclude, then --escope-include
        patterns decide; otherwise only files under the rootdir and outside
        the interpreter's and virtualenvs' directories and build, VCS and
        tool directories (docs/user-guide.md, "What is filmed (scope)")."""
        if not filename or filename.startswith("<"):
            return False
        abspath = os.path.realpath(filename)
        if any(abspath.startswith(d) for d in self.never):
            return False
        inside = abspath.startswith(os.path.join(self.rootdir, ""))
        rel = os.path.relpath(abspath, self.rootdir) if inside else abspath
        if self.config.exclude and self._matches(self.config.exclude, abspath, rel):
            return False
        if self.config.include and self._matches(self.config.include, abspath, rel):
            return True
        if not inside:
            return False
        if any(abspath.startswith(d) for d in self.system):
            # the rootdir may itself hold a venv; its packages are not ours
            return False
        parts = set(rel.split(os.sep)[:-1])
        if parts & _EXCLUDED_PARTS or any(p.endswith(".egg-info") for p in parts):
            return False
        return True

    def source_file(self, filename: str) -> SourceFile | None:
        known = self._files.get(filename, False)
        if known is not False:
            return known  # type: ignore[return-value]
        result: SourceFile | None = None
        if self.wants_path(filename):
            abspath = os.path.realpath(filename)
            try:
                st = os.stat(abspath)
                with open(abspath, "rb") as fh:
                    raw = fh.read()
                source = raw.decode("utf-8", "surrogateescape")
            except (OSError, ValueError) as recorder_err:
                if owned_by_test(recorder_err):
                    raise
                source = None
            if source is not None:
                inside = abspath.startswith(os.path.join(self.rootdir, ""))
                rel = os.path.relpath(abspath, self.rootdir) if inside else abspath
                rel = rel.replace(os.sep, "/")
                result = SourceFile(abspath, rel, source, self.cache, (st.st_mtime, st.st_size))
        self._files[filename] = result
        return result

    def refresh(self) -> None:
        """Forget files that changed on disk since they were read (between tests)."""
        for name, sf in list(self._files.items()):
            if sf is None:
                continue
            try:
                st = os.stat(sf.abspath)
            except OSError as recorder_err:
                if owned_by_test(recorder_err):
                    raise
                continue
            if (st.st_mtime, st.st_size) != sf.stat:
                del self._files[name]
                for key, (code, info) in list(self._codes.items()):
                    if info is not None and info.file is sf:
                        del self._codes[key]

    # -- code objects ------------------------------------------------------

    def code_info(self, code: CodeType) -> CodeInfo | None:
        entry = self._codes.get(id(code))
        if entry is not None and entry[0] is code:
            return entry[1]
        sf = self.source_file(code.co_filename)
        info = CodeInfo(code, sf) if sf is not None else None
        self._codes[id(code)] = (code, info)
        return info
