"""Which local names the statement on each line may rebind or mutate.

The tracer re-reads only these names after a statement ran, which keeps a
line step cheap.  The map is needed before the first line of a file is
filmed, so it comes from Python's own parser (``ast``, in C: a few
milliseconds for a large file) rather than from libcst, whose node index
is built only for the recordings that are kept (``nodes.py``).

The rules are those of the node index's statements: a simple statement
line covers every line it spans; a compound statement's header covers its
first line (its first decorator's, for a decorated ``def`` or ``class``)
through the line after its colon; a one-line body (``if x: y = 1``) adds
what it changes to the header's line.  ``tests/test_recorder_line_effects.py``
holds the two implementations to the same answer on real source.
"""

from __future__ import annotations

import ast
from typing import Iterable

#: line -> (names the statement may rebind, names it may mutate in place)
Watch = dict[int, tuple[tuple[str, ...], tuple[str, ...]]]


class _Uses(ast.NodeVisitor):
    """The local names one statement (or one header) binds or may mutate."""

    def __init__(self) -> None:
        self.bound: set[str] = set()
        self.mutated: set[str] = set()

    @staticmethod
    def root_name(node: ast.AST) -> str | None:
        while True:
            if isinstance(node, ast.Name):
                return node.id
            if isinstance(node, ast.Constant) and (node.value is None or node.value is True or node.value is False):
                return repr(node.value)  # a Name to libcst, so the node index agrees
            if isinstance(node, (ast.Attribute, ast.Subscript)):
                node = node.value
            elif isinstance(node, ast.Call):
                node = node.func
            else:
                return None

    def bind_target(self, target: ast.AST) -> None:
        if isinstance(target, ast.Name):
            self.bound.add(target.id)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for el in target.elts:
                self.bind_target(el)
        elif isinstance(target, ast.Starred):
            self.bind_target(target.value)
        else:
            root = self.root_name(target)
            if root:
                self.mutated.add(root)

    def visit_Call(self, node: ast.Call) -> None:
        root = self.root_name(node.func)
        if root and not isinstance(node.func, ast.Name):
            self.mutated.add(root)
        for arg in node.args:
            r = self.root_name(arg.value if isinstance(arg, ast.Starred) else arg)
            if r:
                self.mutated.add(r)
        for kw in node.keywords:
            r = self.root_name(kw.value)
            if r:
                self.mutated.add(r)
        self.generic_visit(node)

    def visit_comprehension(self, node: ast.comprehension) -> None:
        # the loop variable: a local of the comprehension's frame (3.11) or,
        # inlined, of the function (3.12+)
        self.bind_target(node.target)
        self.generic_visit(node)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.bind_target(node.target)
        self.generic_visit(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        return  # its body runs in a frame of its own

    def visit_Assign(self, node: ast.Assign) -> None:
        for t in node.targets:
            self.bind_target(t)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.bind_target(node.target)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.bind_target(node.target)
        root = self.root_name(node.target)
        if root:
            self.mutated.add(root)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for t in node.targets:
            self.bind_target(t)
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.bound.add(alias.asname if alias.asname else alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                return
            self.bound.add(alias.asname if alias.asname else alias.name)

    def visit_Global(self, node: ast.Global) -> None:
        self.bound.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.bound.update(node.names)

    # a nested def or class on a simple line cannot happen; in a header
    # only decorators are visited (below)

    def entry(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return (tuple(sorted(self.bound - self.mutated)), tuple(sorted(self.mutated)))


_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_TRY = (ast.Try, *((ast.TryStar,) if hasattr(ast, "TryStar") else ()))
_MATCH = (ast.Match,) if hasattr(ast, "Match") else ()
_COMPOUND = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, *_TRY, *_DEFS, *_MATCH)


class _Called(_Uses):
    """The plain names a statement (or a header) calls: ``sink(x)``."""

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name):
            self.mutated.add(node.func.id)
        self.generic_visit(node)

    def bind_target(self, target: ast.AST) -> None:
        return

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)

    def visit_Import(self, node: ast.Import) -> None:
        return

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        return

    def visit_Global(self, node: ast.Global) -> None:
        return

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        return


class _Walker:
    def __init__(self, source: str, uses: type[_Uses] = _Uses) -> None:
        # ast's columns count UTF-8 bytes
        self.lines = [line.encode("utf-8", "surrogatepass") for line in source.splitlines()]
        self.watch: Watch = {}
        self.uses = uses

    def set_watch(self, lines: Iterable[int], uses: _Uses) -> None:
        entry = uses.entry()
        for line in lines:
            self.watch[line] = entry

    def on_header_line(self, stmt: ast.stmt) -> bool:
        """Whether ``stmt`` follows its block's colon on the same line."""
        line = self.lines[stmt.lineno - 1] if 0 < stmt.lineno <= len(self.lines) else b""
        return bool(line[: stmt.col_offset].strip())

    def walk_block(self, body: list[ast.stmt]) -> None:
        if not body:
            return
        if self.on_header_line(body[0]):
            # `if x: y = 1; z = 2`: the small statements share their compound
            # parent's line; only what they may change is added to it
            line = body[0].lineno
            uses = self.uses()
            for stmt in body:
                uses.visit(stmt)
            old_bound, old_mut = self.watch.get(line, ((), ()))
            uses.bound.update(old_bound)
            uses.mutated.update(old_mut)
            self.set_watch((line,), uses)
            return
        i = 0
        while i < len(body):
            stmt = body[i]
            if isinstance(stmt, _COMPOUND):
                self.walk_compound(stmt)
                i += 1
                continue
            # one simple statement line: every small statement that starts on
            # the line where the previous one ends (`a = 1; b = 2`)
            uses = self.uses()
            first = stmt.lineno
            last = stmt.end_lineno or first
            uses.visit(stmt)
            i += 1
            while i < len(body) and not isinstance(body[i], _COMPOUND) and body[i].lineno == last:
                uses.visit(body[i])
                last = body[i].end_lineno or last
                i += 1
            self.set_watch(range(first, last + 1), uses)

    def walk_compound(self, stmt: ast.stmt) -> None:
        first = stmt.lineno
        uses = self.uses()
        if isinstance(stmt, (ast.For, ast.AsyncFor)):
            uses.visit(stmt.iter)
            uses.bind_target(stmt.target)
        elif isinstance(stmt, (ast.If, ast.While)):
            uses.visit(stmt.test)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                uses.visit(item.context_expr)
            for item in stmt.items:
                if item.optional_vars is not None:
                    uses.bind_target(item.optional_vars)
        elif isinstance(stmt, _DEFS):
            for dec in stmt.decorator_list:
                uses.visit(dec)
            uses.bound.add(stmt.name)
            if stmt.decorator_list:
                first = min(first, stmt.decorator_list[0].lineno)
        elif isinstance(stmt, _MATCH):
            uses.visit(stmt.subject)
        if isinstance(stmt, _MATCH):
            # the subject's uses cover every line of the statement (its
            # `case` lines too); each case's block then takes its own lines
            self.set_watch(range(first, (stmt.end_lineno or first) + 1), uses)
            for case in stmt.cases:
                self.walk_block(case.body)
            return
        # a header covers its lines down to its body's first statement
        self.set_watch(range(first, _first_line(stmt.body[0]) + 1), uses)
        self.walk_block(stmt.body)
        if isinstance(stmt, _DEFS):
            return
        if isinstance(stmt, _TRY):
            for handler in stmt.handlers:
                h_uses = self.uses()
                if handler.type is not None:
                    h_uses.visit(handler.type)
                if handler.name is not None:
                    h_uses.bound.add(handler.name)
                body_first = _first_line(handler.body[0])
                self.set_watch(range(handler.lineno, body_first + 1), h_uses)
                self.walk_block(handler.body)
                if handler.name is not None:
                    # Python unbinds `e` when the handler ends; whichever
                    # statement of the body runs last must notice
                    gone = handler.name
                    for line in range(body_first, (handler.end_lineno or body_first) + 1):
                        entry = self.watch.get(line)
                        if entry is not None and gone not in entry[0] and gone not in entry[1]:
                            self.watch[line] = (entry[0] + (gone,), entry[1])
            for extra in (stmt.orelse, stmt.finalbody):
                self.walk_block(extra)
            return
        orelse = getattr(stmt, "orelse", None)
        if not orelse:
            return
        if isinstance(stmt, ast.If) and len(orelse) == 1 and isinstance(orelse[0], ast.If) and self.is_elif(orelse[0]):
            self.walk_compound(orelse[0])
        else:
            self.walk_block(orelse)

    def is_elif(self, stmt: ast.If) -> bool:
        line = self.lines[stmt.lineno - 1] if 0 < stmt.lineno <= len(self.lines) else b""
        return line[stmt.col_offset: stmt.col_offset + 4] == b"elif"


def _first_line(node: ast.AST) -> int:
    """Where a statement starts: its first decorator's line
    for a decorated ``def`` or ``class``."""
    if isinstance(node, _DEFS) and node.decorator_list:
        return min(node.lineno, node.decorator_list[0].lineno)
    return node.lineno


def line_effects(source: str) -> Watch:
    """The watch map of one file's source; an empty map when Python cannot
    parse it (the file then records its steps without value changes)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return {}
    walker = _Walker(source)
    walker.walk_block(tree.body)
    return walker.watch


def called_names(source: str) -> dict[int, tuple[str, ...]]:
    """line -> the plain names its statement calls (``sink(x)``), on the
    lines of ``line_effects``.  A local called by name can be a bound method
    (``sink = log.append``) that changes an object no name of the statement
    holds; the tracer re-reads such a local's owner after the statement
    (``Collector.recheck_mutable``).  Empty when Python cannot parse it."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return {}
    walker = _Walker(source, _Called)
    walker.walk_block(tree.body)
    return {line: mutated for line, (_bound, mutated) in walker.watch.items() if mutated}
