"""`GET /v1/customers/{id}/balance`, `GET /v1/customers/{id}/ledger` and `GET /v1/customers/{id}/tier`.

An id merged into another customer (a guest's anonymousId once they signed up) answers with the
account it belongs to now: the survivor's, whose id the balance names.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from lifecycle_shared.auth import ApiAccess
from lifecycle_shared.http import CustomerId, Engine, errors
from pydantic import BaseModel

from lifecycle_loyalty.api.deps import Now
from lifecycle_loyalty.db import aliases, ledger, lots, rulesets
from lifecycle_loyalty.domain.lots import summarize
from lifecycle_loyalty.tiers import tier_of

# Personal data: every route needs a token from LIFECYCLE_API_TOKENS.
router = APIRouter(prefix="/v1/customers", tags=["balances"], dependencies=[ApiAccess], responses=errors(401, 403))


class BalanceOut(BaseModel):
    customer_id: str  # the account that answered: the requested id, or the customer it was merged into
    balance: int  # pending + available - debt: the sum of the entries
    pending: int  # earned, not yet spendable (the return window)
    available: int  # spendable now (less the debt)
    debt: int  # points reversed after they were spent: settled from later earnings
    earned: int
    entries: int


class EntryOut(BaseModel):
    id: str
    kind: str
    points: int
    debt: int
    rule: str
    rule_version: str
    cause_event_id: str
    order_id: str | None
    lot_id: str | None
    effective_at: datetime | None
    created_at: datetime


@router.get("/{customer_id:path}/balance", response_model=BalanceOut)
async def get_balance(customer_id: CustomerId, engine: Engine, now: Now) -> BalanceOut:
    """The customer's balance; for an id merged into another customer, the survivor's balance."""
    async with engine.connect() as conn:
        account = (await aliases.resolve(conn, [customer_id]))[customer_id]
        totals = await ledger.balance(conn, customer_id=account)
        held = await lots.holdings(conn, account)
    summary = summarize(held, now)
    return BalanceOut(customer_id=account, pending=summary.pending, available=summary.available,
                      debt=summary.debt, **totals)


@router.get("/{customer_id:path}/ledger", response_model=list[EntryOut])
async def get_ledger(customer_id: CustomerId, engine: Engine) -> list[EntryOut]:
    """The customer's entries, oldest first; for an id merged into another customer, the survivor's."""
    async with engine.connect() as conn:
        account = (await aliases.resolve(conn, [customer_id]))[customer_id]
        rows = await ledger.entries(conn, customer_id=account)
    return [EntryOut(**row) for row in rows]


class TierOut(BaseModel):
    customer_id: str
    tier: str  # the tier in force (a downgrade waits out the grace period)
    qualifies_for: str  # the tier the window's points reach now
    points_in_window: int
    next_tier: str | None
    points_to_next: int | None
    window_days: int
    grace_days: int
    rule_version: str


@router.get("/{customer_id:path}/tier", response_model=TierOut)
async def get_tier(customer_id: CustomerId, engine: Engine, now: Now) -> TierOut:
    """The customer's tier and their progress to the next one (points earned over the rolling window)."""
    async with engine.connect() as conn:
        account = (await aliases.resolve(conn, [customer_id]))[customer_id]
        rules = await rulesets.in_force(conn)
        progress = await tier_of(conn, account, now=now, rules=rules)
    return TierOut(customer_id=account, tier=progress.tier, qualifies_for=progress.qualifies_for,
                   points_in_window=progress.points_in_window, next_tier=progress.next_tier,
                   points_to_next=progress.points_to_next, window_days=rules.tiers.window_days,
                   grace_days=rules.tiers.grace_days, rule_version=rules.version)
