"""The SQL of the rewards catalogue, redemptions and idempotent answers. Never commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_loyalty.db.models import idempotent_answers, redemptions, rewards, spend_allocations
from lifecycle_loyalty.domain.redeeming import Reward


def _reward(row: Any) -> Reward:
    return Reward(id=row.id, name=row.name, kind=row.kind, cost=int(row.cost),
                  tiers=tuple(row.tiers) if row.tiers is not None else None,
                  stock=int(row.stock) if row.stock is not None else None, active=row.active)


async def put_reward(conn: AsyncConnection, reward: Reward) -> None:
    values = {"name": reward.name, "kind": reward.kind, "cost": reward.cost,
              "tiers": list(reward.tiers) if reward.tiers is not None else None, "stock": reward.stock,
              "active": reward.active}
    stmt = insert(rewards).values(id=reward.id, **values)
    await conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={**values, "updated_at": func.now()}))


async def reward(conn: AsyncConnection, reward_id: str) -> Reward | None:
    row = (await conn.execute(select(rewards).where(rewards.c.id == reward_id))).one_or_none()
    return _reward(row) if row else None


async def catalogue(conn: AsyncConnection, *, active_only: bool) -> list[Reward]:
    stmt = select(rewards).order_by(rewards.c.cost, rewards.c.id)
    if active_only:
        stmt = stmt.where(rewards.c.active)
    return [_reward(row) for row in await conn.execute(stmt)]


async def take_stock(conn: AsyncConnection, reward_id: str) -> bool:
    """One unit of the reward's stock taken (unlimited stock: always); False when none is left."""
    taken = await conn.execute(update(rewards).where(rewards.c.id == reward_id, or_(
        rewards.c.stock.is_(None), rewards.c.stock > 0)).values(stock=rewards.c.stock - 1).returning(rewards.c.id))
    return taken.first() is not None


async def return_stock(conn: AsyncConnection, reward_id: str) -> None:
    await conn.execute(update(rewards).where(rewards.c.id == reward_id, rewards.c.stock.is_not(None))
                       .values(stock=rewards.c.stock + 1))


async def add(conn: AsyncConnection, *, redemption_id: str, customer_id: str, reward: Reward, at: datetime,
              taken: tuple[tuple[str, int], ...]) -> None:
    await conn.execute(insert(redemptions).values(id=redemption_id, customer_id=customer_id, reward_id=reward.id,
                                                  cost=reward.cost, status="redeemed", created_at=at))
    await conn.execute(insert(spend_allocations), [{"redemption_id": redemption_id, "lot_id": lot_id, "points": p}
                                                   for lot_id, p in taken])


async def locked(conn: AsyncConnection, redemption_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(redemptions).where(redemptions.c.id == redemption_id)
                              .with_for_update())).mappings().one_or_none()
    return dict(row) if row else None


async def allocations(conn: AsyncConnection, redemption_id: str) -> tuple[tuple[str, int], ...]:
    rows = await conn.execute(select(spend_allocations.c.lot_id, spend_allocations.c.points)
                              .where(spend_allocations.c.redemption_id == redemption_id)
                              .order_by(spend_allocations.c.lot_id))
    return tuple((row.lot_id, int(row.points)) for row in rows)


async def cancel(conn: AsyncConnection, redemption_id: str, *, at: datetime) -> None:
    await conn.execute(update(redemptions).where(redemptions.c.id == redemption_id)
                       .values(status="cancelled", cancelled_at=at))


async def of_customer(conn: AsyncConnection, customer_id: str, *, limit: int) -> list[dict[str, Any]]:
    rows = await conn.execute(select(redemptions).where(redemptions.c.customer_id == customer_id)
                              .order_by(redemptions.c.created_at, redemptions.c.id).limit(limit))
    return [dict(row) for row in rows.mappings()]


async def answer(conn: AsyncConnection, *, scope: str, key: str) -> tuple[str, int, dict[str, Any]] | None:
    row = (await conn.execute(select(idempotent_answers).where(idempotent_answers.c.scope == scope,
                                                               idempotent_answers.c.key == key))).one_or_none()
    return (row.request_hash, int(row.status), row.body) if row else None


async def store_answer(conn: AsyncConnection, *, scope: str, key: str, request_hash: str, status: int,
                       body: dict[str, Any]) -> None:
    await conn.execute(insert(idempotent_answers).values(scope=scope, key=key, request_hash=request_hash,
                                                         status=status, body=body))
