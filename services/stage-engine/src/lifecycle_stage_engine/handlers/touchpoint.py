"""touchpoint.* -> fold into the customer's profile; emit lifecycle.stage_changed on a new stage."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lifecycle_shared.events import (
    STAGE_CHANGED_TYPE,
    CloudEvent,
    StageChangedData,
    TouchpointData,
    derived_event_id,
)
from lifecycle_shared.kafka.runner import Emitted, PermanentError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_stage_engine.db import repository as repo
from lifecycle_stage_engine.db.repository import Profile
from lifecycle_stage_engine.domain.stages import (
    DEFAULT_RULES,
    Touch,
    Transition,
    decide_transition,
    fold,
    fold_history,
)
from lifecycle_stage_engine.handlers.identity import resolve_profile

TRAIT_KEYS = ("email", "firstName", "lastName", "name", "phone", "locale", "timezone")


def _touch(event: CloudEvent, touchpoint: TouchpointData) -> Touch:
    return Touch(event_id=event.id, name=event.type.removeprefix("touchpoint."),
                 time=touchpoint.timestamp, properties=touchpoint.properties)


def _traits(touchpoint: TouchpointData) -> dict[str, Any]:
    found = {**touchpoint.context.get("traits", {}), **touchpoint.traits}
    if "locale" not in found and isinstance(touchpoint.context.get("locale"), str):
        found["locale"] = touchpoint.context["locale"]
    if "timezone" not in found and isinstance(touchpoint.context.get("timezone"), str):
        found["timezone"] = touchpoint.context["timezone"]
    return {key: found[key] for key in TRAIT_KEYS if key in found}


async def handle_touchpoint(conn: AsyncConnection, event: CloudEvent, *, topic: str) -> Emitted:
    try:
        touchpoint = TouchpointData.model_validate(event.data)
    except ValidationError as error:
        raise PermanentError(f"touchpoint data invalid: {error.errors()[0]}") from None
    touch = _touch(event, touchpoint)
    profile, merged = await resolve_profile(conn, touchpoint)
    await repo.record_touchpoint(conn, profile_id=profile.id, touch=touch)
    in_order = not merged and (profile.facts.last_event_time is None or touch.time >= profile.facts.last_event_time)
    profile.facts = (fold(profile.facts, touch, DEFAULT_RULES) if in_order
                     else fold_history(await repo.history(conn, profile_id=profile.id), DEFAULT_RULES))
    profile.traits = {**profile.traits, **_traits(touchpoint)}
    profile.last_seen_at = max(profile.last_seen_at, touch.time)
    profile.first_seen_at = min(profile.first_seen_at, touch.time)
    transition = decide_transition(profile.stage, profile.facts, cause=touch, rules=DEFAULT_RULES)
    emitted: Emitted = []
    if transition is not None:
        profile.stage, profile.stage_since = transition.to_stage, touch.time
        emitted.append((topic, await _record_transition(conn, profile, transition, touch)))
    await repo.save_profile(conn, profile)
    return emitted


async def _record_transition(conn: AsyncConnection, profile: Profile, transition: Transition,
                             touch: Touch) -> CloudEvent:
    transition_id = derived_event_id(touch.event_id, "stage-engine", transition.to_stage.value)
    processed_at = datetime.now(UTC)
    await repo.add_transition(
        conn, id=transition_id, profile_id=profile.id, customer_id=profile.customer_id,
        from_stage=transition.from_stage.value if transition.from_stage else None,
        to_stage=transition.to_stage.value, reason=transition.reason,
        rule_version=transition.rule_version, cause_event_ids=[touch.event_id],
        event_time=touch.time, processed_at=processed_at)
    data = StageChangedData(
        customer_id=profile.customer_id, user_id=profile.user_id,
        anonymous_ids=await repo.anonymous_ids(conn, profile_id=profile.id),
        from_stage=transition.from_stage.value if transition.from_stage else None,
        to_stage=transition.to_stage.value, reason=transition.reason,
        rule_version=transition.rule_version, cause_event_ids=[touch.event_id],
        event_time=touch.time, processed_at=processed_at, traits=profile.traits,
        orders=len(profile.facts.order_ids), revenue=profile.facts.revenue)
    return CloudEvent(id=transition_id, source="/stage-engine", type=STAGE_CHANGED_TYPE,
                      time=touch.time, subject=profile.customer_id, data=data.model_dump(mode="json"))
