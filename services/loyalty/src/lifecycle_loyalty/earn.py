"""Points for what customers do besides ordering (a referral completed, a review written): the order of
effects the two handlers share - lock and resolve the ids, read what each capped rule paid in its period,
decide (domain.earning.decide_activity), book."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_loyalty.db import aliases, ledger, lots, rulesets
from lifecycle_loyalty.domain.earning import Activity, EarnRules, Entry, decide_activity, period_start
from lifecycle_loyalty.domain.rules import Cap

FAMILIES = ("review", "referral:referrer", "referral:referee")


def _cap(family: str, rules: EarnRules) -> Cap | None:
    return {"review": rules.review.cap, "referral:referrer": rules.referral.cap}.get(family)


async def earn_for_activities(conn: AsyncConnection, activities: list[Activity], *,
                              rules: EarnRules | None = None) -> list[str]:
    """Books what the activities earn; returns the (resolved) customers credited, for their tiers."""
    rules = rules or await rulesets.in_force(conn)
    named = {a.customer_id for a in activities} | {a.referrer_id for a in activities if a.referrer_id}
    customer_of = await aliases.lock_and_resolve(conn, named)
    decided: list[Entry] = []
    for activity in sorted(activities, key=lambda a: (a.at, a.cause_id)):
        resolved = Activity(kind=activity.kind, customer_id=customer_of[activity.customer_id],
                            cause_id=activity.cause_id, at=activity.at,
                            referrer_id=customer_of[activity.referrer_id] if activity.referrer_id else None)
        paid: dict[tuple[str, str], int] = {}
        for family in FAMILIES:
            cap = _cap(family, rules)
            customer = resolved.referrer_id if family == "referral:referrer" else resolved.customer_id
            if cap is not None and customer is not None:
                start = period_start(cap.period, resolved.at)
                earned = await ledger.earned_by_rule(conn, customer, rule=family, since=start, before=resolved.at)
                # what this batch decided for the customer in the same period counts too
                earned += sum(e.points for e in decided if e.customer_id == customer
                              and e.rule == family and e.at is not None and start <= e.at)
                paid[(customer, family)] = earned
        decided += decide_activity(resolved, earned_in_period=paid, rules=rules)
    await lots.book(conn, decided, policy=rules.lots, at=max(a.at for a in activities))
    return sorted({entry.customer_id for entry in decided if entry.points > 0})
