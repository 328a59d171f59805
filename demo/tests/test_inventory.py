from shop.inventory import Inventory


def test_orders_never_oversell():
    inv = Inventory({"apple": 5, "pear": 2})
    inv.start()
    inv.order("apple", 3)
    inv.order("pear", 4)
    inv.order("apple", 1)
    inv.close()
    sold_pears = 2 - inv.stock["pear"]
    assert sold_pears == 0, "a pear order larger than the stock must be refused"
