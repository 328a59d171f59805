"""Stock kept up to date by a background worker thread."""

import queue
import threading


class Inventory:
    def __init__(self, stock: dict[str, int]) -> None:
        self.stock = dict(stock)
        self.orders: "queue.Queue[tuple[str, int] | None]" = queue.Queue()
        self.worker = threading.Thread(target=self._run, name="stock-worker")

    def start(self) -> None:
        self.worker.start()

    def order(self, sku: str, qty: int) -> None:
        self.orders.put((sku, qty))

    def close(self) -> None:
        self.orders.put(None)
        self.worker.join()

    def _run(self) -> None:
        while True:
            item = self.orders.get()
            if item is None:
                return
            sku, qty = item
            left = self.stock.get(sku, 0)
            if left >= qty:
                self.stock[sku] = left - qty
            else:
                self.stock[sku] = 0  # bug: silently sells what is not there
