"""Stock keeping: items, reservations, and a parser for stock lines."""


class ParseError(ValueError):
    pass


class Item:
    currency = "EUR"
    vat = 0.2

    def __init__(self, sku, price, qty=0):
        self.sku = sku
        self.price = price
        self.qty = qty

    def __repr__(self):
        return f"Item({self.sku!r}, {self.price!r}, {self.qty!r})"


def parse_line(line):
    parts = line.split(",")
    if len(parts) != 3:
        raise ParseError(f"expected 3 fields: {line!r}")
    sku, price, qty = (p.strip() for p in parts)
    return sku, int(price), int(qty)


def load(lines, errors):
    stock = {}
    for number, line in enumerate(lines, 1):
        try:
            sku, price, qty = parse_line(line)
        except ParseError:
            errors.append(number)
            continue
        stock[sku] = [price, qty]
    return stock


def matches(record, wanted):
    return all(k in record and record[k] == v for k, v in wanted.items())


def reserve(stock, sku, qty, on_low=None):
    price, left = stock[sku]
    if qty > left:
        raise ParseError(f"only {left} of {sku}")
    stock[sku][1] = left - qty
    if on_low is not None and stock[sku][1] < 2:
        on_low(sku)
    return price * qty


def restock_plan(stock, minimum):
    for sku, (price, qty) in sorted(stock.items()):
        if qty < minimum:
            yield sku, minimum - qty


def counter():
    count = 0

    def bump(by=1):
        nonlocal count
        count += by
        return count
    return bump
