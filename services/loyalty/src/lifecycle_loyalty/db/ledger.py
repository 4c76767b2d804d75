"""The SQL of the points ledger and of what is known of each order (aliases: db.aliases). Never commits."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Text, and_, bindparam, delete, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_loyalty import metrics
from lifecycle_loyalty.db.models import customer_aliases, ledger_entries, order_refunds, orders
from lifecycle_loyalty.domain.earning import Entry, OrderState, entry_id
from lifecycle_loyalty.domain.merging import BonusEntry, Completions, Holding, OrderFacts

OrderKey = tuple[str, str]  # (customer_id, order_id)


async def append(conn: AsyncConnection, entries: list[Entry]) -> None:
    """Append entries in one statement; ids derive from cause + rule, so a repeat is a no-op."""
    if entries:
        inserted = await conn.execute(
            insert(ledger_entries).on_conflict_do_nothing(index_elements=["id"])
            .returning(ledger_entries.c.kind, ledger_entries.c.points), [
                {"id": entry_id(e), "customer_id": e.customer_id, "kind": e.kind, "points": e.points,
                 "rule": e.rule, "cause_event_id": e.cause_event_id, "order_id": e.order_id,
                 "rule_version": e.rule_version, "debt": e.debt, "lot_id": e.lot_id, "effective_at": e.at}
                for e in entries])
        for kind, points in inserted.all():  # the rows written, not the repeats
            metrics.written(kind, points)


async def earned_by_rule(conn: AsyncConnection, customer_id: str, *, rule: str, since: datetime,
                         before: datetime) -> int:
    """Points a rule paid a customer for causes that happened in [since, before] (caps)."""
    total = (await conn.execute(select(func.coalesce(func.sum(ledger_entries.c.points), 0)).where(
        ledger_entries.c.customer_id == customer_id, ledger_entries.c.rule == rule,
        ledger_entries.c.kind == "earn", ledger_entries.c.effective_at >= since,
        ledger_entries.c.effective_at <= before))).scalar()
    return int(total or 0)


async def known_ids(conn: AsyncConnection, ids: list[str]) -> set[str]:
    """Which of these entry ids the ledger holds."""
    if not ids:
        return set()
    rows = await conn.execute(select(ledger_entries.c.id).where(ledger_entries.c.id.in_(sorted(set(ids)))))
    return set(rows.scalars())


def _earliest(column_at, column_id, stmt):
    """Keep the stored fact unless the incoming one happened earlier (ties: the smaller event id,
    byte-wise, as Python and the stage engine's fold compare them)."""
    incoming = tuple_(stmt.excluded[column_at.name], stmt.excluded[column_id.name].collate("C"))
    return or_(column_at.is_(None), incoming < tuple_(column_at, column_id.collate("C")))


async def record_completions(conn: AsyncConnection, completions: Completions) -> None:
    """(customer, order) -> (amount, shipping, currency, event id, event time); the earliest completion of an
    order wins."""
    if completions:
        stmt = insert(orders)
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=["customer_id", "order_id"],
            set_={"amount": stmt.excluded.amount, "shipping": stmt.excluded.shipping,
                  "currency": stmt.excluded.currency, "completed_event_id": stmt.excluded.completed_event_id,
                  "completed_at": stmt.excluded.completed_at},
            where=_earliest(orders.c.completed_at, orders.c.completed_event_id, stmt)),
            [{"customer_id": c, "order_id": o, "amount": amount, "shipping": shipping, "currency": currency,
              "completed_event_id": event_id, "completed_at": at}
             for (c, o), (amount, shipping, currency, event_id, at) in sorted(completions.items())])


async def record_refunds(conn: AsyncConnection, refunds: dict[OrderKey, tuple[str, datetime]]) -> None:
    """(customer, order) -> (event id, event time); the earliest refund of an order wins."""
    if refunds:
        stmt = insert(orders)
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=["customer_id", "order_id"],
            set_={"refunded_event_id": stmt.excluded.refunded_event_id, "refunded_at": stmt.excluded.refunded_at},
            where=_earliest(orders.c.refunded_at, orders.c.refunded_event_id, stmt)),
            [{"customer_id": c, "order_id": o, "refunded_event_id": event_id, "refunded_at": at}
             for (c, o), (event_id, at) in sorted(refunds.items())])


RefundRow = tuple[str, str, str, Decimal | None, datetime]  # customer, order, event id, amount, time


async def record_refund_amounts(conn: AsyncConnection, refunds: list[RefundRow]) -> None:
    """Every refund of an order with its amount (None: the whole order)."""
    if refunds:
        await conn.execute(insert(order_refunds).on_conflict_do_nothing(), [
            {"customer_id": c, "order_id": o, "event_id": e, "amount": amount, "refunded_at": at}
            for c, o, e, amount, at in sorted(refunds, key=lambda r: (r[0], r[1], r[2]))])


async def move_refund_amounts(conn: AsyncConnection, customer_ids: list[str], *, survivor_id: str) -> None:
    await conn.execute(update(order_refunds).where(order_refunds.c.customer_id.in_(customer_ids))
                       .values(customer_id=survivor_id))


async def order_states(conn: AsyncConnection, keys: list[OrderKey]) -> list[OrderState]:
    """Each order with the net points the ledger holds for it and what of it expired, on any id of the
    person (an id merged into the customer keeps its entries: its expired points stay expired) (one query)."""
    if not keys:
        return []
    held = (select(ledger_entries.c.customer_id, ledger_entries.c.order_id,
                   func.sum(ledger_entries.c.points).label("held"))
            .where(tuple_(ledger_entries.c.customer_id, ledger_entries.c.order_id).in_(keys))
            .group_by(ledger_entries.c.customer_id, ledger_entries.c.order_id).subquery())
    owner = func.coalesce(customer_aliases.c.survivor_id, ledger_entries.c.customer_id)
    expired = (select(owner.label("customer_id"), ledger_entries.c.order_id,
                      (-func.sum(ledger_entries.c.points)).label("expired"))
               .select_from(ledger_entries.outerjoin(customer_aliases,
                                                     customer_aliases.c.alias_id == ledger_entries.c.customer_id))
               .where(ledger_entries.c.kind == "expire",
                      ledger_entries.c.order_id.in_(sorted({order for _, order in keys})))
               .group_by(owner, ledger_entries.c.order_id).subquery())
    refunded = (select(order_refunds.c.customer_id, order_refunds.c.order_id,
                       func.bool_or(or_(order_refunds.c.amount.is_(None), order_refunds.c.amount <= 0)).label("whole"),
                       func.sum(order_refunds.c.amount).filter(order_refunds.c.amount > 0).label("part"))
                .where(tuple_(order_refunds.c.customer_id, order_refunds.c.order_id).in_(keys))
                .group_by(order_refunds.c.customer_id, order_refunds.c.order_id).subquery())
    rows = await conn.execute(
        select(orders, func.coalesce(held.c.held, 0).label("held"),
               func.coalesce(expired.c.expired, 0).label("expired"), refunded.c.whole, refunded.c.part)
        .outerjoin(held, and_(held.c.customer_id == orders.c.customer_id, held.c.order_id == orders.c.order_id))
        .outerjoin(expired, and_(expired.c.customer_id == orders.c.customer_id,
                                 expired.c.order_id == orders.c.order_id))
        .outerjoin(refunded, and_(refunded.c.customer_id == orders.c.customer_id,
                                  refunded.c.order_id == orders.c.order_id))
        .where(tuple_(orders.c.customer_id, orders.c.order_id).in_(keys))
        .order_by(orders.c.customer_id, orders.c.order_id))
    return [OrderState(customer_id=r.customer_id, order_id=r.order_id, amount=r.amount,
                       completed_event_id=r.completed_event_id, refunded_event_id=r.refunded_event_id,
                       held=int(r.held), expired=int(r.expired), completed_at=r.completed_at,
                       currency=r.currency, shipping=r.shipping or Decimal(0),
                       refunded_part=None if r.whole or r.whole is None else r.part) for r in rows]


async def holdings(conn: AsyncConnection, customer_ids: list[str]) -> list[Holding]:
    """Net points each account holds per order (order None: tied to no order), zeros left out."""
    net = func.sum(ledger_entries.c.points)
    rows = await conn.execute(
        select(ledger_entries.c.customer_id, ledger_entries.c.order_id, net.label("points"))
        .where(ledger_entries.c.customer_id.in_(customer_ids))
        .group_by(ledger_entries.c.customer_id, ledger_entries.c.order_id).having(net != 0))
    return [Holding(customer_id=r.customer_id, order_id=r.order_id, points=int(r.points)) for r in rows]


async def take_orders(conn: AsyncConnection, customer_ids: list[str]) -> list[OrderFacts]:
    """Remove and return what these accounts know of their orders (a merge gives it to the survivor)."""
    rows = await conn.execute(delete(orders).where(orders.c.customer_id.in_(customer_ids)).returning(orders))
    return [OrderFacts(**row) for row in rows.mappings()]


async def bonus_entries(conn: AsyncConnection, owner_of: dict[str, str]) -> dict[str, list[BonusEntry]]:
    """Stage bonuses and their reversals (entries tied to no order) on the given ids, by the id's owner
    (`owner_of`: id -> the customer it belongs to, from `aliases.members`)."""
    if not owner_of:
        return {}
    rows = await conn.execute(
        select(ledger_entries.c.customer_id, ledger_entries.c.kind, ledger_entries.c.rule, ledger_entries.c.points)
        .where(ledger_entries.c.customer_id.in_(sorted(owner_of)), ledger_entries.c.order_id.is_(None),
               ledger_entries.c.kind.in_(("bonus", "reverse", "debt")))
        .order_by(ledger_entries.c.seq))
    held: dict[str, list[BonusEntry]] = {owner: [] for owner in owner_of.values()}
    for row in rows:
        held[owner_of[row.customer_id]].append(BonusEntry(kind=row.kind, rule=row.rule, points=int(row.points)))
    return held


async def balance(conn: AsyncConnection, *, customer_id: str) -> dict[str, int]:
    row = (await conn.execute(
        select(func.coalesce(func.sum(ledger_entries.c.points), 0).label("balance"),
               func.coalesce(func.sum(ledger_entries.c.points).filter(ledger_entries.c.points > 0), 0)
               .label("earned"),
               func.count().label("entries"))
        .where(ledger_entries.c.customer_id == customer_id)
    )).one()
    return {"balance": int(row.balance), "earned": int(row.earned), "entries": int(row.entries)}


async def entries(conn: AsyncConnection, *, customer_id: str) -> list[dict[str, Any]]:
    rows = (await conn.execute(
        select(ledger_entries).where(ledger_entries.c.customer_id == customer_id)
        .order_by(ledger_entries.c.seq)
    )).mappings().all()
    return [dict(row) for row in rows]


TIER_KINDS = ("earn", "adjust", "reverse", "debt", "bonus")


TierEarning = tuple[datetime, int, str | None]  # when, points, the order it is of


async def tier_earnings_of(conn: AsyncConnection, ids_of: dict[str, list[str]]) -> dict[str, list[TierEarning]]:
    """What counts toward each person's tier (`ids_of`: each survivor -> every id of theirs), in one query:
    (when, points, order) of every credit and its reversal, on any of their ids; an order's entries count at
    the order's completion (order None: an entry of no order)."""
    pairs = sorted({(id_, person) for person, ids in ids_of.items() for id_ in ids})
    earned: dict[str, list[TierEarning]] = {person: [] for person in ids_of}
    if not pairs:
        return earned
    owners = select(func.unnest(bindparam("member_ids", type_=ARRAY(Text))).label("id"),
                    func.unnest(bindparam("owner_ids", type_=ARRAY(Text))).label("owner")).subquery()
    when = func.coalesce(orders.c.completed_at, ledger_entries.c.effective_at, ledger_entries.c.created_at)
    rows = await conn.execute(
        select(owners.c.owner, when.label("at"), ledger_entries.c.points, ledger_entries.c.order_id)
        .select_from(owners.join(ledger_entries, ledger_entries.c.customer_id == owners.c.id)
                     .outerjoin(orders, and_(orders.c.customer_id == owners.c.owner,
                                             orders.c.order_id == ledger_entries.c.order_id)))
        .where(ledger_entries.c.kind.in_(TIER_KINDS)),
        {"member_ids": [id_ for id_, _ in pairs], "owner_ids": [person for _, person in pairs]})
    for row in rows:
        earned[row.owner].append((row.at, int(row.points), row.order_id))
    return earned
