"""Redemptions as pure decisions: a reward bought with points (or why not), a redemption cancelled.
No I/O, no clock (`now` is a parameter)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lifecycle_loyalty.domain.earning import Entry
from lifecycle_loyalty.domain.lots import Holdings, Posting, spend

REWARD_KINDS = ("discount_code", "free_shipping", "free_product", "early_access")


@dataclass(frozen=True)
class Reward:
    id: str
    name: str
    kind: str
    cost: int
    tiers: tuple[str, ...] | None  # None: every tier
    stock: int | None  # None: unlimited
    active: bool = True


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str


def spend_entry(customer_id: str, reward: Reward, *, redemption_id: str, rule_version: str, now: datetime) -> Entry:
    return Entry(customer_id=customer_id, kind="spend", points=-reward.cost, rule=f"redemption:{reward.id}",
                 rule_version=rule_version, cause_event_id=f"redemption:{redemption_id}", at=now)


def cancel_entry(customer_id: str, *, reward_id: str, cost: int, redemption_id: str, rule_version: str,
                 now: datetime) -> Entry:
    return Entry(customer_id=customer_id, kind="cancel", points=cost, rule=f"redemption_cancelled:{reward_id}",
                 rule_version=rule_version, cause_event_id=f"redemption:{redemption_id}", at=now)


def decide_redemption(holdings: Holdings, reward: Reward | None, *, redemption_id: str, tier: str,
                      rule_version: str, now: datetime) -> Posting | Refusal:
    """The spend (one entry, from the oldest available lots), or why the reward cannot be had."""
    if reward is None or not reward.active:
        return Refusal(404, "unknown_reward", "no such reward in the catalogue")
    if reward.tiers is not None and tier not in reward.tiers:
        return Refusal(409, "not_for_this_tier",
                       f"the reward is for tiers {list(reward.tiers)}; the customer is {tier}")
    if reward.stock is not None and reward.stock <= 0:
        return Refusal(409, "out_of_stock", "the reward is out of stock")
    posting = spend(holdings, spend_entry(holdings.customer_id, reward, redemption_id=redemption_id,
                                          rule_version=rule_version, now=now), now=now)
    if posting is None:
        return Refusal(409, "insufficient_points", f"the reward costs {reward.cost} available points")
    return posting
