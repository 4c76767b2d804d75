"""lifecycle.stage_changed, identity.merged, loyalty.* -> one webhook delivery per endpoint subscribed to it.

Runs after the event's own handler, in the same transaction (so in the same inbox: an event applied
once is fanned out once). Each delivery's webhook-id is derived from (endpoint, event id): a redelivered
event adds nothing, and the id stays the same across retries and replays. Paused endpoints queue too; a
disabled one takes nothing. A historical transition (imported past events) is not sent, as it messages
nobody. Loyalty's events (loyalty-events.v1) start campaigns (`handlers.loyalty_events`) and are then fanned
out, in the same transaction, so the inbox still takes each once.
"""

from __future__ import annotations

from typing import Any

from lifecycle_shared.events import (
    DEBT_RECORDED_TYPE,
    IDENTITY_MERGED_TYPE,
    POINTS_EXPIRING_TYPE,
    REWARD_REDEEMED_TYPE,
    STAGE_CHANGED_TYPE,
    TIER_CHANGED_TYPE,
    DebtRecordedData,
    IdentityMergedData,
    PointsExpiringData,
    RewardRedeemedData,
    StageChangedData,
    TierChangedData,
)
from lifecycle_shared.kafka.registry import Emitted, Handler, Route, Router, Typed, routed_types
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db import webhooks as db
from lifecycle_messaging.domain.webhooks import EVENT_TYPES, STAGE_CHANGED, payload, subscribers, webhook_id


async def handle_webhooks(conn: AsyncConnection, events: list[Typed[Any]]) -> Emitted:
    wanted = [typed for typed in events if typed.event.type in EVENT_TYPES
              and not (typed.event.type == STAGE_CHANGED and getattr(typed.data, "historical", False))]
    if not wanted:
        return []
    subscriptions = await db.subscriptions(conn, sorted({typed.event.type for typed in wanted}))
    if not subscriptions:
        return []
    rows = []
    for typed in wanted:
        data = typed.data.model_dump(mode="json")
        body: bytes | None = None
        for endpoint_id in subscribers(subscriptions, typed.event.type, data):
            body = body or payload(typed.event.type, typed.event.time, data)
            rows.append({"webhook_id": webhook_id(endpoint_id, typed.event.id), "endpoint_id": endpoint_id,
                         "event_id": typed.event.id, "event_type": typed.event.type,
                         "event_time": typed.event.time, "payload": body})
    await db.add_deliveries(conn, rows)
    return []


def with_webhooks(router: Router) -> Router:
    """The router, each event type a webhook endpoint may subscribe to handled by its own handler and then
    fanned out (`handle_webhooks`); an event type only webhooks want is routed to them alone."""
    # The subscribable types that arrive from Kafka (the message.* events are messaging's own, read from its logs).
    models: dict[str, Any] = {STAGE_CHANGED_TYPE: StageChangedData, IDENTITY_MERGED_TYPE: IdentityMergedData,
                              REWARD_REDEEMED_TYPE: RewardRedeemedData, DEBT_RECORDED_TYPE: DebtRecordedData,
                              TIER_CHANGED_TYPE: TierChangedData, POINTS_EXPIRING_TYPE: PointsExpiringData}
    assert set(models) <= set(EVENT_TYPES)
    combined: dict[str, Route] = {}

    def route(event_type: str) -> Route | None:
        found = router(event_type)
        if event_type not in models:
            return found
        if event_type not in combined:
            combined[event_type] = (Route(found.model, _then_webhooks(found.handler)) if found is not None
                                    else Route(models[event_type], handle_webhooks))
        return combined[event_type]

    # The metrics' event types (lifecycle_shared.kafka.registry.routed_types): the router's and the webhooks'.
    route.event_types = tuple(dict.fromkeys([*routed_types(router), *models]))  # type: ignore[attr-defined]
    return route


def _then_webhooks(handler: Handler) -> Handler:
    async def handle(conn: AsyncConnection, events: list[Typed[Any]]) -> Emitted:
        emitted = await handler(conn, events)
        await handle_webhooks(conn, events)
        return emitted

    return handle
