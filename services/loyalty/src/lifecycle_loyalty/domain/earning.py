"""Earn rules as data and the pure functions that apply them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EarnRules:
    version: str = "default-v1"
    points_per_currency_unit: float = 1.0
    stage_bonus: tuple[tuple[str, int], ...] = (("loyalty", 500),)


DEFAULT_EARN_RULES = EarnRules()


def order_total(properties: dict[str, Any]) -> float:
    for name in ("revenue", "total", "value"):
        value = properties.get(name)
        if isinstance(value, bool):
            continue
        try:
            return max(0.0, float(value))
        except (TypeError, ValueError):
            continue
    return 0.0


def points_for_order(properties: dict[str, Any], rules: EarnRules = DEFAULT_EARN_RULES) -> int:
    """Whole points per currency unit spent, rounded down."""
    return math.floor(order_total(properties) * rules.points_per_currency_unit + 1e-9)


def order_id_of(properties: dict[str, Any], *, fallback: str) -> str:
    return str(properties.get("order_id") or properties.get("orderId") or fallback)


def stage_bonus(to_stage: str, rules: EarnRules = DEFAULT_EARN_RULES) -> int:
    return dict(rules.stage_bonus).get(to_stage, 0)
