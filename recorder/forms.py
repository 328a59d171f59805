"""How a value's structured form is stored in ``vals.detail``.

The renderer builds a form as a tree of nodes: each value shown inside
another is ``{"type": ..., "repr": ..., ...its own items, entries or
fields}``.  Stored that way, a cache object's snapshot repeats each shown
number's text at every level above it and wraps it in a type and a repr
key: ten times the characters its text shows, written at every change.

So the stored form is compact, and lossless:

* a leaf whose type and text say everything is written as a JSON scalar: a
  ``str`` as its repr (quotes included) in a JSON string, an ``int`` or a
  ``float`` whose repr is a JSON number as that number, ``True``/``False``
  as ``true``/``false`` and ``None`` as ``null``;
* a nested exact list, tuple, set, frozenset or dict, and an object shown
  as ``Name(field=value, ...)``, leaves out its ``repr``: it is rebuilt from
  its children exactly as the renderer built it (``rebuilt_repr``).

The renderer in C writes this form directly; the Python renderer's forms
go through ``compact``.  The replayer reads every detail through
``expand``, which gives back the full nodes; a detail stored in full (by an
older recorder, or where a rule does not apply) is read unchanged.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: the keys of a form (top level or nested) that hold nested values
_NODE_LISTS = ("items", "args")

_INT = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+(?:[eE][+-]?[0-9]+)?|[eE][+-]?[0-9]+)\Z")
_OPEN_CLOSE = {"list": ("[", "]"), "dict": ("{", "}")}
_SETS = ("set", "frozenset")
_ELLIPSIS = ", …"


def _child_repr(node: Any) -> str | None:
    if type(node) is dict:
        text = node.get("repr")
        return text if type(text) is str else None
    return None


def rebuilt_repr(node: dict) -> str | None:
    """The text the renderer gives a nested node, from its children's texts
    (full nodes), or None when no rule rebuilds it."""
    type_name = node.get("type")
    if type(type_name) is not str:
        return None
    if "items" in node or "entries" in node:
        size = node.get("len")
        if "fields" in node or type(size) is not int:
            return None
        parts: list[str] = []
        if type_name == "dict":
            entries = node.get("entries")
            if "items" in node or type(entries) is not list:
                return None
            for pair in entries:
                if type(pair) is not list or len(pair) != 2:
                    return None
                key, val = _child_repr(pair[0]), _child_repr(pair[1])
                if key is None or val is None:
                    return None
                parts.append(f"{key}: {val}")
        else:
            items = node.get("items")
            if "entries" in node or type(items) is not list:
                return None
            for item in items:
                text = _child_repr(item)
                if text is None:
                    return None
                parts.append(text)
        if type_name in _OPEN_CLOSE:
            open_, close = _OPEN_CLOSE[type_name]
        elif type_name == "tuple":
            open_, close = "(", ",)" if size == 1 else ")"
        elif type_name in _SETS:
            open_, close = ("{", "}") if size else ("set(", ")")
        else:
            return None
        return open_ + ", ".join(parts) + (_ELLIPSIS if size > len(parts) else "") + close
    fields = node.get("fields")
    if type(fields) is dict and len(node) == (3 if "repr" in node else 2):
        parts = []
        for name, child in fields.items():
            text = _child_repr(child)
            if text is None:
                return None
            parts.append(f"{name}={text}")
        return f"{type_name}(" + ", ".join(parts) + ")"
    return None


# -- writing ------------------------------------------------------------------

def _compact_leaf(type_name: Any, text: Any) -> Any:
    """The JSON scalar standing for a leaf, or ``_KEEP`` (keep it whole).
    A number is written only when the encoder writes it back as ``text``."""
    if type_name == "str":
        return text
    if type_name == "int":
        return int(text) if len(text) <= 4000 and _INT.match(text) else _KEEP
    if type_name == "float":
        if _FLOAT.match(text):
            number = float(text)
            if repr(number) == text:
                return number
        return _KEEP
    if type_name == "bool":
        return True if text == "True" else False if text == "False" else _KEEP
    if type_name == "NoneType":
        return None if text == "None" else _KEEP
    return _KEEP


_KEEP = object()


def _compact_node(node: Any) -> Any:
    if type(node) is not dict:
        return node
    text = node.get("repr")
    if len(node) == 2 and type(text) is str:
        leaf = _compact_leaf(node.get("type"), text)
        if leaf is not _KEEP:
            return leaf
    out = _compact_children(node)
    if "repr" in out and rebuilt_repr(node) == text:
        del out["repr"]
    return out


def _compact_children(form: dict) -> dict:
    out = dict(form)
    for key in _NODE_LISTS:
        children = out.get(key)
        if type(children) is list:
            out[key] = [_compact_node(c) for c in children]
    entries = out.get("entries")
    if type(entries) is list:
        out["entries"] = [[_compact_node(p[0]), _compact_node(p[1])] if type(p) is list and len(p) == 2 else p
                          for p in entries]
    fields = out.get("fields")
    if type(fields) is dict:
        out["fields"] = {k: _compact_node(v) for k, v in fields.items()}
    return out


def compact_child(node: dict) -> Any:
    """The stored form of a nested node, as its parent's ``compact`` stores it."""
    return _compact_node(node)


def compact(form: dict) -> dict:
    """The stored form of a top-level form (which has no type or repr of
    its own: those are the row's columns), for the plain JSON encoder."""
    return _compact_children(form)


# -- reading ------------------------------------------------------------------

class _IntText(str):
    """An int token's text, as the file holds it."""


class _FloatText(str):
    """A float token's text, as the file holds it."""


_decoder = json.JSONDecoder(parse_int=_IntText, parse_float=_FloatText)


def parse(text: str) -> Any:
    """A stored detail as JSON, numbers kept as their text (``expand`` turns
    them back into leaves; ``len`` and other counts into ints)."""
    return _decoder.decode(text)


def _expand_node(node: Any) -> Any:
    t = type(node)
    if t is str:
        return {"type": "str", "repr": node}
    if t is _IntText:
        return {"type": "int", "repr": str.__str__(node)}
    if t is _FloatText:
        return {"type": "float", "repr": str.__str__(node)}
    if t is bool:
        return {"type": "bool", "repr": "True" if node else "False"}
    if node is None:
        return {"type": "NoneType", "repr": "None"}
    if t is not dict:
        return node
    out = _expand_children(node)
    if "repr" not in out:
        text = rebuilt_repr(out)
        if "fields" in out and "len" not in out:
            # an object's text comes before its fields, as the renderer wrote it
            out = {"type": out.get("type"), "repr": text if text is not None else "?",
                   **{k: v for k, v in out.items() if k != "type"}}
        else:
            out["repr"] = text if text is not None else "?"
    return out


def _expand_children(form: dict) -> dict:
    out = {}
    for key, value in form.items():
        if key in _NODE_LISTS and type(value) is list:
            value = [_expand_node(c) for c in value]
        elif key == "entries" and type(value) is list:
            value = [[_expand_node(p[0]), _expand_node(p[1])] if type(p) is list and len(p) == 2 else p
                     for p in value]
        elif key == "fields" and type(value) is dict:
            value = {k: _expand_node(v) for k, v in value.items()}
        else:
            value = _plain(value)
        out[key] = value
    return out


def _plain(value: Any) -> Any:
    """A value outside any node position (``len``): numbers as numbers."""
    t = type(value)
    if t is _IntText:
        return int(str.__str__(value)) if len(value) <= 4000 else 0
    if t is _FloatText:
        return float(str.__str__(value))
    if t is list:
        return [_plain(v) for v in value]
    if t is dict:
        return {k: _plain(v) for k, v in value.items()}
    return value


def expand(form: dict) -> dict:
    """The full form of a stored top-level detail (``parse``'s result)."""
    return _expand_children(form)
