"""Invoices with late fees: the fee logic has a bug you only see over time."""

from dataclasses import dataclass, field


@dataclass
class Line:
    sku: str
    qty: int
    unit_price: int  # cents


@dataclass
class Invoice:
    lines: list[Line] = field(default_factory=list)
    days_late: int = 0
    fees: list[int] = field(default_factory=list)

    def add(self, sku: str, qty: int, unit_price: int) -> None:
        self.lines.append(Line(sku, qty, unit_price))

    def subtotal(self) -> int:
        total = 0
        for line in self.lines:
            total += line.qty * line.unit_price
        return total

    def late_fee(self) -> int:
        """1% of the subtotal per started week late, capped at 5%."""
        fee = 0
        rate = 0
        for day in range(1, self.days_late + 1):
            rate = min(rate, 5)
            if day % 7 == 1:
                rate += 1
            fee = self.subtotal() * rate // 100
            self.fees.append(fee)
        return fee

    def total(self) -> int:
        return self.subtotal() + self.late_fee()
