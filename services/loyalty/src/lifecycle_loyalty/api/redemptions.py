"""The rewards catalogue and redemptions (API token), and the catalogue's admin (admin token).

`POST /v1/customers/{id}/redemptions` needs an `Idempotency-Key` header: the same key (for the same customer
id) again answers what it answered the first time, whatever happened since; the same key with another body
is a 409 `idempotency_key_reused`. A redemption takes its cost from the oldest available lots in one `spend`
entry, under the customer's account row lock, and one unit of the reward's stock, and announces it
(`loyalty.reward_redeemed` on loyalty-events.v1, through the outbox); cancelling it gives the
points back to the lots they came from (their expiry unchanged) and the unit back to the stock.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Path
from fastapi.responses import JSONResponse
from lifecycle_shared.auth import AdminAccess, ApiAccess
from lifecycle_shared.db import add_to_outbox
from lifecycle_shared.events import RewardRedeemedData
from lifecycle_shared.http import CustomerId, Engine, Settings, error_body, errors
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from lifecycle_loyalty.api.deps import Now
from lifecycle_loyalty.db import aliases, lots, redemptions, rulesets
from lifecycle_loyalty.domain.announcements import reward_redeemed
from lifecycle_loyalty.domain.lots import give_back
from lifecycle_loyalty.domain.redeeming import (
    REWARD_KINDS,
    Refusal,
    Reward,
    cancel_entry,
    decide_redemption,
)
from lifecycle_loyalty.tiers import tier_of

router = APIRouter(prefix="/v1", tags=["redemptions"], dependencies=[ApiAccess], responses=errors(401, 403))
admin_router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[AdminAccess], responses=errors(401, 403))

RewardId = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")]
IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=200,
                                       pattern=r"^[\x21-\x7e]+$",
                                       description="a key the client makes per redemption it means (e.g. a UUID)")]


def _storable(value: str) -> str:
    """Text PostgreSQL can store: valid Unicode (no lone surrogates)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("not valid Unicode text") from None
    return value


Text = Annotated[str, Field(min_length=1, max_length=200, pattern="^[^\x00]+$"), AfterValidator(_storable)]


class RewardIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text
    kind: str = Field(pattern="^(" + "|".join(REWARD_KINDS) + ")$")
    cost: int = Field(gt=0, le=10**12, description="points")
    tiers: list[Annotated[Text, Field(max_length=50)]] | None = Field(
        None, max_length=20, description="the tiers that may redeem it; null: every tier")
    stock: int | None = Field(None, ge=0, le=10**12, description="null: unlimited")
    active: bool = True


class RewardOut(RewardIn):
    id: str


class RedemptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reward_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")


class RedemptionOut(BaseModel):
    id: str
    customer_id: str
    reward_id: str
    cost: int
    status: str
    created_at: datetime
    cancelled_at: datetime | None


def _reward_out(reward: Reward) -> RewardOut:
    return RewardOut(id=reward.id, name=reward.name, kind=reward.kind, cost=reward.cost,
                     tiers=list(reward.tiers) if reward.tiers is not None else None, stock=reward.stock,
                     active=reward.active)


@admin_router.put("/rewards/{reward_id}", response_model=RewardOut, responses=errors(400))
async def put_reward(reward_id: RewardId, body: RewardIn, engine: Engine) -> RewardOut:
    """Add a reward to the catalogue, or change it (its stock included)."""
    reward = Reward(id=reward_id, name=body.name, kind=body.kind, cost=body.cost,
                    tiers=tuple(body.tiers) if body.tiers is not None else None, stock=body.stock, active=body.active)
    async with engine.begin() as conn:
        await redemptions.put_reward(conn, reward)
    return _reward_out(reward)


@admin_router.get("/rewards", response_model=list[RewardOut])
async def admin_catalogue(engine: Engine) -> list[RewardOut]:
    """Every reward, inactive ones too."""
    async with engine.connect() as conn:
        return [_reward_out(r) for r in await redemptions.catalogue(conn, active_only=False)]


@router.get("/rewards", response_model=list[RewardOut])
async def get_catalogue(engine: Engine) -> list[RewardOut]:
    """The rewards customers can redeem, cheapest first."""
    async with engine.connect() as conn:
        return [_reward_out(r) for r in await redemptions.catalogue(conn, active_only=True)]


def _out(row: dict[str, Any]) -> RedemptionOut:
    return RedemptionOut(**{k: row[k] for k in RedemptionOut.model_fields})


@router.post("/customers/{customer_id:path}/redemptions", status_code=201, response_model=RedemptionOut,
             responses=errors(400, 404, 409))
async def redeem(customer_id: CustomerId, body: RedemptionIn, key: IdempotencyKey, engine: Engine,
                 settings: Settings, now: Now) -> JSONResponse:
    """Redeem a reward with the customer's available points. 409: `insufficient_points`, `out_of_stock`,
    `not_for_this_tier`, `idempotency_key_reused`; 404: `unknown_reward`."""
    request_hash = hashlib.sha256(json.dumps(body.model_dump(), sort_keys=True).encode()).hexdigest()
    async with engine.begin() as conn:
        account = (await aliases.lock_and_resolve(conn, [customer_id]))[customer_id]
        held = (await lots.lock(conn, [account]))[account]  # the account's row lock: one redemption at a time
        known = await redemptions.answer(conn, scope=customer_id, key=key)
        if known is not None:
            if known[0] != request_hash:
                raise HTTPException(409, {"code": "idempotency_key_reused", "message":
                                          "this Idempotency-Key was used with another body: use a new key"})
            return JSONResponse(known[2], status_code=known[1])
        redemption_id = str(uuid.uuid4())
        reward = await redemptions.reward(conn, body.reward_id)
        rules = await rulesets.in_force(conn)
        tier = (await tier_of(conn, account, now=now, rules=rules)).tier
        outcome = decide_redemption(held, reward, redemption_id=redemption_id, tier=tier,
                                    rule_version=rules.version, now=now)
        stocked = reward is None or isinstance(outcome, Refusal) or await redemptions.take_stock(conn, reward.id)
        if not stocked:
            outcome = Refusal(409, "out_of_stock", "the reward is out of stock")
        if isinstance(outcome, Refusal):
            status, answer = outcome.status, error_body(outcome.status, {"code": outcome.code,
                                                                          "message": outcome.message})
        else:
            assert reward is not None
            await lots.record(conn, held, outcome)
            await redemptions.add(conn, redemption_id=redemption_id, customer_id=account, reward=reward, at=now,
                                  taken=outcome.taken)
            await add_to_outbox(conn, [reward_redeemed(RewardRedeemedData(
                customer_id=account, redemption_id=redemption_id, reward_id=reward.id, reward_kind=reward.kind,
                cost=reward.cost, redeemed_at=now), topic=settings.kafka.topics.loyalty_events)])
            status = 201
            answer = RedemptionOut(id=redemption_id, customer_id=account, reward_id=reward.id, cost=reward.cost,
                                   status="redeemed", created_at=now, cancelled_at=None).model_dump(mode="json")
        await redemptions.store_answer(conn, scope=customer_id, key=key, request_hash=request_hash, status=status,
                                       body=answer)
    return JSONResponse(answer, status_code=status)


def _redemption_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise HTTPException(404, f"no redemption '{value[:40]}'") from None


@router.post("/customers/{customer_id:path}/redemptions/{redemption_id}/cancel", response_model=RedemptionOut,
             responses=errors(400, 404))
async def cancel(customer_id: CustomerId, redemption_id: Annotated[str, Path(max_length=64)], engine: Engine,
                 now: Now) -> RedemptionOut:
    """Cancel a redemption: its points go back to the lots they came from (with their expiry), the reward's
    unit back to the stock. Cancelling it again changes nothing."""
    wanted = _redemption_id(redemption_id)
    async with engine.begin() as conn:
        account = (await aliases.lock_and_resolve(conn, [customer_id]))[customer_id]
        taken = await redemptions.allocations(conn, wanted)
        held = (await lots.lock(conn, [account], with_lots=[lot_id for lot_id, _ in taken]))[account]
        row = await redemptions.locked(conn, wanted)
        if row is None or (await aliases.resolve(conn, [row["customer_id"]]))[row["customer_id"]] != account:
            raise HTTPException(404, f"no redemption '{wanted}' for this customer")
        if row["status"] == "redeemed":
            rule_version = (await rulesets.in_force(conn)).version
            entry = cancel_entry(account, reward_id=row["reward_id"], cost=int(row["cost"]), redemption_id=wanted,
                                 rule_version=rule_version, now=now)
            await lots.record(conn, held, give_back(held, entry, taken))
            await redemptions.cancel(conn, wanted, at=now)
            await redemptions.return_stock(conn, row["reward_id"])
            row = {**row, "status": "cancelled", "cancelled_at": now}
    return _out(row)


@router.get("/customers/{customer_id:path}/redemptions", response_model=list[RedemptionOut])
async def get_redemptions(customer_id: CustomerId, engine: Engine) -> list[RedemptionOut]:
    """The customer's redemptions, oldest first (the first 1,000)."""
    async with engine.connect() as conn:
        account = (await aliases.resolve(conn, [customer_id]))[customer_id]
        return [_out(row) for row in await redemptions.of_customer(conn, account, limit=1000)]
