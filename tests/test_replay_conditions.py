"""Breakpoint conditions over recorded values: what they accept, what they
refuse, and that nothing is ever evaluated by Python."""

from __future__ import annotations

import json

import pytest

from pytest_escope.recorder.schema import FLAG_REDACTED, FLAG_TRUNCATED
from pytest_escope.replay.conditions import Condition
from pytest_escope.replay.errors import UsageError
from pytest_escope.replay.values import Value

LOCALS = {
    "rate": Value("int", "7"),
    "ratio": Value("float", "0.25"),
    "name": Value("str", "'ann'"),
    "done": Value("bool", "False"),
    "nothing": Value("NoneType", "None"),
    "secret": Value("str", "<redacted>", flags=FLAG_REDACTED),
    "long": Value("str", "'aaaa…", flags=FLAG_TRUNCATED),
    "items": Value("list", "[1, 2]", json.dumps({"len": 2, "items": [{"type": "int", "repr": "1"},
                                                                     {"type": "int", "repr": "2"}]})),
    "inv": Value("Invoice", "Invoice(days=3)", json.dumps({"fields": {"days": {"type": "int", "repr": "3"}}})),
}


@pytest.mark.parametrize("text, holds", [
    ("rate > 5", True), ("rate >= 8", False), ("rate == 7 and ratio < 0.5", True),
    ("rate < 5 or name == 'ann'", True), ("not done", True), ("done == False", True),
    ("nothing == None", True), ("nothing != None", False), ("1 < rate < 10", True), ("1 < rate < 5", False),
    ("rate > -1", True), ("items[1] == 2", True), ("inv.days == 3", True), ("inv.days > rate", False),
    # values the condition cannot use make it false, never an error
    ("secret == '<redacted>'", False), ("long != 'x'", False), ("items == 3", False), ("name < 1", False),
    ("unbound == 1", False), ("items[5] == 1", False), ("inv.nope == 1", False),
])
def test_conditions_over_recorded_values(text: str, holds: bool) -> None:
    assert Condition(text).holds(LOCALS) is holds


@pytest.mark.parametrize("text, says", [
    ("rate >", "cannot read the condition"),
    ("__import__('os').system('true')", "more than a comparison"),
    ("rate + 1 > 2", "more than a comparison"),
    ("rate in (1, 2)", "uses In"),
    ("rate is None", "uses Is"),
    ("len(items) > 1", "more than a comparison"),
    ("items[0:1] == 1", "only constant indexes"),
    ("rate == b'x'", "bytes literal"),
    ("(lambda: 1)() == 1", "more than a comparison"),
])
def test_conditions_that_are_refused_when_set(text: str, says: str) -> None:
    with pytest.raises(UsageError) as exc:
        Condition(text)
    assert says in exc.value.message()
