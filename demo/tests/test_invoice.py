from shop.invoice import Invoice


def make_invoice(days_late: int) -> Invoice:
    inv = Invoice(days_late=days_late)
    inv.add("apple", 10, 50)
    inv.add("pear", 5, 70)
    return inv


def test_subtotal():
    assert make_invoice(0).subtotal() == 850


def test_fee_in_first_week():
    inv = make_invoice(3)
    assert inv.total() == 858


def test_fee_is_capped_at_five_percent():
    # 57 days late (nine started weeks): the fee must stop at 5% of 850 = 42
    inv = make_invoice(57)
    assert inv.total() == 850 + 42
