"""DAP variables over recorded value forms: references and children.

A DAP client expands a value by asking for the children of a number it was
given (``variablesReference``, also used here for frame ids).  Those
numbers are only good until the debuggee runs again, so the session keeps
them in a ``References`` table it empties at every stop; a number from
before the stop, or one never handed out, is an error for the client, not
a crash for the server.

The children are those of the recorded structured form (docs/json.md, "The
value form"): a container's kept items or entries, an object's fields, an
exception's args.  Nothing is rebuilt into a Python object; a value the
recorder cut says so in its text and in a last child telling how many items
were not kept.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from .errors import UsageError
from .values import note

__all__ = ["References", "children", "child_variables", "missing", "variable", "value_text"]

T = TypeVar("T")

#: Children shown per expansion: the recorder keeps a bounded number of
#: items per container anyway; this only protects the client from a
#: crafted form with millions of entries.
MAX_CHILDREN = 1000

READ_ONLY = {"attributes": ["readOnly"]}


class References(Generic[T]):
    """Numbers for things the client may ask about again, until ``clear()``."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._items: list[T] = []

    def add(self, item: T) -> int:
        self._items.append(item)
        return len(self._items)

    def get(self, ref: Any) -> T:
        if type(ref) is not int or not 1 <= ref <= len(self._items):
            raise UsageError(f"no {self.what} {ref!r} at this stop",
                             fix=f"ask again for the {self.what}s after the latest stop")
        return self._items[ref - 1]

    def clear(self) -> None:
        self._items = []


def value_text(form: dict[str, Any]) -> str:
    """The recorded text, plus a note when the value is not complete."""
    return f"{form.get('repr', '?')}{note(form)}"


def children(form: dict[str, Any]) -> list[tuple[str, dict[str, Any], str | None]]:
    """``(name, child form, evaluate suffix)`` of a value form, in recorded
    order; the suffix is what ``p`` takes after the parent's path (None
    when the key cannot be written as one, e.g. a tuple key)."""
    out: list[tuple[str, dict[str, Any], str | None]] = []
    items = form.get("items")
    if isinstance(items, list):
        out += [(f"[{i}]", item, f"[{i}]") for i, item in enumerate(items[:MAX_CHILDREN]) if isinstance(item, dict)]
    entries = form.get("entries")
    if isinstance(entries, list):
        for pair in entries[:MAX_CHILDREN]:
            if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], dict) and isinstance(pair[1], dict):
                key = pair[0].get("repr", "?")
                simple = pair[0].get("type") in ("int", "str") and isinstance(key, str)
                out.append((str(key), pair[1], f"[{key}]" if simple else None))
    fields = form.get("fields")
    if isinstance(fields, dict):
        out += [(str(k), v, f".{k}" if str(k).isidentifier() else None)
                for k, v in list(fields.items())[:MAX_CHILDREN] if isinstance(v, dict)]
    args = form.get("args")
    if isinstance(args, list) and args:
        text = "(" + ", ".join(str(a.get("repr", "?")) for a in args if isinstance(a, dict)) + ")"
        out.append(("args", {"type": "tuple", "repr": text, "len": len(args), "items": args}, ".args"))
    return out


def missing(form: dict[str, Any]) -> int:
    """How many items of a cut container the recorder did not keep."""
    size = form.get("len")
    kept = form.get("items") if isinstance(form.get("items"), list) else form.get("entries")
    if not form.get("truncated") or type(size) is not int or not isinstance(kept, list):
        return 0
    return max(0, size - len(kept))


def variable(name: str, form: dict[str, Any], evaluate: str | None, refs: "References[Any]") -> dict[str, Any]:
    """One DAP ``Variable``; a reference is made only when it has children."""
    expandable = bool(children(form)) or missing(form) > 0
    out: dict[str, Any] = {
        "name": name, "value": value_text(form), "type": str(form.get("type", "?")),
        "variablesReference": refs.add(("form", form, evaluate)) if expandable else 0,
        "presentationHint": READ_ONLY,
    }
    if evaluate is not None:
        out["evaluateName"] = evaluate
    return out


def child_variables(form: dict[str, Any], evaluate: str | None, refs: "References[Any]") -> list[dict[str, Any]]:
    """The variables under an expanded value, with a last line for what was cut."""
    out = [variable(name, child, evaluate + suffix if evaluate is not None and suffix is not None else None, refs)
           for name, child, suffix in children(form)]
    cut = missing(form)
    if cut:
        out.append({"name": "…", "value": f"{cut} more not recorded (truncated)", "variablesReference": 0,
                    "presentationHint": {"kind": "virtual", "attributes": ["readOnly"]}})
    return out
