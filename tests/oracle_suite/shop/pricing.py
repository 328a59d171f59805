"""Prices: totals, discounts, rounding."""


def line_total(price, qty, discount=0):
    gross = price * qty
    cut = gross * discount // 100
    return gross - cut


def basket_total(lines, discounts):
    total = 0
    seen = []
    for sku, price, qty in lines:
        seen.append(sku)
        total += line_total(price, qty, discounts.get(sku, 0))
    return total, seen


def cheapest(prices):
    best = None
    for sku, price in prices.items():
        if best is None or price < prices[best]:
            best = sku
    return best


def split_evenly(amount, ways):
    share, rest = divmod(amount, ways)
    parts = [share] * ways
    for i in range(rest):
        parts[i] += 1
    return parts
