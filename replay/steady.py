"""What differs on every run, and the forms two values are compared by.

Two runs of one test never agree on some values: object addresses (in a
default repr, in ``id()``, in a thread's ident), a thread's native id, the
order a set of strings prints in (hash randomisation), the wall-clock time.
``escope diff`` compares values by ``form_key``, which takes those parts
out, so a divergence is something the test did differently.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .values import Value

#: Object addresses in default reprs (``<Foo object at 0x7f3a...>``).
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,16}")
#: A user-space address printed in decimal (x86-64 and arm64 put them in
#: [2**46, 2**47)): ``id(x)`` and ``Thread._ident`` are ones.
_DECIMAL_ADDRESS = re.compile(r"(?<![\d.])\d{14,15}(?![\d.])")
#: The operating system's id of a thread: new on every run.
_NATIVE_ID = re.compile(r'(_native_id[^0-9]{0,40}?)\d+')
#: A number within this many seconds of the run's start reads as a time.
_TIME_SLACK_S = 7 * 86400
#: Types whose text holds no address: compared as recorded.
_SCALARS = frozenset({"int", "float", "bool", "NoneType", "complex"})


def value_form(row: tuple | None) -> dict[str, Any] | None:
    """A ``vals`` row as the value form of docs/json.md."""
    if row is None:
        return None
    return Value(row[2], row[3], row[4], row[5] or 0).to_json()


def form_key(row: tuple | None) -> Any:
    """What two values are compared by: the recorded form without the parts
    that differ on every run (addresses; a set's printing order)."""
    if row is None:
        return None
    _obj, _step, type_, text, detail, flags = row
    if type_ in _SCALARS:
        # nothing in a number's text is an address (a number that happens to
        # hold one is compared as it is)
        return (type_, text, detail, flags)
    if type_ in ("set", "frozenset") and isinstance(detail, str):
        try:
            items = Value(type_, text, detail).detail().get("items")
            if isinstance(items, list):
                return (type_, tuple(sorted(steady(json.dumps(i, sort_keys=True)) for i in items)), flags)
        except (ValueError, AttributeError, RecursionError):
            pass
    return (type_, steady(text), steady(detail), flags)


def _address(m: re.Match[str]) -> str:
    return "<address>" if 1 << 46 <= int(m.group()) < 1 << 47 else m.group()


def steady(text: Any) -> Any:
    """``text`` without what is new on every run: addresses (in hex, or in
    decimal as ``id()`` and a thread's ident give them) and thread native ids."""
    if not isinstance(text, str):
        return text
    if "0x" in text:
        text = _ADDRESS.sub("0x", text)
    if "_native_id" in text:
        text = _NATIVE_ID.sub(r"\g<1>0", text)
    return _DECIMAL_ADDRESS.sub(_address, text)


def _as_address(row: tuple | None) -> bool:
    """Whether the value is an int in the range of user-space addresses
    (what ``id()`` returns, and a thread's ident)."""
    if row is None or row[2] != "int" or not isinstance(row[3], str) or not 14 <= len(row[3]) <= 15:
        return False
    try:
        return 1 << 46 <= int(row[3]) < 1 << 47
    except ValueError:
        return False


def every_run(ra: tuple | None, sa: float | None, rb: tuple | None, sb: float | None) -> bool:
    """Whether two differing values are what differs on every run: both
    times of their run, or both addresses."""
    return (_as_time(ra, sa) and _as_time(rb, sb)) or (_as_address(ra) and _as_address(rb))


def _as_time(row: tuple | None, started: float | None) -> bool:
    """Whether the value is a number that reads as the wall-clock time of the
    run (seconds, milliseconds, microseconds or nanoseconds since the epoch)."""
    if row is None or started is None or row[2] not in ("float", "int"):
        return False
    try:
        number = float(row[3])
    except (TypeError, ValueError):
        return False
    return any(abs(number / scale - started) < _TIME_SLACK_S for scale in (1.0, 1e3, 1e6, 1e9))


def form_key_of_form(form: dict[str, Any] | None) -> Any:
    if form is None:
        return None
    if form.get("type") in ("set", "frozenset") and isinstance(form.get("items"), list):
        return (form["type"], sorted(steady(json.dumps(i, sort_keys=True)) for i in form["items"]))
    return steady(json.dumps(form, sort_keys=True))
