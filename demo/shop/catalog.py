"""Price lookups that wrap low-level errors into domain errors."""


class PricingError(Exception):
    pass


PRICES = {"apple": 50, "pear": 70, "plum": 30}
ALIASES = {"apples": "apple", "pears": "pear", "prune": "plum"}


def canonical(sku: str) -> str:
    return ALIASES.get(sku, sku)


def price_of(sku: str) -> int:
    try:
        return PRICES[canonical(sku)]
    except KeyError as exc:
        raise PricingError(f"no price for {sku!r}") from exc


def quote(basket: dict[str, int]) -> int:
    total = 0
    for sku, qty in basket.items():
        total += price_of(sku) * qty
    return total
