"""Render Python values without running any user code.

The recorder must never call a user ``__repr__``, ``__eq__``, ``__hash__``,
property or ``__getattr__``: doing so could change what the test does.  So
builtin scalars and containers are rendered by reading them through their
base type's C slots (``list.__len__``, ``dict.items``...), and every other
object becomes ``ClassName(field=value, ...)`` built from the descriptors of
its ``__dict__`` and ``__slots__`` that are known to be plain C accessors.

A rendered value is a tuple ``(type_name, text, detail, flags)``: ``detail``
is the structured form (a dict ready for JSON) that replay expands, or None.
"""

from __future__ import annotations

# Bound at import: a test that monkeypatches builtins must not reach the recorder.
from builtins import (
    any, bool, bytes, complex, dict, enumerate, float, frozenset, id, int, isinstance, issubclass,
    len, list, map, range, repr, set, slice, str, tuple, type, zip,
)  # noqa: A004

import array
import datetime
import decimal
import enum
import functools
import itertools
import json
import os
import pathlib
import re
import threading
import types
import uuid
import zoneinfo
from typing import Any, Iterable

from .forms import compact, compact_child
from .interrupts import owned_by_test
from .schema import FLAG_REDACTED, FLAG_TRUNCATED, FLAG_UNRENDERABLE

DEFAULT_REDACT = (
    "password", "passwd", "secret", "token", "api_key", "apikey",
    "authorization", "cookie", "session", "private_key",
)
REDACTED = "<redacted>"
#: What ``os.environ`` / ``os.environb`` (any ``os._Environ``) is recorded as.
ENVIRON_MARK = "<os._Environ: not recorded>"

#: Types whose values never change: a reference to one can be kept in the
#: event buffer and rendered later, off the hot path.
IMMUTABLE_SCALARS = frozenset({int, float, str, bytes, bool, type(None), complex})
#: The same set keyed by ``id``: hashing a class could run a metaclass's
#: ``__hash__``, hashing an int never does.
IMMUTABLE_IDS = frozenset(id(t) for t in IMMUTABLE_SCALARS)
#: The args an exception's rendering may be reused for (not float: 0.0 ==
#: -0.0 renders two ways).
_EXCEPTION_ARG_IDS = frozenset(id(t) for t in (int, str, bytes, bool, type(None)))

_type_qualname = type.__dict__["__qualname__"].__get__
_type_module = type.__dict__["__module__"].__get__
_type_dict = type.__dict__["__dict__"].__get__
_exc_args = BaseException.__dict__["args"].__get__

def compile_redaction(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive regex matching any name that holds a secret."""
    return _redaction(tuple(patterns))


@functools.lru_cache(maxsize=8)
def _redaction(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    # once per run, not once per test
    parts = [re.escape(p.strip()) for p in patterns if p and p.strip()]
    if not parts:
        return None
    return re.compile("|".join(parts), re.IGNORECASE)


def _form_encoder() -> Any:
    """One JSON encoder for every form.  ``json.dumps`` with options builds
    a new encoder per call, which costs more than encoding a small form; and
    the C encoder, called directly, looks up no builtins (a test may have
    patched ``isinstance``).  Forms are trees of dicts, lists, str and int."""
    c_make = getattr(json.encoder, "c_make_encoder", None)
    if c_make is None:  # an interpreter without the _json accelerator
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    def refuse(obj: Any) -> Any:
        raise TypeError("not part of a form")

    encoder = c_make(None, refuse, json.encoder.encode_basestring, None, ":", ",", False, False, True)
    join = "".join
    return lambda form: join(encoder(form, 0))


_encode_json = _form_encoder()


def detail_json(form: dict | None) -> str | None:
    """A top-level form as ``vals.detail`` stores it (``forms.compact``)."""
    if not form:
        return None
    return _encode_json(compact(form))


def _class_name(cls: type) -> str:
    """A class's ``__qualname__`` through ``type``'s own descriptor, or ``?``."""
    try:
        return str.__str__(_type_qualname(cls))
    except Exception as recorder_err:
        if owned_by_test(recorder_err):
            raise
        return "?"


class _TypeInfo:
    """What is safe to read from instances of one type, decided once."""

    __slots__ = ("name", "dict_getter", "slot_getters", "safe_repr", "aware", "zone", "path", "enum", "opaque",
                 "secret")

    def __init__(self, cls: type) -> None:
        try:
            # exact str: a str subclass's __format__ would run in every f-string
            self.name = str.__str__(_type_qualname(cls))
        except Exception as recorder_err:
            if owned_by_test(recorder_err):
                raise
            self.name = "?"
        self.dict_getter = None
        self.slot_getters: list[tuple[str, Any]] = []
        self.safe_repr = False
        # escope's own objects (the fixture) and pytest's machinery are shown
        # by name only: their insides are noise in a user's film.
        try:
            module = _type_module(cls)
        except Exception as recorder_err:
            if owned_by_test(recorder_err):
                raise
            module = ""
        self.opaque = isinstance(module, str) and str.startswith(module, _OPAQUE_MODULES)
        mro = type.__dict__["__mro__"].__get__(cls)
        # os.environ and os.environb hold the process's secrets under names
        # (AWS_SECRET_ACCESS_KEY...) and as bytes in ``_data``: never read.
        # By identity: issubclass would ask ABCMeta, which reads the class's
        # __mro__ through its metaclass (user code).
        self.secret = any(klass is os._Environ for klass in mro)
        seen_dict = False
        for klass in mro:
            ns = _type_dict(klass)
            if not seen_dict and "__dict__" in ns:
                seen_dict = True
                attr = ns["__dict__"]
                # Only the interpreter's own getset descriptor is trusted; a
                # property named __dict__ would be user code.
                if type(attr) is types.GetSetDescriptorType:
                    self.dict_getter = attr.__get__
            slots = ns.get("__slots__")
            if slots is not None:
                try:
                    slot_names = _slot_names(slots, ns, klass)
                except Exception as recorder_err:
                    if owned_by_test(recorder_err):
                        raise
                    slot_names = []
                for slot in slot_names:
                    desc = ns.get(slot)
                    if type(desc) is types.MemberDescriptorType:
                        self.slot_getters.append((slot, desc.__get__))
        # repr() is trusted for the exact stdlib value types only: a subclass
        # may override what their repr calls (UUID.__repr__ calls str(self),
        # PurePath.__repr__ calls as_posix and so str(self)).  Compared by
        # id: hashing a class could run its metaclass's __hash__.
        self.safe_repr = id(cls) in _TRUSTED_REPR_IDS
        # datetime and time: their repr calls repr(tzinfo), user code unless
        # the tzinfo is one of the stdlib's own (Renderer._aware_text).
        self.aware = id(cls) in _AWARE_IDS
        self.path = id(cls) in _PATH_IDS
        self.zone = id(cls) in _ZONE_IDS
        # Enum.__repr__ calls the repr of the member's value, and the enum is
        # a user class anyway: a member is shown from its instance fields.
        self.enum = any(klass is enum.Enum for klass in mro)


def _slot_names(slots: Any, ns: Any, klass: type) -> list[str]:
    """The names of a class's ``__slots__``, read without running user code.
    The class statement accepts any iterable and keeps it as it was given;
    iterating a user one would call its ``__iter__``.  Exact str, tuple,
    list and dict are read through their own type; anything else gives the
    names of the class's own slot descriptors (``__objclass__`` is the
    class), which the interpreter created from the names it iterated."""
    kind = type(slots)
    if kind is str:
        return [slots]
    if kind is tuple or kind is list or kind is dict:
        return [s for s in (dict.keys(slots) if kind is dict else slots) if type(s) is str]
    names = []
    for key, desc in dict.items(dict(ns)):
        if type(key) is str and type(desc) is types.MemberDescriptorType and desc.__objclass__ is klass:
            names.append(key)
    return names


_TRUSTED_REPR_IDS = frozenset(id(t) for t in (
    datetime.date, datetime.timedelta, decimal.Decimal, uuid.UUID, range, re.Pattern,
    pathlib.PurePath, pathlib.PurePosixPath, pathlib.PureWindowsPath,
    pathlib.Path, pathlib.PosixPath, pathlib.WindowsPath,
))
#: A compiled pattern keeps its source as given, and its repr calls the
#: source's repr: a str subclass's own, unless the source is a plain str or bytes.
_pattern_source = _type_dict(re.Pattern)["pattern"].__get__
_PLAIN_PATTERN_IDS = frozenset((id(str), id(bytes)))
_PATH_IDS = frozenset(id(t) for t in (pathlib.PurePath, pathlib.PurePosixPath, pathlib.PureWindowsPath,
                                      pathlib.Path, pathlib.PosixPath, pathlib.WindowsPath))
_path_str = getattr(pathlib.PurePath, "_str", None)
_path_raw = getattr(pathlib.PurePath, "_raw_paths", None)


def _plain_path(value: Any) -> bool:
    """A path whose repr runs no user code.  A path keeps the str subclass it
    was made from (3.12+: ``_raw_paths``), and its first str() slices and
    splits it through that subclass's methods; once made (``_str``), or
    when every part is a plain str, that cannot happen."""
    for getter in (_path_str, _path_raw):
        if type(getter) is not types.MemberDescriptorType:
            return getter is _path_raw  # 3.11 parses the parts into plain strs when the path is made
        try:
            got = getter.__get__(value)
        except AttributeError:
            continue
        if type(got) is str:
            return True
        if type(got) is list:
            return all(type(part) is str for part in got)
    return False


_AWARE_IDS = frozenset((id(datetime.datetime), id(datetime.time)))
_ZONE_IDS = frozenset((id(datetime.timezone), id(zoneinfo.ZoneInfo)))
_datetime_tzinfo = {id(t): _type_dict(t)["tzinfo"].__get__ for t in (datetime.datetime, datetime.time)}
_zoneinfo_key = _type_dict(zoneinfo.ZoneInfo)["key"].__get__


def _trusted_tzinfo(tz: Any) -> bool:
    """A tzinfo whose repr runs no user code: none, an exact
    ``datetime.timezone`` with an exact timedelta offset and str name, or
    an exact ``zoneinfo.ZoneInfo`` with an exact str key (or none)."""
    kind = type(tz)
    if tz is None:
        return True
    if kind is datetime.timezone:
        return (type(datetime.timezone.utcoffset(tz, None)) is datetime.timedelta
                and type(datetime.timezone.tzname(tz, None)) is str)
    if kind is zoneinfo.ZoneInfo:
        key = _zoneinfo_key(tz, zoneinfo.ZoneInfo)
        return key is None or type(key) is str
    return False


def _big_scalar_container(value: Any, limit: int) -> bool:
    """A list, tuple or dict of more than a few items whose shown items are
    all scalars: telling that it is unchanged costs a tenth of rendering it.
    For anything else the check costs about what a rendering does."""
    cls = type(value)
    if cls is list or cls is tuple:
        return len(value) > 8 and _all_scalars(value[:limit])
    if cls is dict:
        return (dict.__len__(value) > 8 and _all_scalars(_islice(dict.keys(value), limit))
                and _all_scalars(_islice(dict.values(value), limit)))
    return False


class _RenderState(threading.local):
    """The rendering under way on this thread.  ``left``: what is left of its
    text budget (``max_size`` characters at the start): once the scalars
    rendered so far fill it, nested containers and objects are shown as
    ``<Type…>``.  ``again``: the value was rendered before, so children may
    be reused.  Class attributes are each new thread's defaults."""

    left = 0
    again = False


_spent = _RenderState()
#: children whose forms a Renderer remembers (all are forgotten when full)
_MEMO_SIZE = 512
#: values whose form is made of parts (items, entries, fields, args)
_SHOWN_WITH_PARTS = (list, tuple, dict, set, frozenset, BaseException)
#: classes ``_form`` shows by name (functions, modules, generators...)
_NAMED_TYPES = (types.FunctionType, types.BuiltinFunctionType, types.MethodType,
                types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType)

_OPAQUE_MODULES = ("pytest_escope", "_pytest", "pluggy", "xdist", "execnet")


def _instance_dict(info: "_TypeInfo", value: Any) -> dict | None:
    """The instance's own ``__dict__`` through the interpreter's getset
    descriptor only (never a user property), or None."""
    if info.dict_getter is None:
        return None
    try:
        ns = info.dict_getter(value)
    except Exception as recorder_err:
        if owned_by_test(recorder_err):
            raise
        return None
    return ns if type(ns) is dict else None


class Renderer:
    """Bounded, side-effect free rendering of values, with redaction.

    One instance per recording; it caches per-type decisions.  ``render``
    never raises: a value it cannot read is shown as ``<unrenderable>``.
    """

    def __init__(
        self,
        *,
        max_size: int = 1000,
        max_depth: int = 3,
        max_items: int = 30,
        redact: re.Pattern[str] | None = None,
        custom: Any = None,
    ) -> None:
        self.max_size = max_size
        self.max_depth = max_depth
        self.max_items = max_items
        self.redact = redact
        self.custom = custom  # callable(value) -> str | None, from hook plugins
        #: ``_hotpath.render_scalar_sequence`` when the collector may use
        #: compiled code: ``render``'s common case (a list or tuple of scalars)
        self.compiled_sequence: Any = None
        #: ``_hotpath.render_tree`` when the collector may use compiled code:
        #: nested builtin containers and objects shown field by field
        self.compiled_tree: Any = None
        #: id(class) -> (class, kind) for ``compiled_tree`` (``c_kind``)
        self._c_kinds: dict[int, tuple] = {}
        #: exact str key -> whether it names a secret, for ``compiled_tree``
        self._secret_names: dict[str, bool] = {}
        self._types: dict[int, tuple[type, _TypeInfo]] = {}
        self._exceptions: dict[tuple, tuple[type, tuple[str, str, str | None, int]]] = {}
        #: id(child) -> (class, fingerprint, budget before, budget after, form,
        #: the scalars kept alive): see ``_remembered_child``
        self._memo: dict[int, tuple] = {}
        self.faults = 0
        self.inject_fault = False  # ESCOPE_TEST_FAULT=render (session.py)

    def is_secret_name(self, name: str) -> bool:
        return self.redact is not None and self.redact.search(name) is not None

    def redacted(self, value: Any) -> tuple[str, str, None, int]:
        return (self._type_name(type(value)), REDACTED, None, FLAG_REDACTED)

    def render_again(self, value: Any) -> tuple[str, str, str | None, int]:
        """``render`` for a value rendered before that changed: its direct
        children that show the same objects as then are not rendered again
        (``_remembered_child``).  A first rendering does without that
        bookkeeping, which costs more than it saves on small values."""
        spent = _spent
        spent.again = True
        try:
            return self.render(value)
        finally:
            spent.again = False

    def render(self, value: Any) -> tuple[str, str, str | None, int]:
        """Render ``value``; ``detail`` comes back as JSON text or None."""
        if self.custom is None and not self.inject_fault and issubclass(type(value), BaseException):
            key = self._exception_key(value)
            if key is not None:
                known = self._exceptions.get(key)
                if known is not None and known[0] is type(value):
                    return known[1]
                rendered = self._render(value)
                if len(self._exceptions) < 1000:
                    self._exceptions[key] = (type(value), rendered)
                return rendered
        return self._render(value)

    def _exception_key(self, value: BaseException) -> tuple | None:
        """What an exception's rendering depends on, when that is its class
        and its scalar args alone (no fields): the rendering is then reused.
        A suite raising the same ``ValueError`` 20,000 times (more-itertools'
        ``iter_index`` ends that way) rendered it 20,000 times.  Keyed by
        ``id`` of the class and of each arg's type: hashing a class could
        run a metaclass's ``__hash__``, and ``True == 1``."""
        cls = type(value)
        info = self._info(cls)
        if info.slot_getters or _instance_dict(info, value):
            return None
        try:
            args = _exc_args(value)
        except Exception as recorder_err:
            if owned_by_test(recorder_err):
                raise
            return None
        if type(args) is not tuple or len(args) > 5:
            return None
        kinds = tuple(id(type(a)) for a in args)
        if not _EXCEPTION_ARG_IDS.issuperset(kinds):
            return None
        return (id(cls), args, kinds)

    def _render(self, value: Any) -> tuple[str, str, str | None, int]:
        if self.custom is None and not self.inject_fault:
            # C first (a list of scalars, then nested values); None: Python renders it
            try:
                done = None
                if self.compiled_sequence is not None:
                    done = self.compiled_sequence(value, self.max_size, self.max_items)
                if done is None and self.compiled_tree is not None:
                    done = self.compiled_tree(value, self.max_size, self.max_items, self.max_depth,
                                              None if self.redact is None else self.redact.search,
                                              self._secret_key, self._c_kinds, self.c_kind, self._secret_names,
                                              self.form_for_c)
            except Exception as recorder_err:
                if owned_by_test(recorder_err):
                    raise
                done = None
            if done is not None:
                return done
        type_name, text, form, flags = self.render_form(value)
        return (type_name, text, detail_json(form), flags)

    def form_for_c(self, value: Any, depth: int, left: int) -> tuple[str, str, int, int]:
        """For ``_hotpath.render_tree``: a value ``depth`` levels down that C
        does not render, rendered as ``_form`` renders it with ``left``
        characters of text budget: (text, its stored form as JSON, flags,
        the budget left).  The rest of the value stays in C."""
        spent = _spent
        outer = getattr(spent, "left", None)
        spent.left = left
        try:
            form = self._form(value, depth)
            left = spent.left
        finally:
            spent.left = outer
        flags = (FLAG_TRUNCATED if form.pop("_trunc", False) else 0) | \
            (FLAG_REDACTED if form.pop("_redacted", False) else 0)
        return (form["repr"], _encode_json(compact_child(form)), flags, left)

    def c_kind(self, cls: type) -> None:
        """Record, for ``_hotpath.render_tree``, how ``_form`` shows
        instances of ``cls``: ``(0, name[, dict getter])`` in Python, ``(1,
        name[, dict getter])`` as ``<name>`` (opaque), ``(2, name, dict getter, slot getters)`` field
        by field (``_object``), ``(3, ...)`` the same as ``<name qualname>``
        (functions, methods, generators), ``(4, ...)`` a container subclass
        (``_container`` with its fields), ``(5, name)`` a class shown as a
        value (``<class 'qualname'>``, type name ``type``), ``(6, name, dict getter, slot getters)``
        an exception (``_exception``: its args, then its fields).  The checks are ``_form``'s, in
        its order."""
        info = self._info(cls)
        # a value shown in Python or as <name> still has the nested print of
        # any object (``_nested_print``: its instance dict), which C makes
        # from this getter; a container subclass's is its items', left to Python
        plain = not issubclass(cls, (list, tuple, set, frozenset, dict))
        kind: tuple = (0, info.name, info.dict_getter) if plain else (0, info.name)
        if not info.secret:
            if info.opaque:
                kind = (1, info.name, info.dict_getter) if plain else (1, info.name)
            elif issubclass(cls, (list, tuple, set, frozenset, dict)):
                kind = (4, info.name, info.dict_getter, tuple(info.slot_getters))
            elif issubclass(cls, (str, bytes, int, float, complex)):
                pass
            elif issubclass(cls, type):
                kind = (5, info.name)
            elif any(cls is t for t in _NAMED_TYPES):
                kind = (3, info.name, info.dict_getter, tuple(info.slot_getters))
            elif issubclass(cls, BaseException):
                kind = (6, info.name, info.dict_getter, tuple(info.slot_getters))
            elif not (cls is types.ModuleType or info.safe_repr or info.aware or info.zone or info.enum):
                kind = (2, info.name, info.dict_getter, tuple(info.slot_getters))
        self._c_kinds[id(cls)] = (cls, kind)

    def render_scalar(self, value: Any) -> tuple[str, str, None, int]:
        """``render`` for a value whose type is in ``IMMUTABLE_SCALARS``,
        without building a form: the writer renders millions of these."""
        cls = type(value)
        try:
            text = self._scalar_text(value, cls)
        except Exception as recorder_err:
            if owned_by_test(recorder_err):
                raise
            self.faults += 1
            return (self._type_name(cls), "<unrenderable>", None, FLAG_UNRENDERABLE)
        if len(text) > self.max_size:
            return (self._type_name(cls), text[: self.max_size - 1] + "…", None, FLAG_TRUNCATED)
        return (self._type_name(cls), text, None, 0)

    def render_form(self, value: Any) -> tuple[str, str, dict | None, int]:
        """Render ``value``, leaving the structured form as a dict: turning
        it into JSON is left to the writer thread, off the test's path."""
        spent = _spent
        outer = getattr(spent, "left", None)  # a hook's renderer may nest a rendering
        spent.left = self.max_size
        try:
            if self.inject_fault:
                raise RuntimeError("injected fault (ESCOPE_TEST_FAULT=render)")
            form = self._form(value, 0)
        except RecursionError:
            return (self._type_name(type(value)), "<too deep>", None, FLAG_UNRENDERABLE)
        except Exception as recorder_err:  # never let a hostile object break the recorder
            if owned_by_test(recorder_err):
                raise
            self.faults += 1
            return (self._type_name(type(value)), "<unrenderable>", None, FLAG_UNRENDERABLE)
        finally:
            spent.left = outer
        text = form["repr"]
        flags = 0
        if form.pop("_trunc", False):
            flags |= FLAG_TRUNCATED
        if form.pop("_redacted", False):
            flags |= FLAG_REDACTED
        if len(text) > self.max_size:
            text = text[: self.max_size - 1] + "…"
            flags |= FLAG_TRUNCATED
        type_name = form.pop("type")
        form.pop("repr")
        return (type_name, text, form or None, flags)

    # -- internals -------------------------------------------------------

    def _info(self, cls: type) -> _TypeInfo:
        entry = self._types.get(id(cls))
        if entry is None:
            # Keyed by id, with the class kept alive so the id stays its own.
            entry = self._types[id(cls)] = (cls, _TypeInfo(cls))
        return entry[1]

    def _type_name(self, cls: type) -> str:
        try:
            return self._info(cls).name
        except Exception as recorder_err:
            if owned_by_test(recorder_err):
                raise
            return "?"

    def _scalar_text(self, value: Any, cls: type) -> str:
        limit = self.max_size
        if cls is str or issubclass(cls, str):
            if str.__len__(value) > limit:
                return str.__repr__(str.__getitem__(value, slice(0, limit))) + "…"
            return str.__repr__(value)
        if cls is bytes or issubclass(cls, bytes):
            if bytes.__len__(value) > limit:
                return bytes.__repr__(bytes.__getitem__(value, slice(0, limit))) + "…"
            return bytes.__repr__(value)
        if cls is bool or issubclass(cls, bool):
            return "True" if value is True else "False" if value is False else int.__repr__(value)
        if cls is int or issubclass(cls, int):
            if int.bit_length(value) > 3000:
                return f"<int of {int.bit_length(value)} bits>"
            return int.__repr__(value)
        if cls is float or issubclass(cls, float):
            return float.__repr__(value)
        if cls is complex or issubclass(cls, complex):
            return complex.__repr__(value)
        return "None"

    def _form(self, value: Any, depth: int) -> dict[str, Any]:
        cls = type(value)
        if id(cls) in IMMUTABLE_IDS:
            text = self._scalar_text(value, cls)
            _spent.left -= len(text)
            return {"type": self._type_name(cls), "repr": text}
        if self.custom is not None:
            custom_text = self.custom(value)
            if custom_text is not None:
                return {"type": self._type_name(cls), "repr": str(custom_text)}
        info = self._info(cls)
        name = info.name
        if info.secret:
            return {"type": name, "repr": ENVIRON_MARK, "_redacted": True}
        if info.opaque:
            return {"type": name, "repr": f"<{name}>"}
        if issubclass(cls, (list, tuple, set, frozenset, dict)):
            return self._container(value, cls, name, info, depth)
        if issubclass(cls, (str, bytes, int, float, complex)):
            return {"type": name, "repr": f"{name}({self._scalar_text(value, cls)})"}
        if issubclass(cls, type):
            # not through the per-class cache, which keeps each class it knows
            # alive: a class made and dropped in a test (attrs replaces a
            # slotted class by a new one) must die as it does without escope
            return {"type": "type", "repr": f"<class '{_class_name(value)}'>"}
        if cls is types.FunctionType or cls is types.BuiltinFunctionType or cls is types.MethodType:
            func = value.__func__ if cls is types.MethodType else value
            ftype = type(func)
            if ftype is types.FunctionType or ftype is types.BuiltinFunctionType:
                qual = func.__qualname__
            else:
                qual = self._type_name(ftype)
            return {"type": name, "repr": f"<{name} {qual}>"}
        if cls is types.ModuleType:
            mod_name = types.ModuleType.__dict__["__dict__"].__get__(value).get("__name__", "?")
            return {"type": "module", "repr": f"<module {mod_name!s}>"}
        if cls is types.GeneratorType or cls is types.CoroutineType or cls is types.AsyncGeneratorType:
            return {"type": name, "repr": f"<{name} {value.__qualname__}>"}
        if issubclass(cls, BaseException):
            return self._exception(value, name, info, depth)
        if info.safe_repr and (cls is not re.Pattern or id(type(_pattern_source(value))) in _PLAIN_PATTERN_IDS) \
                and (not info.path or _plain_path(value)):
            text = repr(value)
            return {"type": name, "repr": text}
        if info.aware:
            return {"type": name, "repr": self._aware_text(value, cls, depth)}
        if info.zone and _trusted_tzinfo(value):
            return {"type": name, "repr": repr(value)}
        if info.enum:
            return self._enum(value, name, info, depth)
        return self._object(value, name, info, depth)

    def _child(self, value: Any, depth: int, key: Any = None) -> dict[str, Any]:
        if key is not None and self.redact is not None and (
                self.redact.search(key) is not None if type(key) is str else self._secret_key(key)):
            return {"type": self._type_name(type(value)), "repr": REDACTED, "_redacted": True}
        spent = _spent
        spent.left -= 2  # the separator before it in its parent's text
        if id(type(value)) in IMMUTABLE_IDS:
            return self._form(value, depth)
        if depth >= self.max_depth or spent.left <= 0:
            # past the depth limit, or past what the text can show: a value
            # costs what its rendering shows, never a walk over a big graph
            name = self._type_name(type(value))
            stub = f"<{name}…>"
            spent.left -= len(stub)
            return {"type": name, "repr": stub, "_trunc": True}
        if depth == 1 and spent.again and self.custom is None and _big_scalar_container(value, self.max_items):
            return self._remembered_child(value, depth)
        return self._form(value, depth)

    def _remembered_child(self, value: Any, depth: int) -> dict[str, Any]:
        """A mutable child of the value being rendered, rendered again only
        if what its form shows changed.  An object whose one field changed
        (``self.hits += 1`` on a cache of a thousand entries) is rendered at
        every change; its unchanged children cost a walk over the ids their
        forms show, not a rendering.  A child's form is reused when the
        child is the same object showing the same objects, rendered from the
        same place in the text budget: the result equals a fresh rendering."""
        spent = _spent
        left = spent.left
        cls = type(value)
        alive: list = []
        try:
            shown = self._shown(value, self.max_depth - depth, alive)
        except Exception as recorder_err:
            if owned_by_test(recorder_err):
                raise
            return self._form(value, depth)
        memo = self._memo
        known = memo.get(id(value))
        if known is not None and known[0] is cls and known[2] == left and known[1] == shown:
            spent.left = known[3]
            return dict(known[4])  # the parent pops its flags: a copy of the top level
        form = self._form(value, depth)
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        # the scalars it shows are kept alive: their ids stay theirs
        memo[id(value)] = (cls, shown, left, spent.left, dict(form), tuple(alive))
        return form

    def _shown(self, value: Any, levels: int, alive: list) -> Any:
        """The ids of everything ``_form`` reads to render ``value`` with
        ``levels`` levels below it: equal results, equal forms.  C-level
        reads only, as ``_form`` does (no user code)."""
        cls = type(value)
        if id(cls) in IMMUTABLE_IDS:
            alive.append(value)
            return id(value)
        if levels <= 0:
            return id(cls)  # shown as <Type…>: its type alone
        if cls is list or cls is tuple:
            items = value[:self.max_items]
            if _all_scalars(items):  # the common case, without a call per item
                alive.extend(items)
                return (id(cls), len(value), *map(id, items))
        info = self._info(cls)
        if info.opaque or info.safe_repr or info.secret or not issubclass(cls, _SHOWN_WITH_PARTS) and (
                issubclass(cls, type) or cls is types.FunctionType or cls is types.BuiltinFunctionType
                or cls is types.MethodType or cls is types.ModuleType or cls is types.GeneratorType
                or cls is types.CoroutineType or cls is types.AsyncGeneratorType):
            return (id(cls), id(value))
        limit = self.max_items
        below = levels - 1
        out: list = [id(cls)]
        if issubclass(cls, dict):
            out.append(dict.__len__(value))
            keys = list(_islice(dict.keys(value), limit))
            vals = list(_islice(dict.values(value), limit))
            if _all_scalars(keys) and _all_scalars(vals):
                alive.extend(keys)
                alive.extend(vals)
                out.extend(map(id, keys))
                out.extend(map(id, vals))
            else:
                for k, v in zip(keys, vals):
                    out.append(self._shown(k, below, alive))
                    out.append(self._shown(v, below, alive))
        elif issubclass(cls, list):
            out.append(list.__len__(value))
            out.extend([self._shown(v, below, alive) for v in list.__getitem__(value, slice(0, limit))])
        elif issubclass(cls, tuple):
            out.append(tuple.__len__(value))
            out.extend([self._shown(v, below, alive) for v in tuple.__getitem__(value, slice(0, limit))])
        elif issubclass(cls, (set, frozenset)):
            base = set if issubclass(cls, set) else frozenset
            out.append(base.__len__(value))
            out.extend([self._shown(v, below, alive) for v in _islice(base.__iter__(value), limit)])
        elif issubclass(cls, BaseException):
            args = _exc_args(value)
            if type(args) is tuple:
                out.extend([self._shown(a, below, alive) for a in tuple.__getitem__(args, slice(0, 5))])
        ns = _instance_dict(info, value)
        if ns is not None and id(cls) not in _PLAIN_CONTAINER_IDS:
            out.append(dict.__len__(ns))
            for k, v in _islice(dict.items(ns), limit):
                if type(k) is str:
                    alive.append(k)
                    out.append(id(k))
                    out.append(self._shown(v, below, alive))
        for _slot, getter in info.slot_getters:
            try:
                v = getter(value)
            except AttributeError:
                out.append(None)
                continue
            if id(type(v)) in IMMUTABLE_IDS:
                alive.append(v)
                out.append(id(v))
            elif below <= 0:
                out.append(id(type(v)))
            else:
                out.append(self._shown(v, below, alive))
        return tuple(out)

    def _secret_key(self, key: Any) -> bool:
        """A str or bytes key (``{b"password": ...}``, ``os.environ._data``)
        that matches a redaction pattern.  Bytes are matched as latin-1,
        which maps each byte to one character, so an ASCII pattern matches
        whatever the encoding; read through the base type, never a user
        method of a subclass."""
        cls = type(key)
        if cls is str or issubclass(cls, str):
            text = str.__str__(key)
        elif cls is bytes or issubclass(cls, bytes):
            text = bytes.decode(key, "latin-1")
        else:
            return False
        return self.redact.search(text) is not None

    def _container(self, value: Any, cls: type, name: str, info: _TypeInfo, depth: int) -> dict[str, Any]:
        limit = self.max_items
        trunc = False
        redacted = False
        if issubclass(cls, dict):
            size = dict.__len__(value)
            entries = []
            parts = []
            for i, (k, v) in enumerate(dict.items(value)):
                if i >= limit:
                    trunc = True
                    break
                kf = self._child(k, depth + 1)
                vf = self._child(v, depth + 1, key=k)
                # every child's flags are taken out of its form, none left in the detail
                trunc = kf.pop("_trunc", False) | vf.pop("_trunc", False) | trunc
                redacted = kf.pop("_redacted", False) | vf.pop("_redacted", False) | redacted
                entries.append([kf, vf])
                parts.append(f"{kf['repr']}: {vf['repr']}")
            body = "{" + ", ".join(parts) + (", …" if size > limit else "") + "}"
            form: dict[str, Any] = {"type": name, "len": size, "entries": entries}
        else:
            if issubclass(cls, list):
                size = list.__len__(value)
                seq = list.__getitem__(value, slice(0, limit))
                open_, close = "[", "]"
            elif issubclass(cls, tuple):
                size = tuple.__len__(value)
                seq = tuple.__getitem__(value, slice(0, limit))
                open_, close = "(", ",)" if size == 1 else ")"
            else:
                base = set if issubclass(cls, set) else frozenset
                size = base.__len__(value)
                seq = []
                for i, item in enumerate(base.__iter__(value)):
                    if i >= limit:
                        break
                    seq.append(item)
                open_, close = ("{", "}") if size else ("set(", ")")
            items = []
            for item in seq:
                f = self._child(item, depth + 1)
                trunc = f.pop("_trunc", False) | trunc
                redacted = f.pop("_redacted", False) | redacted
                items.append(f)
            body = open_ + ", ".join(f["repr"] for f in items) + (", …" if size > limit else "") + close
            form = {"type": name, "len": size, "items": items}
        if size > limit:
            trunc = True
        if cls not in (list, tuple, dict, set, frozenset):
            fields = self._fields(value, info, depth)
            if fields:
                for f in fields.values():
                    trunc = f.pop("_trunc", False) | trunc
                    redacted = f.pop("_redacted", False) | redacted
                form["fields"] = fields
            body = f"{name}({body})"
        form["repr"] = body
        if trunc:
            form["_trunc"] = True
        if redacted:
            form["_redacted"] = True
        return form

    def _fields(self, value: Any, info: _TypeInfo, depth: int) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        ns = _instance_dict(info, value)
        if ns is not None:
            for i, (k, v) in enumerate(dict.items(ns)):
                if i >= self.max_items:
                    break
                if type(k) is str:
                    fields[k] = self._child(v, depth + 1, key=k)
        for slot, getter in info.slot_getters:
            if len(fields) >= self.max_items:
                break
            try:
                v = getter(value)
            except AttributeError:
                continue
            fields[slot] = self._child(v, depth + 1, key=slot)
        return fields

    def _object(self, value: Any, name: str, info: _TypeInfo, depth: int) -> dict[str, Any]:
        fields = self._fields(value, info, depth)
        if not fields and info.dict_getter is None and not info.slot_getters:
            return {"type": name, "repr": f"<{name} object>"}
        trunc = any([f.pop("_trunc", False) for f in fields.values()])
        redacted = any([f.pop("_redacted", False) for f in fields.values()])
        text = f"{name}(" + ", ".join(f"{k}={f['repr']}" for k, f in fields.items()) + ")"
        form = {"type": name, "repr": text, "fields": fields}
        if trunc:
            form["_trunc"] = True
        if redacted:
            form["_redacted"] = True
        return form

    def _aware_text(self, value: Any, cls: type, depth: int) -> str:
        """A datetime's or time's repr, with a tzinfo that is not the
        stdlib's own shown by the renderer instead of by its own repr."""
        tz = _datetime_tzinfo[id(cls)](value)
        if _trusted_tzinfo(tz):
            return repr(value)
        naive = repr(cls.replace(value, tzinfo=None))
        return f"{naive[:-1]}, tzinfo={self._child(tz, depth + 1)['repr']})"

    def _enum(self, value: Any, name: str, info: _TypeInfo, depth: int) -> dict[str, Any]:
        """``<Color.RED: 1>`` from the member's ``_name_`` and ``_value_``,
        the value rendered like any other."""
        ns = _instance_dict(info, value)
        if ns is None or "_value_" not in ns:
            return {"type": name, "repr": f"<{name}>"}
        member = ns.get("_name_")
        inner = self._child(ns["_value_"], depth + 1)
        head = f"{name}.{member}" if type(member) is str else name
        form: dict[str, Any] = {"type": name, "repr": f"<{head}: {inner['repr']}>", "fields": {"value": inner}}
        if inner.pop("_trunc", False):
            form["_trunc"] = True
        if inner.pop("_redacted", False):
            form["_redacted"] = True
        return form

    def _exception(self, value: BaseException, name: str, info: _TypeInfo, depth: int) -> dict[str, Any]:
        try:
            args = _exc_args(value)
        except Exception as recorder_err:
            if owned_by_test(recorder_err):
                raise
            args = ()
        arg_forms = [self._child(a, depth + 1) for a in tuple.__getitem__(args, slice(0, 5))] if type(args) is tuple else []
        text = f"{name}(" + ", ".join(f["repr"] for f in arg_forms) + ")"
        form: dict[str, Any] = {"type": name, "repr": text, "args": arg_forms}
        fields = self._fields(value, info, depth)
        if fields:
            form["fields"] = fields
        # every child's flags are taken out of its form, none left in the detail
        children = [*arg_forms, *fields.values()]
        if any([f.pop("_trunc", False) for f in children]):
            form["_trunc"] = True
        if any([f.pop("_redacted", False) for f in children]):
            form["_redacted"] = True
        return form

    def message(self, exc: BaseException) -> str:
        """One-line ``Type: message`` for an exception, from its args only."""
        type_name, text, _detail, _flags = self.render(exc)
        try:
            args = _exc_args(exc)
        except Exception as recorder_err:
            if owned_by_test(recorder_err):
                raise
            args = ()
        if type(args) is tuple and len(args) == 1 and type(args[0]) is str:
            msg = args[0]
        elif type(args) is tuple and args:
            msg = text[len(type_name) + 1 : -1]
        else:
            msg = ""
        return f"{type_name}: {msg}" if msg else type_name


# -- change detection ---------------------------------------------------------

_islice = itertools.islice
_SHALLOW_LIMIT = 30
_NESTED_LIMIT = 10


def _nested_print(value: Any, renderer: "Renderer") -> Any:
    """One level inside a container: enough to see ``x[0].append(1)``."""
    cls = type(value)
    if id(cls) in IMMUTABLE_IDS:
        return None
    if issubclass(cls, list):
        return (list.__len__(value), *map(id, list.__getitem__(value, slice(0, _NESTED_LIMIT))))
    if issubclass(cls, dict):
        return (dict.__len__(value), *map(id, _islice(dict.values(value), _NESTED_LIMIT)))
    if issubclass(cls, (set, frozenset)):
        return (set.__len__(value) if issubclass(cls, set) else frozenset.__len__(value),)
    ns = _instance_dict(renderer._info(cls), value)
    if ns is not None:
        return (dict.__len__(ns), *map(id, _islice(dict.values(ns), _NESTED_LIMIT)))
    return None


def _all_scalars(items: Any) -> bool:
    """Every item an immutable scalar; C-level only (classes are compared by
    id, never hashed: a metaclass's ``__hash__`` would be user code)."""
    return IMMUTABLE_IDS.issuperset(map(id, map(type, items)))


#: the words a packed fingerprint uses for a nested tuple's ends and for None:
#: no id (an address) or length takes these values
_FP_OPEN, _FP_CLOSE, _FP_NONE = 2**64 - 15, 2**64 - 14, 2**64 - 13


def packed_fingerprint(fp: tuple) -> Any:
    """``fingerprint``'s tuple in the form the compiled fingerprint gives
    (``_hotpath.fingerprint_tree``): bytes of native 64-bit words, one per
    int, a marker for None and around each nested tuple; () stays ().
    Equal tuples, equal bytes: a row of ``Collector.objs`` holds these
    bytes instead of a tuple of Python ints, five times smaller."""
    if fp == ():
        return ()
    words = array.array("Q")

    def put(part: tuple) -> None:
        for x in part:
            if x is None:
                words.append(_FP_NONE)
            elif type(x) is tuple:
                words.append(_FP_OPEN)
                put(x)
                words.append(_FP_CLOSE)
            else:
                words.append(x)

    put(fp)
    return words.tobytes()


def fingerprint(value: Any, renderer: "Renderer") -> Any:
    """An identity-level summary of a mutable value, two levels deep.

    Equal fingerprints mean nothing the renderer would show at the first two
    levels was replaced, added or removed; computing one reads only C-level
    slots (ids and lengths), so it runs no user code and costs a fraction
    of a rendering.  The tracer re-renders only when it changes.
    """
    cls = type(value)
    if id(cls) not in _PLAIN_CONTAINER_IDS and issubclass(cls, _CONTAINERS):
        # a container subclass shows its instance fields too (a list subclass
        # that keeps its items in a field of its own shows nothing else)
        fields = _fields_print(value, cls, renderer)
        if fields is not None:
            return (_container_print(value, cls, renderer), fields)
    return _container_print(value, cls, renderer)


#: by id: hashing a class could run a metaclass's ``__hash__``
_PLAIN_CONTAINER_IDS = frozenset(map(id, (list, tuple, dict, set, frozenset)))
_CONTAINERS = (list, tuple, dict, set, frozenset)


def _fields_print(value: Any, cls: type, renderer: "Renderer") -> Any:
    info = renderer._info(cls)
    ns = _instance_dict(info, value)
    if ns is None:
        return None
    vals = list(_islice(dict.values(ns), _SHALLOW_LIMIT))
    return (dict.__len__(ns), *map(id, _islice(dict.keys(ns), _SHALLOW_LIMIT)), *map(id, vals),
            *[_nested_print(v, renderer) for v in vals])


def _container_print(value: Any, cls: type, renderer: "Renderer") -> Any:
    if issubclass(cls, list):
        items = list.__getitem__(value, slice(0, _SHALLOW_LIMIT))
        if _all_scalars(items):  # the common case: nothing inside can change
            return (list.__len__(value), *map(id, items))
        return (list.__len__(value), *map(id, items), *[_nested_print(v, renderer) for v in items])
    if issubclass(cls, tuple):
        items = tuple.__getitem__(value, slice(0, _SHALLOW_LIMIT))
        if _all_scalars(items):
            return (tuple.__len__(value), *map(id, items))
        return (tuple.__len__(value), *map(id, items), *[_nested_print(v, renderer) for v in items])
    if issubclass(cls, dict):
        vals = list(_islice(dict.values(value), _SHALLOW_LIMIT))
        return (dict.__len__(value), *map(id, _islice(dict.keys(value), _SHALLOW_LIMIT)), *map(id, vals),
                *[_nested_print(v, renderer) for v in vals])
    if issubclass(cls, set):
        return (set.__len__(value), *map(id, _islice(set.__iter__(value), _SHALLOW_LIMIT)))
    if issubclass(cls, frozenset):
        return (frozenset.__len__(value),)
    info = renderer._info(cls)
    if info.opaque:
        return ()
    parts: list = []
    ns = _instance_dict(info, value)
    if ns is not None:
        vals = list(_islice(dict.values(ns), _SHALLOW_LIMIT))
        parts.append(dict.__len__(ns))
        parts.extend(map(id, _islice(dict.keys(ns), _SHALLOW_LIMIT)))
        parts.extend(map(id, vals))
        parts.extend([_nested_print(v, renderer) for v in vals])
    for _slot, getter in info.slot_getters:
        try:
            v = getter(value)
        except AttributeError:
            parts.append(None)
            continue
        parts.append(id(v))
        parts.append(_nested_print(v, renderer))
    if issubclass(cls, BaseException):
        # its args live in a C field, not in __dict__: ValueError('odd', 0)
        # and ValueError('odd', 1) must not share a fingerprint
        args = _exc_args(value)
        if type(args) is tuple:
            parts.append(tuple.__len__(args))
            parts.extend(map(id, tuple.__getitem__(args, slice(0, _SHALLOW_LIMIT))))
    return tuple(parts)


def kept_alive(value: Any, renderer: "Renderer") -> tuple:
    """The immutable scalars whose ids ``fingerprint`` holds at its first
    level, for the snapshot's entry to keep.

    A fingerprint is made of ids, and an id is only an object's address: once
    the object is freed, a new one can take it.  A generator yielding
    ``(1000 + i,)`` frees each tuple and each int before the next, and the
    next tuple, at the same address and holding an int at the same address,
    would match the old fingerprint: the film would show ``(1000,)`` again
    and again.  An entry holding the scalars it names keeps their addresses
    theirs.
    Scalars only: keeping any other object alive could delay its finalizer
    and change what the test does.
    """
    cls = type(value)
    if id(cls) not in _PLAIN_CONTAINER_IDS and issubclass(cls, _CONTAINERS):
        ns = _instance_dict(renderer._info(cls), value)
        if ns is not None:
            fields = [*_islice(dict.keys(ns), _SHALLOW_LIMIT), *_islice(dict.values(ns), _SHALLOW_LIMIT)]
            return _kept_items(value, cls, renderer) + tuple(v for v in fields if id(type(v)) in IMMUTABLE_IDS)
    return _kept_items(value, cls, renderer)


def _kept_items(value: Any, cls: type, renderer: "Renderer") -> tuple:
    if issubclass(cls, list):
        items: Iterable = list.__getitem__(value, slice(0, _SHALLOW_LIMIT))
    elif issubclass(cls, tuple):
        items = tuple.__getitem__(value, slice(0, _SHALLOW_LIMIT))
    elif issubclass(cls, dict):
        items = [*_islice(dict.keys(value), _SHALLOW_LIMIT), *_islice(dict.values(value), _SHALLOW_LIMIT)]
    elif issubclass(cls, set):
        items = list(_islice(set.__iter__(value), _SHALLOW_LIMIT))
    elif issubclass(cls, frozenset):
        return ()
    else:
        info = renderer._info(cls)
        if info.opaque:
            return ()
        ns = _instance_dict(info, value)
        items = [] if ns is None else [*_islice(dict.keys(ns), _SHALLOW_LIMIT),
                                       *_islice(dict.values(ns), _SHALLOW_LIMIT)]
        if issubclass(cls, BaseException):
            args = _exc_args(value)
            if type(args) is tuple:
                items += tuple.__getitem__(args, slice(0, _SHALLOW_LIMIT))
    return tuple(v for v in items if id(type(v)) in IMMUTABLE_IDS)
