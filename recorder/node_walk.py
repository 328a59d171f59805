"""The libcst walk behind the node index (``nodes.index_source``).

Its own module because libcst takes about 0.4 s to import: a run whose
files are all in the node-index cache never imports it, and a pytest run
without ``--escope`` imports none of the recorder.
"""

from __future__ import annotations

import re

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from .nodes import FileIndex, Node

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


class _NameUse(cst.CSTVisitor):
    """Collects the local names one statement header binds or may mutate."""

    def __init__(self) -> None:
        self.bound: set[str] = set()
        self.mutated: set[str] = set()

    # -- helpers
    @staticmethod
    def root_name(node: cst.BaseExpression) -> str | None:
        while True:
            if isinstance(node, cst.Name):
                return node.value
            if isinstance(node, (cst.Attribute, cst.Subscript)):
                node = node.value
            elif isinstance(node, cst.Call):
                node = node.func
            else:
                return None

    def bind_target(self, target: cst.BaseExpression) -> None:
        if isinstance(target, cst.Name):
            self.bound.add(target.value)
        elif isinstance(target, (cst.Tuple, cst.List)):
            for el in target.elements:
                self.bind_target(el.value)
        elif isinstance(target, cst.StarredElement):
            self.bind_target(target.value)
        else:
            root = self.root_name(target)
            if root:
                self.mutated.add(root)

    # -- visitors
    def visit_Call(self, node: cst.Call) -> None:
        root = self.root_name(node.func)
        if root and not isinstance(node.func, cst.Name):
            self.mutated.add(root)
        for arg in node.args:
            r = self.root_name(arg.value)
            if r:
                self.mutated.add(r)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        # The iteration variable of a comprehension: a local of the
        # comprehension's frame (3.11) or, inlined, of the function (3.12+).
        self.bind_target(node.target)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self.bind_target(node.target)

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            self.bind_target(t.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self.bind_target(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self.bind_target(node.target)
        root = self.root_name(node.target)
        if root:
            self.mutated.add(root)

    def visit_Del(self, node: cst.Del) -> None:
        self.bind_target(node.target)

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            if alias.asname is not None:
                self.bind_target(alias.asname.name)  # type: ignore[arg-type]
            else:
                top = cst.helpers.get_full_name_for_node(alias.name) or ""
                self.bound.add(top.split(".")[0])

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if isinstance(node.names, cst.ImportStar):
            return
        for alias in node.names:
            if alias.asname is not None:
                self.bind_target(alias.asname.name)  # type: ignore[arg-type]
            elif isinstance(alias.name, cst.Name):
                self.bound.add(alias.name.value)

    def visit_Global(self, node: cst.Global) -> None:
        for n in node.names:
            self.bound.add(n.name.value)

    def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
        for n in node.names:
            self.bound.add(n.name.value)


def _header_uses(stmt: cst.CSTNode) -> list[tuple[cst.CSTNode, str]]:
    """Parts of a compound statement that run on its header line."""
    parts: list[cst.CSTNode] = []
    binds: list[cst.BaseExpression] = []
    if isinstance(stmt, cst.For):
        parts.append(stmt.iter)
        binds.append(stmt.target)
    elif isinstance(stmt, (cst.If, cst.While)):
        parts.append(stmt.test)
    elif isinstance(stmt, cst.With):
        for item in stmt.items:
            parts.append(item.item)
            if item.asname is not None:
                binds.append(item.asname.name)  # type: ignore[arg-type]
    elif isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
        for dec in stmt.decorators:
            parts.append(dec.decorator)
        binds.append(stmt.name)
    elif isinstance(stmt, cst.Match):
        parts.append(stmt.subject)
    return [(p, "use") for p in parts] + [(b, "bind") for b in binds]


class _Indexer:
    def __init__(self, module: cst.Module, wrapper: MetadataWrapper, path: str, sha: str) -> None:
        self.positions = wrapper.resolve(PositionProvider)
        self.index = FileIndex(path=path, sha256=sha)
        self.seen_ids: dict[str, int] = {}
        self.ordinals: dict[tuple[str, str], int] = {}
        self.path = path
        self.module = module

    def pos(self, node: cst.CSTNode) -> tuple[int, int]:
        p = self.positions[node]
        return p.start.line, p.end.line

    def add(self, stmt: cst.CSTNode, kind: str, qualname: str, first: int, last: int) -> int:
        base = f"{self.path}:{qualname}:{first}:{kind}"
        n = self.seen_ids.get(base, 0) + 1
        self.seen_ids[base] = n
        node_id = base if n == 1 else f"{base}~{n}"
        key = (qualname, kind)
        ordinal = self.ordinals.get(key, 0) + 1
        self.ordinals[key] = ordinal
        anchor = f"{self.path}:{qualname}:{kind}#{ordinal}"
        self.index.nodes.append(Node(first, last, kind, qualname, node_id, anchor))
        i = len(self.index.nodes) - 1
        for line in range(first, last + 1):
            self.index.line_node[line] = i
        return i

    def set_watch(self, lines: range, uses: _NameUse) -> None:
        entry = (tuple(sorted(uses.bound - uses.mutated)), tuple(sorted(uses.mutated)))
        for line in lines:
            self.index.watch[line] = entry

    def walk_block(self, body: Any, qualname: str) -> None:
        if isinstance(body, cst.SimpleStatementSuite):
            # `if x: y = 1` on one line: the small statements share the line
            # of their compound parent, which already owns the node; only
            # what they may change is added to that line.
            line = self.pos(body)[0]
            uses = _NameUse()
            body.visit(uses)
            old_bound, old_mut = self.index.watch.get(line, ((), ()))
            uses.bound.update(old_bound)
            uses.mutated.update(old_mut)
            self.set_watch(range(line, line + 1), uses)
            return
        for stmt in body.body:
            self.walk_stmt(stmt, qualname)

    def walk_stmt(self, stmt: cst.CSTNode, qualname: str) -> None:
        first, last = self.pos(stmt)
        if isinstance(stmt, cst.SimpleStatementLine):
            small = stmt.body[0] if stmt.body else stmt
            kind = snake(type(small).__name__)
            self.add(stmt, kind, qualname, first, last)
            uses = _NameUse()
            stmt.visit(uses)
            self.set_watch(range(first, last + 1), uses)
            return
        kind = snake(type(stmt).__name__)
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)) and stmt.decorators:
            first = min(first, self.pos(stmt.decorators[0])[0])
        self.add(stmt, kind, qualname, first, last)
        uses = _NameUse()
        for part, role in _header_uses(stmt):
            if role == "bind":
                uses.bind_target(part)  # type: ignore[arg-type]
            else:
                part.visit(uses)
        body_start = self.pos(stmt.body)[0] if hasattr(stmt, "body") and not isinstance(stmt.body, (list, tuple)) else last
        self.set_watch(range(first, max(first, body_start) + 1), uses)
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            inner = stmt.name.value if qualname == "<module>" else f"{qualname}.{stmt.name.value}"
            self.walk_block(stmt.body, inner)
            return
        if isinstance(stmt, cst.If):
            self.walk_block(stmt.body, qualname)
            orelse = stmt.orelse
            if isinstance(orelse, cst.If):
                self.walk_stmt(orelse, qualname)
            elif orelse is not None:
                self.walk_block(orelse.body, qualname)
            return
        if isinstance(stmt, (cst.Try, cst.TryStar)):
            self.walk_block(stmt.body, qualname)
            for handler in stmt.handlers:
                h_first = self.pos(handler)[0]
                uses = _NameUse()
                if handler.type is not None:
                    handler.type.visit(uses)
                if handler.name is not None:
                    uses.bind_target(handler.name.name)  # type: ignore[arg-type]
                self.set_watch(range(h_first, self.pos(handler.body)[0] + 1), uses)
                self.walk_block(handler.body, qualname)
                if handler.name is not None and isinstance(handler.name.name, cst.Name):
                    # Python unbinds `e` when the handler ends; whichever
                    # statement of the body runs last must notice.
                    gone = handler.name.name.value
                    for line in range(self.pos(handler.body)[0], self.pos(handler)[1] + 1):
                        entry = self.index.watch.get(line)
                        if entry is not None and gone not in entry[0] and gone not in entry[1]:
                            self.index.watch[line] = (entry[0] + (gone,), entry[1])
            for extra in (stmt.orelse, stmt.finalbody):
                if extra is not None:
                    self.walk_block(extra.body, qualname)
            return
        if isinstance(stmt, cst.Match):
            for case in stmt.cases:
                self.walk_block(case.body, qualname)
            return
        if hasattr(stmt, "body"):
            self.walk_block(stmt.body, qualname)
        orelse = getattr(stmt, "orelse", None)
        if orelse is not None:
            self.walk_block(orelse.body, qualname)


def walk_module(source: str, path: str, sha: str) -> FileIndex:
    """The node index of one file's source (raises when libcst cannot parse it)."""
    module = cst.parse_module(source)
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    indexer = _Indexer(module, wrapper, path, sha)
    for stmt in module.body:
        indexer.walk_stmt(stmt, "<module>")
    return indexer.index
