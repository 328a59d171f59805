import pytest

from shop.catalog import PricingError, quote


def test_quote_with_aliases():
    assert quote({"apples": 2, "pears": 1}) == 170


def test_unknown_fruit_is_a_pricing_error():
    with pytest.raises(PricingError):
        quote({"kiwi": 1})


def test_quote_of_plural_plums():
    assert quote({"apples": 1, "plums": 3}) == 140
