"""The SQL of lots and accounts: what a customer holds, read and written under their account's row lock.
Never commits.

`book` is how every credit and debit reaches the ledger: it locks the accounts (in one order), posts the
entries against the lots (domain.lots), appends what the posting decided and writes the lots back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_loyalty.db import ledger
from lifecycle_loyalty.db.models import accounts, lots
from lifecycle_loyalty.domain.earning import Entry, LotPolicy, entry_id
from lifecycle_loyalty.domain.lots import Holdings, Lot, Posting, post_all


async def lock_accounts(conn: AsyncConnection, customer_ids: Iterable[str]) -> dict[str, int]:
    """Lock the customers' accounts (created when missing; in id order); returns each one's debt."""
    wanted = sorted(set(customer_ids))
    if not wanted:
        return {}
    await conn.execute(insert(accounts).on_conflict_do_nothing(index_elements=["customer_id"]),
                       [{"customer_id": c} for c in wanted])
    return dict((await conn.execute(select(accounts.c.customer_id, accounts.c.debt)
                                    .where(accounts.c.customer_id.in_(wanted))
                                    .order_by(accounts.c.customer_id).with_for_update())).all())


async def lock(conn: AsyncConnection, customer_ids: Iterable[str], *,
               with_lots: Iterable[str] = ()) -> dict[str, Holdings]:
    """Lock the customers' accounts (`lock_accounts`) and read what they hold: their debt and every lot still
    holding points (and the lots named in `with_lots`, empty or not)."""
    debts = await lock_accounts(conn, customer_ids)
    if not debts:
        return {}
    wanted = sorted(debts)
    named = sorted(set(with_lots))
    holding = or_(lots.c.remaining > 0, lots.c.id.in_(named)) if named else lots.c.remaining > 0
    rows = await conn.execute(select(lots).where(lots.c.customer_id.in_(wanted), holding)
                              .order_by(lots.c.earned_at, lots.c.id))
    held: dict[str, list[Lot]] = defaultdict(list)
    for row in rows.mappings():
        held[row["customer_id"]].append(_lot(row))
    return {c: Holdings(customer_id=c, lots=tuple(held[c]), debt=int(debts[c])) for c in wanted}


async def holdings(conn: AsyncConnection, customer_id: str) -> Holdings:
    """What a customer holds, read without a lock (reads)."""
    debt = (await conn.execute(select(accounts.c.debt).where(accounts.c.customer_id == customer_id))).scalar()
    rows = await conn.execute(select(lots).where(lots.c.customer_id == customer_id, lots.c.remaining > 0)
                              .order_by(lots.c.earned_at, lots.c.id))
    return Holdings(customer_id=customer_id, lots=tuple(_lot(row) for row in rows.mappings()), debt=int(debt or 0))


def _lot(row: Any) -> Lot:
    return Lot(**{k: v for k, v in row.items() if k not in ("seq", "warned_at")})


async def save(conn: AsyncConnection, changes: list[tuple[Holdings, Holdings]]) -> None:
    """Write what changed between two readings of each account (before, after): new lots, lots' remaining
    points, debts - one statement per kind of change for all the accounts."""
    new: list[Lot] = []
    changed: list[Lot] = []
    debts: dict[str, int] = {}
    for before, after in changes:
        known = {lot.id: lot for lot in before.lots}
        new += [lot for lot in after.lots if lot.id not in known]
        changed += [lot for lot in after.lots if lot.id in known and known[lot.id].remaining != lot.remaining]
        if after.debt != before.debt:
            debts[after.customer_id] = after.debt
    if new:
        await conn.execute(insert(lots).on_conflict_do_nothing(index_elements=["id"]), [
            {"id": lot.id, "customer_id": lot.customer_id, "order_id": lot.order_id, "points": lot.points,
             "remaining": lot.remaining, "earned_at": lot.earned_at, "available_at": lot.available_at,
             "expires_at": lot.expires_at} for lot in new])
    if changed:
        await conn.execute(update(lots).where(lots.c.id == bindparam("lot_id"))
                           .values(remaining=bindparam("new_remaining")),
                           [{"lot_id": lot.id, "new_remaining": lot.remaining} for lot in changed])
    if debts:
        await conn.execute(update(accounts).where(accounts.c.customer_id == bindparam("account"))
                           .values(debt=bindparam("new_debt")),
                           [{"account": c, "new_debt": debt} for c, debt in sorted(debts.items())])


async def record(conn: AsyncConnection, before: Holdings, posting: Posting) -> None:
    """Append a posting's entries and write its lots back."""
    await record_all(conn, [(before, posting)])


async def record_all(conn: AsyncConnection, postings: list[tuple[Holdings, Posting]]) -> None:
    """Append the postings' entries (in order) and write their accounts' lots back, in a few statements
    whatever the number of accounts."""
    await ledger.append(conn, [entry for _, posting in postings for entry in posting.entries])
    await save(conn, [(before, posting.holdings) for before, posting in postings])


async def book(conn: AsyncConnection, entries: list[Entry], *, policy: LotPolicy, at: datetime) -> list[Entry]:
    """Post credits and debits (entries decided by the rules), customer by customer, under the row lock;
    returns the entries posted (debts and settlements included). `at`: when a credit's lot is earned unless
    the entry says (its cause's time)."""
    by_customer: dict[str, list[Entry]] = defaultdict(list)
    known = await ledger.known_ids(conn, [entry_id(entry) for entry in entries])
    for entry in entries:  # an entry already booked (the same cause and rule) is not booked again
        if entry_id(entry) not in known:
            by_customer[entry.customer_id].append(entry)
    held = await lock(conn, by_customer)
    postings = [(held[customer], post_all(held[customer], decided, at=at, policy=policy))
                for customer, decided in sorted(by_customer.items())]
    await record_all(conn, postings)
    return [entry for _, posting in postings for entry in posting.entries]


async def move(conn: AsyncConnection, absorbed: list[str], *, survivor_id: str) -> dict[str, int]:
    """Give the absorbed accounts' lots and debt to the survivor (lots keep their times). Returns each
    absorbed account's debt as it was (the merge's entries record its move)."""
    held = await lock(conn, [*absorbed, survivor_id])
    debts = {c: held[c].debt for c in absorbed if held[c].debt}
    await conn.execute(update(lots).where(lots.c.customer_id.in_(absorbed)).values(customer_id=survivor_id))
    if debts:
        await conn.execute(update(accounts).where(accounts.c.customer_id.in_(sorted(debts))).values(debt=0))
        await conn.execute(update(accounts).where(accounts.c.customer_id == survivor_id)
                           .values(debt=accounts.c.debt + sum(debts.values())))
    return debts


async def expiring_customers(conn: AsyncConnection, *, now: datetime, limit: int) -> list[str]:
    """Customers holding points in a lot past its expiry."""
    rows = await conn.execute(select(lots.c.customer_id).where(lots.c.remaining > 0, lots.c.expires_at <= now)
                              .group_by(lots.c.customer_id).order_by(func.min(lots.c.expires_at)).limit(limit))
    return list(rows.scalars())


async def warn_expiring(conn: AsyncConnection, *, now: datetime, until: datetime,
                        limit: int) -> dict[str, list[tuple[str, int, datetime]]]:
    """Lots holding points that expire after `now` and by `until`, not announced yet: marked announced and
    returned by customer as (lot id, points, expiry)."""
    due = (select(lots.c.id).where(lots.c.remaining > 0, lots.c.warned_at.is_(None), lots.c.expires_at > now,
                                   lots.c.expires_at <= until)
           .order_by(lots.c.expires_at, lots.c.id).limit(limit).with_for_update(skip_locked=True)).subquery()
    rows = await conn.execute(update(lots).where(lots.c.id.in_(select(due.c.id))).values(warned_at=now)
                              .returning(lots.c.customer_id, lots.c.id, lots.c.remaining, lots.c.expires_at))
    found: dict[str, list[tuple[str, int, datetime]]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r.customer_id, r.expires_at, r.id)):
        found[row.customer_id].append((row.id, int(row.remaining), row.expires_at))
    return dict(found)


async def announced_tiers(conn: AsyncConnection, customer_ids: Iterable[str]) -> dict[str, str | None]:
    """The tier last announced for each customer (None: the lowest, or never announced)."""
    wanted = sorted(set(customer_ids))
    rows = await conn.execute(select(accounts.c.customer_id, accounts.c.tier).where(accounts.c.customer_id.in_(wanted)))
    return {**dict.fromkeys(wanted), **dict(rows.all())}


async def set_tiers(conn: AsyncConnection, tiers: dict[str, str | None]) -> None:
    """Store the tiers announced (None: the lowest)."""
    await conn.execute(insert(accounts).on_conflict_do_nothing(index_elements=["customer_id"]),
                       [{"customer_id": c} for c in sorted(tiers)])
    await conn.execute(update(accounts).where(accounts.c.customer_id == bindparam("account"))
                       .values(tier=bindparam("new_tier")),
                       [{"account": c, "new_tier": t} for c, t in sorted(tiers.items())])


async def holders_of_tiers(conn: AsyncConnection, *, after: str, limit: int) -> list[str]:
    """Customers announced in a tier above the lowest, by id after `after` (a sweep's page)."""
    rows = await conn.execute(select(accounts.c.customer_id).where(accounts.c.tier.is_not(None),
                                                                   accounts.c.customer_id > after)
                              .order_by(accounts.c.customer_id).limit(limit))
    return list(rows.scalars())
