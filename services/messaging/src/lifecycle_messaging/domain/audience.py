"""Audience conditions: which customers a campaign is for, as a list of `{field, op, value}`. Pure.

A campaign's audience is a list of conditions that must all hold (an empty list: everyone the trigger
names). Each condition reads one field of what messaging knows about the customer (`Profile`) and
compares it with a value:

| field | what it is |
|---|---|
| `stage` | the lifecycle stage (the latest transition messaging has seen) |
| `orders`, `revenue` | the order count and revenue the stage engine counted at that transition |
| `locale` | the `locale` trait as a language tag, lower case (`vi-vn`); `language`: its first part (`vi`) |
| `timezone` | the `timezone` trait as given |
| `segment` | trait `segment` / `rfmSegment` / `rfm_segment` |
| `churn_band` | trait `churnBand` / `churn_band` |
| `clv_band` | trait `clvBand` / `clv_band` |
| `tier`, `points` | trait `tier` / `loyaltyTier`, `points` / `loyaltyPoints` (a loyalty event's own values win) |
| `traits.<name>` | any trait, by its exact name |

The stage engine's RFM segment, churn band and CLV band are not on the events messaging reads: they are
known only when the shop sends them as traits (otherwise the field is missing).

Operators (`OPS`): `eq`, `ne`, `in`, `not_in` (a list), `gt`, `gte`, `lt`, `lte` (a number), `exists`,
`not_exists` (no value). Text compares without regard to case or surrounding spaces; a number and a numeric
text compare as numbers (`"3"` equals `3`; traits often carry numbers as text); a boolean equals only a
boolean. A missing field (unknown, null or empty text) satisfies only `not_exists`, `ne` and `not_in`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from lifecycle_shared.stages import Stage
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lifecycle_messaging.domain.locales import normalised

Op = Literal["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "exists", "not_exists"]
OPS: tuple[str, ...] = Op.__args__  # type: ignore[attr-defined]
Scalar = str | float | int | bool
MAX_VALUES = 100
MAX_TEXT = 200

# Each named field and the traits it is read from (first found wins); `stage`, `orders`, `revenue`,
# `locale` and `language` are read apart.
TRAIT_FIELDS: dict[str, tuple[str, ...]] = {
    "segment": ("segment", "rfmSegment", "rfm_segment"),
    "churn_band": ("churnBand", "churn_band"),
    "clv_band": ("clvBand", "clv_band"),
    "tier": ("tier", "loyaltyTier", "loyalty_tier"),
    "points": ("points", "loyaltyPoints", "loyalty_points"),
    "timezone": ("timezone",),
}
FIELDS = ("stage", "orders", "revenue", "locale", "language", *TRAIT_FIELDS)
TRAITS_PREFIX = "traits."
_FIELD = re.compile(r"[a-z_]+|traits\.[^\x00]{1,100}")
_NUMERIC = re.compile(r"[+-]?\d{1,30}(\.\d{1,30})?")


class Condition(BaseModel):
    """One condition: `field` `op` `value`, e.g. `{"field": "stage", "op": "in", "value": ["retention", "loyalty"]}`."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    field: str = Field(min_length=1, max_length=110, examples=["stage", "language", "traits.plan"],
                       description=f"one of {', '.join(FIELDS)}, or `traits.<name>`")
    op: Op
    value: Scalar | list[Scalar] | None = Field(None, description=(
        "eq / ne: a text, number or boolean; in / not_in: a list of them; gt / gte / lt / lte: a number; "
        "exists / not_exists: none"))

    @model_validator(mode="after")
    def _value_fits(self) -> Condition:
        if problem := condition_problem(self.field, self.op, self.value):
            raise ValueError(problem)
        return self


def _text_ok(value: object) -> bool:
    return not isinstance(value, str) or (len(value) <= MAX_TEXT and "\x00" not in value)


def condition_problem(field_name: str, op: str, value: object) -> str | None:
    """What is wrong with a condition (None: nothing), in words for a 400."""
    if not _FIELD.fullmatch(field_name) or (field_name not in FIELDS and not field_name.startswith(TRAITS_PREFIX)):
        return f"field: unknown field {field_name!r}; known: {', '.join(FIELDS)}, traits.<name>"
    if op in ("exists", "not_exists"):
        return None if value is None else f"{op} takes no value"
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_VALUES:
            return f"{op} takes a list of 1 to {MAX_VALUES} values"
        values: list[object] = list(value)
    elif op in ("gt", "gte", "lt", "lte"):
        if _number(value) is None or isinstance(value, str):
            return f"{op} takes a number"
        values = [value]
    else:
        if value is None or isinstance(value, list):
            return f"{op} takes one text, number or boolean"
        values = [value]
    if not all(_text_ok(v) for v in values):
        return f"value: texts of at most {MAX_TEXT} characters, without NUL"
    if field_name == "stage" and op in ("eq", "ne", "in", "not_in"):
        unknown = [v for v in values if not (isinstance(v, str) and v.strip().lower() in set(Stage))]
        if unknown:
            return f"value: not a stage: {unknown[0]!r}; stages: {', '.join(Stage)}"
    return None


@dataclass(frozen=True)
class Profile:
    """What messaging knows of a customer when it judges a condition: their stage and counts from the latest
    transition seen, their traits, and values a trigger knows better (a loyalty event's tier and points)."""

    stage: str | None = None
    traits: Mapping[str, Any] = field(default_factory=dict)
    orders: int | None = None
    revenue: float | None = None
    values: Mapping[str, object] = field(default_factory=dict)


def value_of(field_name: str, profile: Profile) -> object:
    """The field's value for this customer; None when it is not known."""
    if field_name in profile.values:
        return profile.values[field_name]
    if field_name.startswith(TRAITS_PREFIX):
        return profile.traits.get(field_name.removeprefix(TRAITS_PREFIX))
    if field_name == "stage":
        return profile.stage
    if field_name == "orders":
        return profile.orders
    if field_name == "revenue":
        return profile.revenue
    if field_name in ("locale", "language"):
        tag = normalised(profile.traits.get("locale"))
        return tag.split("-")[0] if tag and field_name == "language" else tag
    names = TRAIT_FIELDS.get(field_name, ())
    return next((profile.traits[name] for name in names if profile.traits.get(name) not in (None, "")), None)


def _number(value: object) -> float | None:
    """A number (or numeric text) as a float; None for anything else, or one beyond a float's range."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str) and _NUMERIC.fullmatch(value.strip()):
            number = float(value.strip())
        else:
            return None
    except OverflowError:  # an integer beyond 1.8e308
        return None
    return number if math.isfinite(number) else None


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def same(left: object, right: object) -> bool:
    """Equality as conditions have it: booleans only with booleans, numbers (or numeric texts) as numbers,
    texts without regard to case or surrounding spaces; nothing else (lists, objects) is equal to anything."""
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    numbers = _number(left), _number(right)
    if numbers[0] is not None and numbers[1] is not None:
        return numbers[0] == numbers[1]
    if isinstance(left, str) and isinstance(right, str):
        return left.strip().casefold() == right.strip().casefold()
    return False


def holds(condition: Condition, profile: Profile) -> bool:
    """Whether the customer meets this one condition."""
    found, op, value = value_of(condition.field, profile), condition.op, condition.value
    if _missing(found):
        return op in ("not_exists", "ne", "not_in")
    if op == "exists":
        return True
    if op == "not_exists":
        return False
    if op in ("eq", "ne"):
        return same(found, value) == (op == "eq")
    if op in ("in", "not_in"):
        listed = any(same(found, v) for v in value) if isinstance(value, list) else False
        return listed == (op == "in")
    left, right = _number(found), _number(value)
    if left is None or right is None:
        return False
    return {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[op]


def failing(audience: Sequence[Condition], profile: Profile) -> list[Condition]:
    """The conditions this customer does not meet (none: they are in the audience)."""
    return [condition for condition in audience if not holds(condition, profile)]


def in_audience(audience: Sequence[Condition], profile: Profile) -> bool:
    return all(holds(condition, profile) for condition in audience)
