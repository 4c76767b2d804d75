"""Order vocabulary every service shares: an order's id and its amount, read from the Segment
e-commerce spec's properties (`order_id`, then `revenue` / `total` / `value`).

Amounts are `Decimal`: exact, and wide enough for currencies counted in millions per order
(VND, IDR). Ingest refuses an amount field it cannot read (`unreadable_amount_fields`), so what
reaches a consumer always parses.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Context, Decimal, InvalidOperation
from typing import Any

AMOUNT_FIELDS = ("revenue", "total", "value")
# Larger than any real order in any currency, small enough that points (bigint) never overflow.
MAX_AMOUNT = Decimal("1e15")
# Amounts keep 6 decimal places, cut (not rounded) beyond: no currency needs more, "1e-20000"
# becomes 0 (PostgreSQL's numeric cannot hold such an exponent), 12.9999999999 stays under 13.
SCALE = Decimal("1e-6")
_EXACT = Context(prec=40)  # ±1e15 with 6 places fits: quantizing never rounds the whole part
ZERO = Decimal(0)


def parse_amount(value: Any) -> Decimal | None:
    """A finite amount within ±MAX_AMOUNT from a JSON number or a numeric string, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else str(value))
    except (InvalidOperation, ValueError):
        return None
    if not amount.is_finite() or amount.copy_abs() > MAX_AMOUNT:  # copy_abs: no context, no Overflow
        return None
    return amount.quantize(SCALE, rounding=ROUND_DOWN, context=_EXACT)


def unreadable_amount_fields(properties: dict[str, Any]) -> list[str]:
    """Amount fields present (not null) that `parse_amount` cannot read."""
    return [name for name in AMOUNT_FIELDS
            if properties.get(name) is not None and parse_amount(properties[name]) is None]


def order_amount(properties: dict[str, Any]) -> Decimal:
    """The order's value: the first readable amount field, never negative; 0 when none."""
    for name in AMOUNT_FIELDS:
        amount = parse_amount(properties.get(name))
        if amount is not None:
            return max(ZERO, amount)
    return ZERO


def order_id_of(properties: dict[str, Any], *, fallback: str) -> str:
    """`order_id` (or `orderId`), else the event's own id: an order without one is its own order."""
    value = properties.get("order_id")
    if value is None or value == "":
        value = properties.get("orderId")
    return fallback if value is None or value == "" or isinstance(value, dict | list) else str(value)
