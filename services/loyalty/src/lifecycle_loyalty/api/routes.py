"""`GET /v1/customers/{id}/balance` and `GET /v1/customers/{id}/ledger`.

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
from lifecycle_loyalty.db import aliases, ledger, lots
from lifecycle_loyalty.domain.lots import summarize

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
