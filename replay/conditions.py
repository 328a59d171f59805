"""Breakpoint conditions (``b 36, rate > 5``) over recorded values.

A condition is parsed with ``ast`` and checked against a short list of
node types; it is evaluated by walking that tree here, never by ``eval``:
a recording comes from elsewhere, and replay never turns its values back
into objects.  What a condition may hold:

* names and paths of the stopped frame's locals (``rate``, ``inv.total``,
  ``items[0]``, ``d['k']``), read from their recorded forms;
* literals: ints, floats, strings, ``True``, ``False``, ``None`` (and ``-``
  before a number);
* comparisons ``==  !=  <  <=  >  >=`` (chained as in Python), ``and``,
  ``or``, ``not``.

A recorded value takes part as a Python value when its type is ``int``,
``float``, ``str``, ``bool`` or ``NoneType`` and its rendering is whole;
any other value, a truncated or redacted one, an unbound name or a
comparison Python refuses (``'a' < 1``) makes the condition false at that
step, so the breakpoint does not stop there.
"""

from __future__ import annotations

import ast
import operator
from typing import Any, Callable

from .errors import UnknownNameError, UsageError
from .values import Path, parse_path, walk

_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}

_HOW = "conditions compare locals with ==, !=, <, <=, >, >= and join them with and, or, not"


class _Unknown(Exception):
    """A value the condition cannot use at this step: the condition is false."""


class Condition:
    """A parsed condition; ``holds(locals)`` evaluates it over one frame's
    recorded locals (name -> ``Value``)."""

    def __init__(self, text: str) -> None:
        self.text = text.strip()
        try:
            tree = ast.parse(self.text, mode="eval")
        except SyntaxError:
            raise UsageError(f"cannot read the condition {self.text!r}", fix=_HOW) from None
        self.tree = tree.body
        self._check(self.tree)
        #: The local names the condition reads: a search reads only these
        #: at each candidate step, not the whole frame.
        #: Each name or path of the tree, parsed once: a search evaluates
        #: the condition at thousands of steps.
        self._paths: dict[int, Path] = {}
        for n in ast.walk(self.tree):
            if isinstance(n, (ast.Name, ast.Attribute, ast.Subscript)) and self._source(n):
                self._paths[id(n)] = parse_path(self._source(n))
        self.names: frozenset[str] = frozenset(p.root for p in self._paths.values())

    def __str__(self) -> str:
        return self.text

    def _check(self, node: ast.AST) -> None:
        if isinstance(node, ast.BoolOp):
            for v in node.values:
                self._check(v)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            self._check(node.operand)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) \
                and isinstance(node.operand, ast.Constant) and type(node.operand.value) in (int, float):
            pass
        elif isinstance(node, ast.Compare):
            bad = [op for op in node.ops if type(op) not in _COMPARE]
            if bad:
                raise UsageError(f"the condition {self.text!r} uses {type(bad[0]).__name__}", fix=_HOW)
            for v in (node.left, *node.comparators):
                self._check(v)
        elif isinstance(node, ast.Constant):
            if node.value is not None and type(node.value) not in (int, float, str, bool):
                raise UsageError(f"the condition {self.text!r} holds a {type(node.value).__name__} literal",
                                 fix="literals are numbers, strings, True, False, None")
        elif isinstance(node, (ast.Name, ast.Attribute, ast.Subscript)):
            try:
                parse_path(self._source(node))
            except UnknownNameError as exc:
                raise UsageError(f"the condition {self.text!r}: {exc.problem}", fix=_HOW) from None
        else:
            raise UsageError(f"the condition {self.text!r} is more than a comparison of recorded values",
                             fix=_HOW + " (no calls or arithmetic: replay never runs code)")

    def _source(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.text, node) or ""

    def holds(self, local_values: dict[str, Any]) -> bool:
        try:
            return bool(self._eval(self.tree, local_values))
        except _Unknown:
            return False

    def _eval(self, node: ast.AST, env: dict[str, Any]) -> Any:
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                return all(self._eval(v, env) for v in node.values)
            return any(self._eval(v, env) for v in node.values)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                return not self._eval(node.operand, env)
            return -node.operand.value  # type: ignore[attr-defined]
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, env)
            for op, right_node in zip(node.ops, node.comparators):
                right = self._eval(right_node, env)
                try:
                    if not _COMPARE[type(op)](left, right):
                        return False
                except TypeError:
                    raise _Unknown() from None
                left = right
            return True
        if isinstance(node, ast.Constant):
            return node.value
        path = self._paths.get(id(node))
        return _python_value(self._lookup(path if path is not None else parse_path(self._source(node)), env))

    @staticmethod
    def _lookup(path: Path, env: dict[str, Any]) -> dict[str, Any]:
        value = env.get(path.root)
        if value is None:
            raise _Unknown()
        try:
            return walk(value.to_json(), path)
        except UnknownNameError:
            raise _Unknown() from None


def _python_value(form: dict[str, Any]) -> Any:
    """A scalar's recorded form as the Python value it was; _Unknown otherwise."""
    if form.get("truncated") or form.get("redacted") or form.get("unrenderable"):
        raise _Unknown()
    kind, text = form.get("type"), form.get("repr")
    if not isinstance(text, str):
        raise _Unknown()
    try:
        if kind == "NoneType":
            return None
        if kind == "bool" and text in ("True", "False"):
            return text == "True"
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "str":
            value = ast.literal_eval(text)
            if isinstance(value, str):
                return value
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        pass
    raise _Unknown()
