"""A customer's tier now: their earnings on every id of theirs (db) through the pure rule (domain.tiers)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_loyalty.db import aliases, ledger
from lifecycle_loyalty.domain.rules import EarnRules
from lifecycle_loyalty.domain.tiers import TierProgress, tier_progress


async def tier_of(conn: AsyncConnection, account: str, *, now: datetime, rules: EarnRules) -> TierProgress:
    """`account`: a customer that is no alias (resolved)."""
    ids = list(await aliases.members(conn, [account]))
    earnings = await ledger.tier_earnings(conn, survivor_id=account, ids=ids)
    return tier_progress(earnings, now=now, rule=rules.tiers)
