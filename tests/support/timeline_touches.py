"""Touches on a customer's timeline for the pure stage logic: a touch some minutes after T0, orders and
refunds some days after it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lifecycle_stage_engine.domain.stages import Touch

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def touch(name: str, minutes: float = 0, **properties) -> Touch:
    return Touch(event_id=f"{name}-{minutes}", name=name, time=T0 + timedelta(minutes=minutes),
                 properties=properties)


def order(day: float, order_id: str) -> Touch:
    return touch("order_completed", day * 1440, order_id=order_id)


def refund(day: float, order_id: str) -> Touch:
    return touch("order_refunded", day * 1440, order_id=order_id)


def orders_on(*days: float) -> list[Touch]:
    return [order(day, f"o{n}") for n, day in enumerate(days)]
