"""Print pytest-escope's internal import graph as layers, and check its rules.

    python docs/import_graph.py

Reads the sources with ``ast`` (nothing is imported), so it runs on any
checkout.  A module's layer is one more than the highest layer it imports
from; modules that import each other in a circle share a layer and are
marked with the circle's letter.  ``~name`` is an import made inside a
function (run only when that code runs); imports under ``if
TYPE_CHECKING:`` are left out (they never run).  The output is the graph in
docs/architecture.md; tests/test_docs.py keeps the two equal.

Exit status 1 when a rule is broken: nothing in ``recorder/`` may import
pytest or ``replay/``; nothing in ``replay/`` may import pytest, nor from
``recorder/`` more than the format (``schema``, and ``forms`` for a
value's stored form), the script runner ``escope run`` calls
(``script``) and how a recording process is told alive from gone
(``liveness``).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Source directory of each package (pyproject.toml's package-dir).
PACKAGES = {"pytest_escope": "pytest_escope", "pytest_escope.recorder": "recorder",
            "pytest_escope.replay": "replay"}
PREFIX = "pytest_escope."


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name; C extensions by their .c source."""
    found: dict[str, Path] = {}
    for package, directory in PACKAGES.items():
        for path in sorted((ROOT / directory).iterdir()):
            if path.suffix in (".py", ".c") and path.stem != "__init__":
                found[f"{package}.{path.stem}"] = path
    return found


def _resolve(package: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports(name: str, path: Path, known: dict[str, Path]) -> tuple[dict[str, bool], set[str]]:
    """(internal module -> imported at module level?, top-level external packages)."""
    internal: dict[str, bool] = {}
    external: set[str] = set()
    if path.suffix != ".py":
        return internal, external
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name.rpartition(".")[0]
    late: set[int] = set()
    typing_only: set[int] = set()
    for outer in ast.walk(tree):
        if isinstance(outer, (ast.FunctionDef, ast.AsyncFunctionDef)):
            late.update(id(n) for n in ast.walk(outer) if n is not outer)
        elif isinstance(outer, ast.If) and "TYPE_CHECKING" in ast.unparse(outer.test):
            typing_only.update(id(n) for stmt in outer.body for n in ast.walk(stmt))
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(package, node)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for target in targets:
            while target and target not in known and target.startswith(PREFIX):
                target = target.rpartition(".")[0]  # a name imported from a module
            if target in known:
                if target != name:
                    internal[target] = internal.get(target, False) or id(node) not in late
            elif not target.startswith(PREFIX) and target != "pytest_escope":
                external.add(target.split(".")[0])
    return internal, external


def _circles(graph: dict[str, dict[str, bool]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def layers(graph: dict[str, dict[str, bool]]) -> tuple[dict[str, int], dict[str, str]]:
    circles = _circles(graph)
    group = {m: m for m in graph}
    letter: dict[str, str] = {}
    for i, comp in enumerate(circles):
        for m in comp:
            group[m] = comp[0]
            letter[m] = chr(ord("A") + i)
    level: dict[str, int] = {}

    def depth(g: str) -> int:
        if g not in level:
            level[g] = 0  # a circle's own edges do not raise it
            members = [m for m in graph if group[m] == g]
            deps = {group[d] for m in members for d in graph[m]} - {g}
            level[g] = 1 + max((depth(d) for d in deps), default=-1)
        return level[g]

    return {m: depth(group[m]) for m in graph}, letter


def short(name: str) -> str:
    """``recorder.store`` for a subpackage's module; the package's own keep their full name."""
    rest = name[len(PREFIX):]
    return rest if "." in rest else name


WIDTH = 34
#: what replay/ may import from recorder/
READ_SIDE = {"recorder.forms", "recorder.liveness", "recorder.schema", "recorder.script"}


def _wrapped(head: str, deps: list[str], limit: int = 100) -> list[str]:
    lines = [head]
    for i, dep in enumerate(deps):
        piece = dep + ("," if i < len(deps) - 1 else "")
        if len(lines[-1]) + len(piece) + 1 > limit and lines[-1].strip() and lines[-1] != head:
            lines.append(" " * len(head))
        lines[-1] += ("" if lines[-1].endswith(" ") else " ") + piece
    return [line.rstrip() for line in lines]


def report() -> tuple[str, list[str]]:
    known = modules()
    graph: dict[str, dict[str, bool]] = {}
    external: dict[str, set[str]] = {}
    for name, path in known.items():
        graph[name], external[name] = imports(name, path, known)
    level, letter = layers(graph)
    lines = []
    for layer in range(max(level.values()) + 1):
        lines.append(f"layer {layer}")
        for m in sorted((m for m in graph if level[m] == layer), key=short):
            label = short(m) + (" (C)" if known[m].suffix == ".c" else "")
            label += f"  [circle {letter[m]}]" if m in letter else ""
            deps = [("" if eager else "~") + short(d) for d, eager in
                    sorted(graph[m].items(), key=lambda kv: short(kv[0]))]
            lines.extend(_wrapped(f"  {label:<{WIDTH}} ", deps))
    problems = []
    for m in sorted(graph):
        if short(m).startswith("recorder."):
            bad = sorted(short(d) for d in graph[m] if short(d).startswith("replay."))
            bad += sorted(e for e in external[m] if e in ("pytest", "_pytest", "pluggy"))
            if bad:
                problems.append(f"{short(m)} imports {', '.join(bad)}: recorder/ must not import pytest or replay/")
        if short(m).startswith("replay."):
            # replay/ only reads files: of the recorder, the format, and the script runner `escope run` calls
            bad = sorted(short(d) for d in graph[m] if short(d).startswith("recorder.")
                         and short(d) not in READ_SIDE)
            bad += sorted(e for e in external[m] if e in ("pytest", "_pytest", "pluggy"))
            if bad:
                problems.append(f"{short(m)} imports {', '.join(bad)}: replay/ must not import pytest, "
                                f"nor of recorder/ more than {', '.join(sorted(READ_SIDE))}")
    return "\n".join(lines) + "\n", problems


def main() -> int:
    text, problems = report()
    sys.stdout.write(text)
    for p in problems:
        print(f"import rule broken: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
