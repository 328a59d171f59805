"""Values (SPEC 3.4): no user code runs, mutation is a change, aliases agree,
secrets never reach the disk, one value stays bounded."""

from __future__ import annotations

import collections
import datetime
import decimal
import enum

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import BACKENDS, Project, Rec, Run, all_bytes, clean_env, module_project, outcomes, write_files

VALUES = {
    "test_hostile.py": '''
        import io

        CALLS = {"prop": 0, "getattr": 0, "getattribute": 0, "descr": 0, "meta": 0}
        LOG = []


        class Hostile:
            def __init__(self):
                self.payload = [1, 2]

            def __repr__(self):
                raise RuntimeError("repr")

            def __str__(self):
                raise RuntimeError("str")

            def __eq__(self, other):
                raise RuntimeError("eq")

            def __hash__(self):
                raise RuntimeError("hash")

            def __len__(self):
                raise RuntimeError("len")

            def __bool__(self):
                raise RuntimeError("bool")

            def __iter__(self):
                raise RuntimeError("iter")


        class HostileList(list):
            def __repr__(self):
                raise RuntimeError("list repr")

            def __len__(self):
                raise RuntimeError("list len")

            def __iter__(self):
                raise RuntimeError("list iter")

            def __getitem__(self, i):
                raise RuntimeError("list getitem")


        class HostileDict(dict):
            def items(self):
                raise RuntimeError("dict items")

            def __iter__(self):
                raise RuntimeError("dict iter")

            def __len__(self):
                raise RuntimeError("dict len")


        class Meta(type):
            def __repr__(cls):
                CALLS["meta"] += 1
                raise RuntimeError("meta repr")

            def __hash__(cls):
                CALLS["meta"] += 1
                raise RuntimeError("meta hash")

            def __eq__(cls, other):
                CALLS["meta"] += 1
                raise RuntimeError("meta eq")


        class WithMeta(metaclass=Meta):
            pass


        def give(x):
            return x


        def gen_of(x):
            yield x


        def test_hostile_objects():
            h = Hostile()
            hl = HostileList([1, 2, 3])
            hd = HostileDict(a=1)
            kls = WithMeta
            obj = WithMeta()
            both = [h, hl, hd, obj]
            h.payload.append(3)
            # returned and yielded: the return/yield callbacks look at the value's type
            got = give(obj)
            more = list(gen_of(obj))
            also = give(kls)
            assert got is obj and more[0] is obj and also is kls
            print("HOSTILE", both[0] is h, CALLS["meta"])
            assert both[0] is h and CALLS["meta"] == 0


        class Counted:
            def __get__(self, obj, owner):
                CALLS["descr"] += 1
                return 42


        class Sneaky:
            counted = Counted()

            def __init__(self):
                self._x = 5

            @property
            def x(self):
                CALLS["prop"] += 1
                return self._x

            def __getattr__(self, name):
                CALLS["getattr"] += 1
                raise AttributeError(name)


        class Spy:
            def __init__(self):
                self.inside = 1

            def __getattribute__(self, name):
                CALLS["getattribute"] += 1
                return object.__getattribute__(self, name)


        class Slotted:
            __slots__ = ("a", "b")

            def __init__(self):
                self.a = 1


        def test_side_effects_counted():
            s = Sneaky()
            spy = Spy()
            sl = Slotted()
            value = s.x
            s._x = 6
            value = s.x
            again = [s, spy, sl]
            sl.b = value
            print("CALLS", sorted(CALLS.items()))
            assert CALLS == {"prop": 2, "getattr": 0, "getattribute": 0, "descr": 0, "meta": 0}


        def producer():
            LOG.append("started")
            yield 1
            LOG.append("second")
            yield 2


        def test_generator_not_consumed(tmp_path):
            g = producer()
            it = iter([1, 2, 3])
            m = map(lambda x: LOG.append(("map", x)) or x, [1, 2])
            ge = (LOG.append(("genexpr", y)) for y in range(3))
            p = tmp_path / "data.txt"
            p.write_text("line1\\nline2\\n")
            f = open(p)
            first = f.readline()
            buf = io.StringIO("abc")
            assert LOG == []
            assert next(it) == 1 and list(it) == [2, 3]
            rest = f.read()
            f.close()
            assert first == "line1\\n" and rest == "line2\\n" and buf.read() == "abc"
            assert list(g) == [1, 2] and LOG == ["started", "second"]
    ''',
    "test_mutation.py": '''
        class Account:
            def __init__(self):
                self.total = 0

            def deposit(self, n):
                self.total += n
                return self.total


        def extend(xs, v):
            xs.append(v)


        def test_mutations():
            items = []
            alias = items
            items.append(1)
            items.append(2)
            acct = Account()
            acct.deposit(5)
            acct.deposit(7)
            d = {}
            d["k"] = 1
            d["k"] += 1
            extend(items, 3)
            done = True
            assert alias == [1, 2, 3] and acct.total == 12 and d == {"k": 2}


        class Bag:
            def __init__(self):
                self.items = []

            def add(self, x):
                self.items.append(x)


        def test_alias_inside_another_object():
            bag = Bag()
            inner = bag.items
            bag.add(3)
            done = True
            assert inner == [3]


        def test_closure_rebinds_outer_local():
            count = 0

            def inc():
                nonlocal count
                count += 1

            inc()
            inc()
            done = True
            assert count == 2
    ''',
    "test_secrets.py": '''
        import os
        from pathlib import Path

        import pytest


        @pytest.fixture
        def api_token():
            return os.urandom(16).hex()


        def make_password():
            return os.urandom(16).hex()


        class Login:
            def __init__(self, user, password):
                self.user = user
                self.password = password


        def login(user, password):
            session_key = password[::-1]
            return Login(user, password)


        def test_secrets(api_token, escope):
            password = make_password()
            pin_code = os.urandom(8).hex()
            cfg = {"db": {"password": password}, "token": api_token}
            who = login("bob", password)
            escope.checkpoint("logged in", user="bob", password=password)
            Path(os.environ["SECRETS_OUT"]).write_text(" ".join([password, api_token, pin_code, password[::-1]]))
            assert who.user == "bob" and cfg["token"] == api_token
    ''',
    "test_big.py": '''
        def test_big_values():
            big_list = list(range(100_000))
            big_dict = dict(zip(range(100_000), range(100_000)))
            big_set = set(range(100_000))
            big_str = "x" * 10_000_000
            big_bytes = b"y" * 10_000_000
            big_int = 10 ** 5000
            nested = [[[[[[[[["bottom"]]]]]]]]]
            big_list.append(-1)
            big_list.append(-2)
            assert len(big_str) == 10_000_000 and big_list[-1] == -2
    ''',
}


@pytest.fixture(scope="module")
def values_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return write_files(module_project(tmp_path_factory, "values"), VALUES)


@pytest.fixture(scope="module")
def plain(values_project: Project) -> str:
    res = values_project.run("-rA", "-s", env=clean_env(SECRETS_OUT=str(values_project.path.parent / "plain-secrets")))
    assert res.returncode == 0, res.out
    return res.stdout


@pytest.fixture(scope="module", params=BACKENDS)
def recorded(request: pytest.FixtureRequest, values_project: Project) -> tuple[Run, str, list[str]]:
    esc = values_project.path.parent / f"escope-{request.param}"
    secrets_out = values_project.path.parent / f"secrets-{request.param}"
    res = values_project.run("-rA", "-s", "--escope", "--escope-keep=all", f"--escope-backend={request.param}",
                             f"--escope-dir={esc}", "--escope-redact=pin",
                             env=clean_env(SECRETS_OUT=str(secrets_out)))
    return values_project.latest(esc), res.stdout, secrets_out.read_text().split()


def _lines(out: str, prefix: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln.startswith(prefix)]


# -- no user code runs -----------------------------------------------------------


def test_same_outcomes_with_and_without_escope(plain: str, recorded: tuple[Run, str, list[str]]) -> None:
    run, out, _ = recorded
    assert outcomes(out) == outcomes(plain)
    assert set(outcomes(plain).values()) == {"PASSED"}
    assert _lines(out, "CALLS") == _lines(plain, "CALLS")
    assert _lines(out, "HOSTILE") == _lines(plain, "HOSTILE")
    assert "escope warning" not in out


def test_hostile_objects_are_shown_by_type_and_fields(recorded: tuple[Run, str, list[str]]) -> None:
    run, _, _ = recorded
    rec = run.recording("test_hostile_objects")
    frame = rec.frames("test_hostile_objects")[0]
    last = rec.q("SELECT max(step) FROM events")[0][0]
    assert rec.value_at(frame, "h", last) == ("Hostile", "Hostile(payload=[1, 2, 3])")
    assert rec.value_at(frame, "hl", last) == ("HostileList", "HostileList([1, 2, 3])")
    assert rec.value_at(frame, "hd", last) == ("HostileDict", "HostileDict({'a': 1})")
    assert rec.value_at(frame, "kls", last)[0] == "type"
    assert rec.value_at(frame, "obj", last)[0] == "WithMeta"
    assert rec.q("SELECT count(*) FROM faults")[0][0] == 0
    assert rec.meta["recorder_faults"] == "0"


def test_properties_and_getattr_are_not_called(recorded: tuple[Run, str, list[str]]) -> None:
    run, _, _ = recorded
    rec = run.recording("test_side_effects_counted")
    frame = rec.frames("test_side_effects_counted")[0]
    last = rec.q("SELECT max(step) FROM events")[0][0]
    assert rec.value_at(frame, "s", last) == ("Sneaky", "Sneaky(_x=6)")
    assert rec.value_at(frame, "spy", last) == ("Spy", "Spy(inside=1)")
    assert rec.value_at(frame, "sl", last) == ("Slotted", "Slotted(a=1, b=6)")


def test_iterators_generators_and_files_are_not_consumed(recorded: tuple[Run, str, list[str]]) -> None:
    run, _, _ = recorded
    rec = run.recording("test_generator_not_consumed")
    types = {name: t for _, name, t, _ in rec.bindings()}
    assert types["g"] == "generator"
    assert types["ge"] == "generator"
    assert types["it"] == "list_iterator"
    assert types["m"] == "map"
    assert types["f"] == "TextIOWrapper"
    assert types["buf"] == "StringIO"


# -- mutation is a change; aliases agree -----------------------------------------------


def test_in_place_mutation_is_a_new_snapshot(recorded: tuple[Run, str, list[str]]) -> None:
    run, _, _ = recorded
    rec = run.recording("test_mutations")
    assert rec.history("items", "test_mutations") == ["[]", "[1]", "[1, 2]", "[1, 2, 3]"]
    assert rec.history("d", "test_mutations") == ["{}", "{'k': 1}", "{'k': 2}"]
    assert rec.history("acct", "test_mutations") == ["Account(total=0)", "Account(total=5)", "Account(total=12)"]
    # self.total += n, seen from inside the method
    assert rec.history("self", "Account.deposit") == ["Account(total=0)", "Account(total=5)", "Account(total=12)"]
    assert rec.history("xs", "extend") == ["[1, 2]", "[1, 2, 3]"]


def test_aliases_agree_at_every_step(recorded: tuple[Run, str, list[str]]) -> None:
    run, _, _ = recorded
    rec = run.recording("test_mutations")
    frame = rec.frames("test_mutations")[0]
    steps = [e.step for e in rec.events() if e.function == "test_mutations"]
    compared = 0
    for step in steps:
        a, b = rec.value_at(frame, "items", step), rec.value_at(frame, "alias", step)
        if a is not None and b is not None:
            assert a == b, step
            compared += 1
    assert compared >= 5
    # the callee's name for the same list agrees with the caller's too
    ext = rec.frames("extend")[0]
    ret = [e.step for e in rec.events() if e.function == "extend" and e.kind == "return"][0]
    assert rec.value_at(ext, "xs", ret) == rec.value_at(frame, "items", ret) == ("list", "[1, 2, 3]")


def test_alias_through_another_object_agrees(recorded: tuple[Run, str, list[str]]) -> None:
    run, _, _ = recorded
    rec = run.recording("test_alias_inside_another_object")
    frame = rec.frames("test_alias_inside_another_object")[0]
    line = rec.line_of("test_mutation.py", "done = True", 2)
    done = rec.steps_at("test_alias_inside_another_object", line)[0]
    assert rec.value_at(frame, "bag", done) == ("Bag", "Bag(items=[3])")
    assert rec.value_at(frame, "inner", done) == ("list", "[3]")


def test_nonlocal_rebinding_shows_in_outer_frame(recorded: tuple[Run, str, list[str]]) -> None:
    run, _, _ = recorded
    rec = run.recording("test_closure_rebinds_outer_local")
    frame = rec.frames("test_closure_rebinds_outer_local")[0]
    line = rec.line_of("test_mutation.py", "done = True", 3)
    done = rec.steps_at("test_closure_rebinds_outer_local", line)[0]
    assert rec.value_at(frame, "count", done) == ("int", "2")


# -- secrets ------------------------------------------------------------------------------


def test_secrets_never_reach_the_disk(recorded: tuple[Run, str, list[str]]) -> None:
    run, _, secrets = recorded
    assert len(secrets) == 4 and all(len(s) >= 16 for s in secrets)
    escope_dir = run.path.parent.parent
    files = [p for p in escope_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".sqlite" and "test_secrets" in p.name for p in files)
    blob = all_bytes(files)
    for s in secrets:
        assert s.encode() not in blob
        assert s.encode("utf-16-le") not in blob


def test_secret_names_are_recorded_as_redacted(recorded: tuple[Run, str, list[str]]) -> None:
    run, _, _ = recorded
    rec = run.recording("test_secrets")
    by_name = {}
    for fn, name, t, r in rec.bindings():
        by_name[(fn, name)] = (t, r)
    assert by_name[("test_secrets", "password")] == ("str", "<redacted>")
    assert by_name[("test_secrets", "api_token")] == ("str", "<redacted>")
    assert by_name[("test_secrets", "pin_code")] == ("str", "<redacted>")  # --escope-redact=pin
    assert by_name[("login", "password")] == ("str", "<redacted>")
    assert by_name[("login", "session_key")] == ("str", "<redacted>")
    assert by_name[("test_secrets", "cfg")][1] == "{'db': {'password': <redacted>}, 'token': <redacted>}"
    assert by_name[("test_secrets", "who")][1] == "Login(user='bob', password=<redacted>)"
    flags = rec.q("SELECT flags FROM vals WHERE repr LIKE '%<redacted>%'")
    assert flags and all(f & 2 for (f,) in flags)
    cp = [e for e in rec.events() if e.kind == "checkpoint"]
    assert len(cp) == 1 and "<redacted>" in cp[0].value_repr and "'bob'" in cp[0].value_repr


# -- bounded --------------------------------------------------------------------------------


def test_values_are_bounded(recorded: tuple[Run, str, list[str]]) -> None:
    run, _, _ = recorded
    rec = run.recording("test_big_values")
    size = rec.path.stat().st_size
    assert size < 300_000, size
    longest = rec.q("SELECT max(length(repr)), max(length(coalesce(detail, ''))) FROM vals")[0]
    assert longest[0] <= 1200 and longest[1] <= 50_000
    by_name = {name: (t, r) for _, name, t, r in rec.bindings()}
    assert by_name["big_int"][1].startswith("<int of ")
    assert len(by_name["big_str"][1]) <= 1200 and by_name["big_str"][1].startswith("'xxx")
    truncated = {r[0] for r in rec.q("SELECT type FROM vals WHERE flags & 1")}
    assert {"list", "dict", "set", "str", "bytes"} <= truncated
    frame = rec.frames("test_big_values")[0]
    last = rec.q("SELECT max(step) FROM events")[0][0]
    # the list is cut, but its size is exact and each append is still a snapshot
    # (the text shows only the first items, the structured form counts them all)
    assert rec.value_at(frame, "big_list", last)[1].endswith(", …]")
    obj = rec.q("SELECT v.obj FROM bindings b JOIN names n ON n.name = b.name JOIN vals v ON v.value = b.value "
                "WHERE n.text = 'big_list'")[0][0]
    lens = [int(re.search(r'"len":(\d+)', d).group(1))
            for (d,) in rec.q("SELECT detail FROM vals WHERE obj = ? ORDER BY step", obj)]
    assert lens == [100_000, 100_001, 100_002]


def test_the_compiled_fingerprint_is_the_python_one() -> None:
    """``_hotpath.scalar_fingerprint`` answers for a list or tuple of
    immutable scalars exactly what ``values.fingerprint`` answers, and
    declines (None) everything else, which Python then fingerprints."""
    import random

    hot = pytest.importorskip("pytest_escope.recorder._hotpath")
    from pytest_escope.recorder.values import Renderer, fingerprint

    class SubList(list):
        __slots__ = ()  # no instance fields: the compiled check answers for it

        def __len__(self):  # user code: neither version may call it
            raise RuntimeError("len called")

    class SubInt(int):
        pass

    renderer = Renderer(max_size=200, max_depth=3, max_items=20)
    rnd = random.Random(3)
    scalars = [0, -5, 10**30, 2.5, "s", "é", b"b", True, None, 1j]
    others = [[1], (2,), {"a": 1}, {1}, object(), SubInt(4), frozenset()]
    answered = 0
    for trial in range(400):
        n = rnd.choice([0, 1, 5, 29, 30, 31, 80])
        items = [rnd.choice(scalars) for _ in range(n)]
        if trial % 3 == 0 and n:
            items[rnd.randrange(n)] = rnd.choice(others)
        for value in (items, tuple(items), SubList(items)):
            got = hot.scalar_fingerprint(value)
            if got is not None:
                answered += 1
                assert got == fingerprint(value, renderer), (trial, value)
                assert got[0] == n and len(got) == 1 + min(n, 30)
            elif all(type(x) in (int, float, str, bytes, bool, type(None), complex) for x in value[:30]):
                pytest.fail(f"declined a list of scalars: {value!r}")
    assert answered > 500
    for value in ({"a": 1}, {1, 2}, 5, "text", object(), [[1, 2]], ([],)):
        assert hot.scalar_fingerprint(value) is None


def test_the_compiled_sequence_rendering_is_the_python_one() -> None:
    """``_hotpath.render_scalar_sequence`` renders an exact list or tuple of
    scalars exactly as ``Renderer.render`` does in Python (type name, text,
    detail JSON, flags), at several limits, and declines (None) anything
    else, which Python then renders."""
    import random

    hot = pytest.importorskip("pytest_escope.recorder._hotpath")
    from pytest_escope.recorder.values import Renderer

    class SubList(list):
        pass

    rnd = random.Random(5)
    scalars = [0, -1, 2**63 - 1, -2**63, 7, 2.5, -0.0, float("nan"), float("inf"), 1e300, True, False, None,
               "", "s", 'q"uote', "back\\slash", "line\nbreak\ttab\x01\x1f", "é", "\U0001f600", "\ud800",
               "x" * 90, b"", b"b\x00\xff'\"", b"y" * 90]
    declined_types = [2**64, 1j, [1], (2,), {"a": 1}, object(), SubList([1])]
    answered = 0
    for trial in range(600):
        size, items_limit = rnd.choice([(40, 3), (200, 20), (1000, 30), (12, 30)])
        python = Renderer(max_size=size, max_depth=3, max_items=items_limit)
        n = rnd.choice([0, 1, 2, 3, 4, 19, 20, 21, 35])
        items = [rnd.choice(scalars) for _ in range(n)]
        if trial % 4 == 0 and n:
            items[rnd.randrange(n)] = rnd.choice(declined_types)
        for value in (items, tuple(items)):
            got = hot.render_scalar_sequence(value, size, items_limit)
            if got is not None:
                answered += 1
                assert got == python.render(value), (trial, value)
            elif all(type(x) in (int, float, str, bytes, bool, type(None)) and not (type(x) is int and
                     abs(x) >= 2**63) for x in value[:items_limit]):
                pytest.fail(f"declined a sequence of scalars: {value!r}")
    assert answered > 700
    for value in (SubList([1, 2]), {"a": 1}, {1, 2}, 5, "text", [[1, 2]], ([],), [1j]):
        assert hot.render_scalar_sequence(value, 100, 10) is None
    # a plugin's own rendering comes first
    hooked = Renderer(max_size=100, max_depth=3, max_items=10, custom=lambda v: "mine" if type(v) is list else None)
    hooked.compiled_sequence = hot.render_scalar_sequence
    assert hooked.render([1, 2])[1] == "mine"


class _Plain:
    def __init__(self, **fields):
        self.__dict__.update(fields)


class _Slotted:
    __slots__ = ("a", "b", "password")


class _Both(_Slotted):
    pass  # a __dict__ beside the inherited slots


def _random_tree(rnd, depth: int):
    """A value of nested builtin containers, objects with a __dict__ and
    with __slots__ (some unset), secrets under str and bytes keys, and
    now and then a value ``render_tree`` leaves to Python."""
    scalars = [0, -1, 2**63 - 1, 7, 2.5, -0.0, float("nan"), True, False, None, "", "s", 'q"uote',
               "back\\slash", "line\nbreak\x01", "é", "\U0001f600", "x" * 70, b"", b"b\x00'\"", b"y" * 70]
    declined = [2**70, 1j, ValueError("no"), pytest, re.compile("a+"), decimal.Decimal("1.5"), _Colour.RED,
                datetime.date(2026, 12, 4)]
    named = [len, _random_tree, lambda: 0, [].append, _Plain().__init__, (x for x in ()), "".join, str.join,
             int, _Plain, _SubDict, collections.OrderedDict, type, _WithMeta]
    if depth <= 0 or rnd.random() < 0.3:
        roll = rnd.random()
        return rnd.choice(declined) if roll < 0.03 else rnd.choice(named) if roll < 0.1 else rnd.choice(scalars)
    n = rnd.choice([0, 1, 2, 3, 5, 12, 40])
    kind = rnd.randrange(11)
    child = lambda: _random_tree(rnd, depth - 1)  # noqa: E731
    if kind == 10:  # exceptions: args (a tuple, shown up to five), slots, fields, a property named args
        made = rnd.choice([ValueError, _ParseError, _NotedError, _ArgsProperty, KeyError])
        error = made(*[child() for _ in range(min(n, 7))])
        if made is _ParseError:
            error.loc, error.element = rnd.randrange(100), child()
        if made is _NotedError or rnd.random() < 0.2:
            error.note = child()
        return error
    if kind == 0:
        return [child() for _ in range(n)]
    if kind == 1:
        return tuple(child() for _ in range(n))
    if kind == 2:
        keys = ["k", "password", b"api_key", 3, (1, "t"), "name", b"x", 2.5, None, "token"]
        return {rnd.choice(keys) if i < 10 else i: child() for i in range(n)}
    if kind == 3:
        return {rnd.choice([1, 2, "a", "b", 3.5, None, (1, 2), b"z"]) for _ in range(n)} | set(range(n))
    if kind == 4:
        return frozenset(range(n))
    if kind == 5:
        return _Plain(**{f"f{i}": child() for i in range(min(n, 35))}, secret=child())
    if kind == 8:  # container subclasses, with and without fields of their own
        made = rnd.choice([_SubList, _SubDict, collections.OrderedDict, collections.Counter, _SubSet, _SubTuple])
        items = [child() for _ in range(n)] if made is not collections.Counter else range(n)
        if made in (_SubDict, collections.OrderedDict):
            value = made((i if i % 3 else rnd.choice(["password", "k", b"token"]), x) for i, x in enumerate(items))
        elif made is _SubSet:
            value = made(range(n))
        else:
            value = made(items)
        if made in (_SubList, _SubDict) and rnd.random() < 0.7:
            value.note = child()
            value.token = "hidden"
        return value
    if kind == 9:
        value = collections.defaultdict(list, {i: child() for i in range(n)})
        return value
    obj = _Slotted() if kind == 6 else _Both()
    for slot in ("a", "b", "password"):
        if rnd.random() < 0.7:
            setattr(obj, slot, child())
    if kind == 7 and rnd.random() < 0.8:
        obj.extra = child()
    return obj


class _SubList(list):
    pass


class _Colour(enum.Enum):
    RED = 1


class _ParseError(Exception):
    __slots__ = ("loc", "element")


class _NotedError(LookupError):
    pass


class _ArgsProperty(Exception):
    @property
    def args(self):  # user code: the renderer reads BaseException's own slot
        raise AssertionError("the recorder ran a property")


class _Meta(type):
    pass


class _WithMeta(metaclass=_Meta):
    pass


class _SubDict(dict):
    pass


class _SubSet(frozenset):
    pass


class _SubTuple(tuple):
    __slots__ = ()


def test_the_compiled_tree_rendering_is_the_python_one() -> None:
    """``_hotpath.render_tree`` renders nested containers and objects shown
    field by field exactly as ``Renderer.render`` does in Python (type name,
    text, detail JSON, flags: truncation, redaction), at several limits,
    and declines (None) what it leaves to Python."""
    import random

    hot = pytest.importorskip("pytest_escope.recorder._hotpath")
    from pytest_escope.recorder.values import Renderer, compile_redaction

    rnd = random.Random(11)
    answered = declined = 0
    secret_names: dict = {}  # one pattern for every trial that redacts: its answers are remembered across them
    for trial in range(1500):
        size, depth, items_limit = rnd.choice([(40, 2, 3), (200, 3, 20), (1000, 3, 30), (1000, 5, 30), (12, 3, 30)])
        redact = compile_redaction(["password", "token", "api_key", "secret"]) if trial % 3 else None
        python = Renderer(max_size=size, max_depth=depth, max_items=items_limit, redact=redact)
        compiled = Renderer(max_size=size, max_depth=depth, max_items=items_limit, redact=redact)
        value = _random_tree(rnd, rnd.choice([1, 2, 3, 4]))
        # every other trial, a nested value C does not render goes to Python alone
        got = hot.render_tree(value, size, items_limit, depth, None if redact is None else redact.search,
                              compiled._secret_key, compiled._c_kinds, compiled.c_kind, secret_names,
                              compiled.form_for_c if trial % 2 else None)
        if got is None:
            declined += 1
            continue
        answered += 1
        assert got == python.render(value), (trial, value)
    assert answered > 900 and declined > 50, (answered, declined)
    assert secret_names.get("password") is True and secret_names.get("k") is False
    # what is left to Python
    plain = Renderer()
    for value in (5, "text", [1j], {"k": 2**80}, pytest):
        assert hot.render_tree(value, 100, 10, 3, None, None, plain._c_kinds, plain.c_kind) is None
    # a plugin's own rendering comes first
    hooked = Renderer(max_size=100, max_depth=3, max_items=10, custom=lambda v: "mine" if type(v) is dict else None)
    hooked.compiled_tree = hot.render_tree
    assert hooked.render({"a": 1})[1] == "mine"


def test_a_stored_detail_reads_back_as_the_full_form() -> None:
    """``vals.detail`` stores a compact form (scalar leaves as JSON scalars,
    nested texts left to be rebuilt); read back through ``forms.expand`` it
    is the full form the renderer built, key order included, from the
    Python renderer and from the compiled one alike; and it is smaller."""
    import enum
    import json
    import random

    from pytest_escope.recorder import forms
    from pytest_escope.recorder.values import Renderer, compile_redaction, detail_json

    hot = _hotpath_or_none()

    class Colour(enum.Enum):
        RED = 1

    odd = [float("inf"), float("nan"), -0.0, 1e16, 1.5e-07, 2**70, -(2**63), True, False, None, "it's \"q\"\n",
           "\u00e9\u2026", b"by'tes", 1j, Colour.RED, ValueError("bad", 3), int, [], (), set(), frozenset(), {},
           (1,), "<redacted>", "5", "1.0", "True", "None"]
    rnd = random.Random(5)
    full_chars = stored_chars = compared = 0
    for trial in range(800):
        size, depth, items_limit = rnd.choice([(40, 2, 3), (200, 3, 20), (1000, 3, 30), (4000, 5, 100)])
        redact = compile_redaction(["password", "token", "api_key"]) if trial % 2 else None
        renderer = Renderer(max_size=size, max_depth=depth, max_items=items_limit, redact=redact)
        value = _random_tree(rnd, rnd.choice([1, 2, 3])) if trial % 4 else [rnd.choice(odd) for _ in range(6)]
        if trial % 7 == 0:
            value = {"odd": list(odd), "nested": [odd[:5], {"x": odd[5:10]}]}
        _type, _text, form, _flags = renderer.render_form(value)
        if form is None:
            continue
        full = json.dumps(form, ensure_ascii=False, separators=(",", ":"))
        stored = detail_json(form)
        assert json.dumps(forms.expand(forms.parse(stored)), ensure_ascii=False, separators=(",", ":")) == full
        full_chars += len(full)
        stored_chars += len(stored)
        if hot is not None:
            got = hot.render_tree(value, size, items_limit, depth, None if redact is None else redact.search,
                                  renderer._secret_key, renderer._c_kinds, renderer.c_kind)
            if got is not None and got[2] is not None:
                compared += 1
                assert got[2] == stored, (trial, value)
    assert stored_chars < 0.6 * full_chars, (stored_chars, full_chars)
    assert hot is None or compared > 300, compared
    # a detail written in full (an older recording) reads back unchanged
    old = '{"len":2,"items":[{"type":"int","repr":"1"},{"type":"list","len":0,"items":[],"repr":"[]"}]}'
    assert forms.expand(forms.parse(old)) == json.loads(old)


def _hotpath_or_none() -> Any:
    try:
        from pytest_escope.recorder import _hotpath
    except ImportError:
        return None
    return _hotpath


def test_the_compiled_tree_fingerprint_is_the_python_one() -> None:
    """``_hotpath.fingerprint_tree`` returns ``values.fingerprint`` and
    ``values.kept_alive`` of nested containers and objects shown field by
    field, equal to Python's on random trees, and declines (None) the rest."""
    import random

    hot = pytest.importorskip("pytest_escope.recorder._hotpath")
    from pytest_escope.recorder.values import Renderer, fingerprint, kept_alive, packed_fingerprint

    rnd = random.Random(12)
    renderer = Renderer()
    answered = declined = 0
    for trial in range(2000):
        value = _random_tree(rnd, rnd.choice([1, 2, 3]))
        got = hot.fingerprint_tree(value, renderer._c_kinds, renderer.c_kind)
        if got is None:
            declined += 1
            continue
        answered += 1
        assert got == (packed_fingerprint(fingerprint(value, renderer)), kept_alive(value, renderer)), (trial, value)
    assert answered > 1000 and declined > 30, (answered, declined)
    # a change one level down (a field's list grows) moves it
    inner = [1, 2]
    outer = _Plain(items=inner, n=1)
    before = hot.fingerprint_tree(outer, renderer._c_kinds, renderer.c_kind)
    inner.append(3)
    assert hot.fingerprint_tree(outer, renderer._c_kinds, renderer.c_kind) != before
    for value in (5, "text", pytest):
        assert hot.fingerprint_tree(value, renderer._c_kinds, renderer.c_kind) is None
    # an exception: its args are part of it (read through BaseException's own slot)
    odd = [ValueError("odd", 0), ValueError("odd", 1), _ArgsProperty(1), _ParseError("p", 2)]
    prints = [hot.fingerprint_tree(e, renderer._c_kinds, renderer.c_kind) for e in odd]
    assert prints == [(packed_fingerprint(fingerprint(e, renderer)), kept_alive(e, renderer)) for e in odd]
    assert prints[0][0] != prints[1][0] and prints[0][1] == ("odd", 0)
    # a container subclass, an exception or a pattern inside a value: read in C
    # as values._nested_print reads them (pyparsing's elements hold all three)
    import re
    for value in ([_SubList([1, 2])], [_SubDict(a=[1])], [_SubSet({1})], [_SubTuple((1, 2))],
                  [ValueError("x")], _Plain(pattern=re.compile("a+"), actions=collections.OrderedDict())):
        got = hot.fingerprint_tree(value, renderer._c_kinds, renderer.c_kind)
        assert got == (packed_fingerprint(fingerprint(value, renderer)), kept_alive(value, renderer)), value


def test_the_collector_renders_sequences_in_c_unless_pure_python(tmp_path: Path) -> None:
    """The recorder uses the compiled sequence rendering by default and none
    of it under ``ESCOPE_PURE_PYTHON=1``; hooks that render values
    themselves (``custom``) always get the Python path."""
    pytest.importorskip("pytest_escope.recorder._hotpath")
    script = (
        "from pathlib import Path\n"
        "from pytest_escope.recorder.config import RecorderConfig\n"
        "from pytest_escope.recorder.session import Recorder\n"
        f"r = Recorder(RecorderConfig(rootdir=Path({str(tmp_path)!r})), Path({str(tmp_path / 'c')!r}))\n"
        f"rec = r.recording(Path({str(tmp_path / 'x.sqlite')!r}), {{'nodeid': 'x'}}, keep_in_memory=True)\n"
        "print(rec.collector.renderer.compiled_sequence is not None)\n"
    )
    for pure, expected in (("", "True"), ("1", "False")):
        env = dict(os.environ, ESCOPE_PURE_PYTHON=pure)
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip().splitlines()[-1] == expected


def test_an_exception_rendered_before_is_rendered_alike() -> None:
    """An exception whose rendering depends on its class and scalar args
    alone is rendered once and reused: the reuse must give exactly what a
    fresh rendering gives, and must not mix up what only looks equal
    (``True == 1``, a subclass, an exception with fields of its own)."""
    from pytest_escope.recorder.values import Renderer

    class Oops(ValueError):
        pass

    def fresh(value: object) -> tuple:
        return Renderer(max_size=200, max_depth=3, max_items=20).render(value)

    shared = Renderer(max_size=200, max_depth=3, max_items=20)
    with_fields = Oops("x")
    with_fields.detail = [1, 2]
    noted = ValueError("x")
    noted.add_note("while parsing") if hasattr(noted, "add_note") else setattr(noted, "note", 1)
    cases = [ValueError("x"), ValueError("x"), ValueError(True), ValueError(1), Oops("x"), KeyError("x"),
             with_fields, noted, ValueError(0.0), ValueError(-0.0), ValueError(b"\xff", None, 7), ValueError()]
    for value in cases + cases[::-1]:
        assert shared.render(value) == fresh(value), value
    assert shared.render(ValueError(True)) != shared.render(ValueError(1))
    assert "detail" in shared.render(with_fields)[2] and "while parsing" in shared.render(noted)[2]
    # class and args only: fields, floats and notes are never reused
    assert len(shared._exceptions) == 7
    # a plugin's renderer is asked every time
    asked = []
    hooked = Renderer(max_size=200, max_depth=3, max_items=20, custom=lambda v: asked.append(v))
    hooked.render(ValueError("x"))
    hooked.render(ValueError("x"))
    assert len(asked) >= 2 and not hooked._exceptions


def test_a_container_subclass_keeps_its_fields_in_its_fingerprint() -> None:
    """A list subclass that keeps its items in a field of its own (a list of
    lists, as boltons' BarrelList does) changes only there: the change must
    still be seen, by the compiled check and the Python one alike."""
    from pytest_escope.recorder.values import Renderer, fingerprint

    class Barrel(list):
        def __init__(self) -> None:
            self.lists = [[1, 2]]

    renderer = Renderer()
    barrel = Barrel()
    before = fingerprint(barrel, renderer)
    barrel.lists = [[1, 2], [3]]
    assert fingerprint(barrel, renderer) != before
    try:
        from pytest_escope.recorder._hotpath import scalar_fingerprint
    except ImportError:
        return
    assert scalar_fingerprint(barrel) is None  # handed to the Python twin
    assert scalar_fingerprint([1, 2]) == fingerprint([1, 2], renderer)


def test_a_big_nested_value_renders_what_its_text_shows() -> None:
    """Thirty lists of thirty items hold 900 scalars; the text shows about
    a thousand characters of them, and the structured form stops where the
    text does: later lists are shown as ``<list…>``, with the real lengths."""
    from pytest_escope.recorder import forms
    from pytest_escope.recorder.values import Renderer

    value = [list(range(i * 1000, i * 1000 + 100)) for i in range(30)]
    type_name, text, detail, flags = Renderer().render(value)
    form = forms.expand(forms.parse(detail))
    assert type_name == "list" and form["len"] == 30 and flags & 1
    shown = [item for item in form["items"] if "items" in item]
    stubs = [item for item in form["items"] if item["repr"] == "<list…>"]
    assert 1 <= len(shown) < 10 and len(shown) + len(stubs) == 30
    assert all(item["len"] == 100 and len(item["items"]) == 30 for item in shown)
    assert len(text) <= 1000


def test_a_rerendering_reuses_unchanged_children_and_equals_a_fresh_one() -> None:
    """Re-rendering a big object whose one field changed reuses the forms of
    its unchanged children; whatever changed, anywhere a form shows it (a
    slot of a node inside a dict, an item of a nested list, the text budget
    moving), the result equals what a fresh renderer makes."""
    import random

    from pytest_escope.recorder.values import Renderer

    class Node:
        __slots__ = ("key", "count", "next")

        def __init__(self, key: int) -> None:
            self.key, self.count, self.next = key, 0, None

    class Cache:
        def __init__(self) -> None:
            self.data = {i: i * 2 for i in range(100)}
            self.links = {i: Node(i) for i in range(100)}
            self.lists = [list(range(i, i + 40)) for i in range(0, 400, 40)]
            self.hits = 0

    rnd = random.Random(5)
    cache = Cache()
    kept = Renderer()
    changes = [
        lambda: setattr(cache, "hits", cache.hits + 1),
        lambda: setattr(cache, "hits", cache.hits + 10 ** rnd.randrange(1, 30)),  # the text grows
        lambda: setattr(cache.links[rnd.randrange(3)], "count", rnd.randrange(10 ** 6)),
        lambda: setattr(cache.links[rnd.randrange(3)], "next", cache.links[rnd.randrange(9)]),
        lambda: cache.data.__setitem__(rnd.randrange(5), rnd.randrange(10 ** 9)),
        lambda: cache.lists[1].__setitem__(rnd.randrange(30), -rnd.randrange(10 ** 9)),
        lambda: cache.lists[2].pop() if len(cache.lists[2]) > 1 else cache.lists[2].append(1),
        lambda: cache.lists.insert(3, [rnd.randrange(9)]),
    ]
    for _ in range(300):
        rnd.choice(changes)()
        assert kept.render_again(cache) == Renderer().render(cache)
    assert len(kept._memo) > 0

# -- stdlib value types whose repr would reach user code -------------------------------

TRUSTED_REPR_SUITE = '''
import datetime
import enum
import pathlib
import re
import uuid

CALLS = []


class Shown:
    def __repr__(self):
        CALLS.append("enum value __repr__")
        return "Shown()"


class Color(enum.Enum):
    RED = Shown()
    BLUE = 2


class MyId(uuid.UUID):
    def __str__(self):
        CALLS.append("UUID subclass __str__")
        return uuid.UUID.__str__(self)


class MyPath(pathlib.PurePosixPath):
    def __str__(self):
        CALLS.append("PurePath subclass __str__")
        return super().__str__()


class Source(str):
    def __repr__(self):
        CALLS.append("pattern source __repr__")
        return str.__repr__(self)


class Part(str):
    def split(self, *args):
        CALLS.append("path part split")
        return str.split(self, *args)


class Names:
    def __iter__(self):
        CALLS.append("__slots__ __iter__")
        return iter(("a",))


class Slotted:
    __slots__ = Names()


class Zone(datetime.tzinfo):
    def __repr__(self):
        CALLS.append("tzinfo __repr__")
        return "Zone()"

    def utcoffset(self, dt):
        CALLS.append("tzinfo utcoffset")
        return datetime.timedelta(0)


def keep(*values):
    return values


def test_no_user_code():
    del CALLS[:]  # class creation iterated Names() once, as it does without escope
    color = Color.RED
    blue = Color.BLUE
    ident = MyId(int=5)
    exact_id = uuid.UUID(int=6)
    path = MyPath("a", "b")
    exact_path = pathlib.PurePosixPath("a", "b")
    slotted = Slotted()
    slotted.a = 1
    when = datetime.datetime(2020, 1, 2, 3, 4, tzinfo=Zone())
    utc = datetime.datetime(2020, 1, 2, tzinfo=datetime.timezone.utc)
    pattern = re.compile(Source("a+b"))
    from_part = pathlib.PurePosixPath(Part("c/d"))
    kept = keep(color, ident, path, slotted, when, pattern, from_part)
    print("CALLS", CALLS)
    assert CALLS == []
'''


@pytest.mark.parametrize("strategy", ["minimal", "balanced", "full_trace"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_stdlib_value_types_run_no_user_code(backend: str, strategy: str, tmp_path: Path) -> None:
    """An Enum member whose value has a ``__repr__``, a UUID and a PurePath
    subclass with ``__str__``, ``__slots__`` that is a user iterable, a
    datetime with a user tzinfo, a pattern and a path made from a str
    subclass: the plain run and the recorded run call
    the same user code (none), and the film still shows each value."""
    project = Project(tmp_path / "proj")
    project.write("test_trusted.py", TRUSTED_REPR_SUITE)
    plain = project.run("-rA", "-s", env=clean_env())
    recorded = project.run("-rA", "-s", "--escope", "--escope-keep=all", f"--escope-backend={backend}",
                           f"--escope-strategy={strategy}", env=clean_env())
    assert outcomes(plain.stdout) == {"test_trusted.py::test_no_user_code": "PASSED"}, plain.out[-3000:]
    calls = [re.findall(r"CALLS \[.*\]$", res.stdout, re.M) for res in (plain, recorded)]
    assert calls[1] == calls[0] == ["CALLS []"], recorded.out[-3000:]
    assert outcomes(recorded.stdout) == outcomes(plain.stdout), recorded.out[-3000:]
    rec = project.latest().recording("test_no_user_code")
    try:
        shown = {(t, r) for t, r in rec.q("SELECT type, repr FROM vals")}
        assert rec.meta["recorder_faults"] == "0"
    finally:
        rec.close()
    text = "\n".join(r for _, r in shown)
    for part in ("<Color.RED: ", "MyId(int=5", "MyPath(", "Slotted(a=1)", "datetime.datetime(2020, 1, 2, 3, 4",
                 "<Pattern object>"):
        assert part in text, (part, shown)
    if strategy != "minimal":
        assert ("Color", "<Color.RED: Shown()>") in shown, shown
        assert ("Color", "<Color.BLUE: 2>") in shown, shown
        assert ("UUID", "UUID('00000000-0000-0000-0000-000000000006')") in shown, shown
        assert ("PurePosixPath", "PurePosixPath('a/b')") in shown, shown
        assert ("datetime", "datetime.datetime(2020, 1, 2, 0, 0, tzinfo=datetime.timezone.utc)") in shown, shown
        assert ("datetime", "datetime.datetime(2020, 1, 2, 3, 4, tzinfo=Zone())") in shown, shown
