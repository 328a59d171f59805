"""The shop's tests: plain pytest, as a project would write them."""

import functools

import pytest

from shop.events import Bus, Register, log_calls
from shop.inventory import ParseError, counter, load, matches, reserve, restock_plan
from shop.pricing import basket_total, cheapest, line_total, split_evenly

LINES = ["apple, 3, 10", "pear, 5, 1", "bad line", "fig, 12, 4"]


@pytest.fixture
def stock():
    errors = []
    loaded = load(LINES, errors)
    assert errors == [3]
    return loaded


def test_load_and_reserve(stock):
    low = []
    cost = reserve(stock, "apple", 4)
    cost += reserve(stock, "pear", 1, on_low=low.append)
    assert cost == 17
    assert stock["pear"] == [5, 0]
    assert low == ["pear"]


def test_reserve_too_many(stock):
    with pytest.raises(ParseError):
        reserve(stock, "fig", 9)
    assert stock["fig"] == [12, 4]


def test_basket_and_discounts():
    lines = [("apple", 3, 10), ("fig", 12, 4)]
    total, seen = basket_total(lines, {"fig": 25})
    assert total == 30 + 36
    assert seen == ["apple", "fig"]
    assert line_total(10, 3) == 30


def test_cheapest_and_split():
    prices = {"apple": 3, "pear": 5, "fig": 2}
    assert cheapest(prices) == "fig"
    parts = split_evenly(10, 3)
    assert parts == [4, 3, 3]


def test_restock_plan(stock):
    plan = []
    for sku, missing in restock_plan(stock, 5):
        plan.append((sku, missing))
    assert plan == [("fig", 1), ("pear", 4)]


def test_counter_closure():
    bump = counter()
    first = bump()
    second = bump(5)
    assert (first, second) == (1, 6)


def test_bus_handlers_mutate_a_list():
    got = []
    bus = Bus()
    bus.on("sold", got.append)
    n = bus.emit("sold", "apple")
    n += bus.emit("sold", "fig")
    assert got == ["apple", "fig"] and n == 2


def test_log_calls_through_a_bound_append():
    log = []

    @log_calls(log.append)
    def double(x):
        return x * 2

    a = double(1)
    b = double(2)
    assert a + b == 6
    assert log == [("double", (1,)), ("double", (2,))]


def test_matches_in_one_generator_expression():
    record = {"sku": "apple", "qty": 3, "price": 10, "shelf": "B2"}
    ok = matches(record, {"sku": "apple", "qty": 3, "shelf": "B2"})
    bad = matches(record, {"sku": "apple", "qty": 3, "price": 11})
    assert ok and not bad


def test_class_body():
    class Coupon:
        code = "SPRING"
        percent = 10

        def apply(self, amount):
            return amount - amount * self.percent // 100

    assert Coupon().apply(50) == 45


def test_partial_of_a_bound_append():
    seen = []
    note = functools.partial(seen.append)
    note("apple")
    note("fig")
    assert seen == ["apple", "fig"]


def test_callback_kept_on_an_object():
    sold = []
    till = Register(sold.append)
    till.sell("apple")
    count = till.sell("fig")
    assert sold == ["apple", "fig"] and count == 2
