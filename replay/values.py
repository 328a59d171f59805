"""Recorded values as replay shows them, and the safe path language of ``p``.

A value row holds what the recorder rendered (type name, bounded text, a
JSON structured form, flags).  Replay never turns it back into a Python
object of the recorded type: it only walks the structured form, so printing
``inv.lines[0].price`` reads nested dicts and never runs anything the
recording contains.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from ..recorder import forms
from ..recorder.schema import FLAG_REDACTED, FLAG_TRUNCATED, FLAG_UNRENDERABLE
from .errors import UnknownNameError


#: The recorder nests structured forms a few levels deep (``full_trace``:
#: 5); anything far deeper comes from a crafted file and would make every
#: recursive walk over it (rendering, ``p a.b[0]``, JSON output) blow the
#: stack, so it is dropped to the bare type and text.
MAX_FORM_DEPTH = 64


def _deeper_than(form: Any, limit: int) -> bool:
    """Whether ``form`` nests containers more than ``limit`` levels (iterative)."""
    todo = [(form, 0)]
    while todo:
        node, depth = todo.pop()
        if isinstance(node, (dict, list)):
            if depth >= limit:
                return True
            children = node.values() if isinstance(node, dict) else node
            todo.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class Value:
    """One recorded value: ``type``, ``repr`` and the structured ``form``."""

    __slots__ = ("type", "repr", "_detail", "flags", "_parsed")

    def __init__(self, type_: str, text: str, detail: str | None = None, flags: int = 0) -> None:
        # Columns are typed by the file, not by us: a crafted recording can
        # put a blob or a number where text belongs.
        self.type = type_ if type(type_) is str else _as_text(type_)
        self.repr = text if type(text) is str else _as_text(text)
        self._detail = detail
        self.flags = flags if type(flags) is int else 0
        self._parsed: dict[str, Any] | None = None

    @property
    def truncated(self) -> bool:
        return bool(self.flags & FLAG_TRUNCATED)

    @property
    def redacted(self) -> bool:
        return bool(self.flags & FLAG_REDACTED)

    @property
    def unrenderable(self) -> bool:
        return bool(self.flags & FLAG_UNRENDERABLE)

    def detail(self) -> dict[str, Any]:
        """The structured form (items, entries, fields, args...), parsed once."""
        if self._parsed is None:
            parsed: Any = None
            if self._detail:
                try:
                    parsed = forms.parse(self._detail)
                except (ValueError, TypeError, RecursionError):
                    parsed = None
                if _deeper_than(parsed, MAX_FORM_DEPTH):
                    parsed = None  # no recorder nests this deep: a crafted file
            self._parsed = forms.expand(parsed) if isinstance(parsed, dict) else {}
        return self._parsed

    def to_json(self) -> dict[str, Any]:
        """The value form (docs/json.md): ``{"type", "repr", ...detail, flags}``."""
        form: dict[str, Any] = {"type": self.type, "repr": self.repr}
        form.update(self.detail())
        if self.truncated:
            form["truncated"] = True
        if self.redacted:
            form["redacted"] = True
        if self.unrenderable:
            form["unrenderable"] = True
        return form

    def same_as(self, other: "Value | None") -> bool:
        return (other is not None and self.type == other.type and self.repr == other.repr
                and self._detail == other._detail and self.flags == other.flags)

    def __repr__(self) -> str:
        return f"Value({self.type}: {self.repr})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Value) and self.same_as(other)

    __hash__ = None  # type: ignore[assignment]


def note(form: dict[str, Any]) -> str:
    """A short suffix telling the reader the value is not complete."""
    parts = []
    if form.get("redacted"):
        parts.append("redacted")
    if form.get("truncated"):
        parts.append("truncated")
    if form.get("unrenderable"):
        parts.append("could not be rendered")
    return f"  ({', '.join(parts)})" if parts else ""


# -- the path language of ``p`` and ``history a.b[0]`` ------------------------

@dataclass(frozen=True)
class Path:
    """``root`` followed by attribute (str) and index (int | str key) steps."""

    root: str
    steps: tuple[tuple[str, Any], ...]

    def __str__(self) -> str:
        out = self.root
        for kind, key in self.steps:
            out += f".{key}" if kind == "attr" else f"[{key!r}]"
        return out


def parse_path(text: str) -> Path:
    """Parse ``name``, ``a.b``, ``a[0]``, ``a['k']`` and chains of them.

    ``ast.parse`` only builds a tree; nothing is evaluated.  Anything beyond
    names, attributes and constant subscripts is refused, because replay
    has recorded values, not objects to call.
    """
    text = text.strip()
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise UnknownNameError(f"cannot read {text!r} as a name path",
                               fix="use a name, a.b, a[0] or a['key']") from None
    steps: list[tuple[str, Any]] = []
    node = tree
    while True:
        if isinstance(node, ast.Name):
            return Path(node.id, tuple(reversed(steps)))
        if isinstance(node, ast.Attribute):
            steps.append(("attr", node.attr))
            node = node.value
            continue
        if isinstance(node, ast.Subscript):
            key = _constant(node.slice)
            steps.append(("index", key))
            node = node.value
            continue
        raise UnknownNameError(f"{text!r} is not a name path (calls and operators are not evaluated)",
                               fix="use a name, a.b, a[0] or a['key']")


def _constant(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, str)) and not isinstance(node.value, bool):
        return node.value
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, int)):
        return -node.operand.value
    raise UnknownNameError("only constant indexes like a[0] or a['key'] are supported",
                           fix="use a name, a.b, a[0] or a['key']")


def walk(form: dict[str, Any], path: Path) -> dict[str, Any]:
    """Follow ``path.steps`` through a value form (the root already resolved)."""
    here = form
    shown = path.root
    for kind, key in path.steps:
        if here.get("redacted") or here.get("repr") == "<redacted>":
            raise UnknownNameError(f"{shown} is redacted; its parts were never recorded")
        if kind == "attr":
            fields = here.get("fields")
            if key == "args" and "args" in here:
                here = {"type": "tuple", "repr": "(" + ", ".join(a.get("repr", "?") for a in here["args"]) + ")",
                        "len": len(here["args"]), "items": here["args"]}
            elif isinstance(fields, dict) and key in fields:
                here = fields[key]
            else:
                known = ", ".join(sorted(fields)) if isinstance(fields, dict) and fields else "none recorded"
                raise UnknownNameError(f"{shown} ({here.get('type')}) has no recorded attribute {key!r} "
                                       f"(attributes: {known})")
            shown += f".{key}"
        else:
            here = _index(here, key, shown)
            shown += f"[{key!r}]"
    return here


def _index(form: dict[str, Any], key: Any, shown: str) -> dict[str, Any]:
    items = form.get("items")
    if isinstance(items, list) and isinstance(key, int):
        size = form.get("len", len(items))
        i = key + size if key < 0 else key
        if not 0 <= i < size:
            raise UnknownNameError(f"{shown}[{key}] is out of range (length {size})")
        if i >= len(items):
            raise UnknownNameError(f"{shown}[{key}] was not recorded (only the first {len(items)} items are kept)")
        return items[i]
    entries = form.get("entries")
    if isinstance(entries, list):
        want = repr(key)
        for pair in entries:
            if isinstance(pair, list) and len(pair) == 2 and pair[0].get("repr") == want:
                return pair[1]
        more = " (the dict was truncated)" if form.get("len", 0) > len(entries) else ""
        raise UnknownNameError(f"{shown} has no key {want}{more}")
    raise UnknownNameError(f"{shown} ({form.get('type')}) cannot be indexed with {key!r}")
