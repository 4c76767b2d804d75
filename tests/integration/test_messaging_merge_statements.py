"""Messaging's merges in fewer statements (issue 20) change nothing: over random chains of merges among a few
keys - guests and users, with waiting and queued messages, addresses, claims, latest transitions, holdout groups and
last events -, the handler's result is the one the merge's statements one by one (as they were before they were
folded together) give, table by table. Real PostgreSQL; both applied to the same state in one transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lifecycle_devstack.services import BY_NAME, StackConfig
from lifecycle_messaging.db import contacts, gateway, last_events, latest, merges
from lifecycle_messaging.db.contacts import MESSAGE_OWNER_SQL, REPEATS_SQL
from lifecycle_messaging.domain.people import Alias, person_of
from lifecycle_messaging.handlers.identity_merged import handle_identity_merged
from lifecycle_shared.db import create_engine
from lifecycle_shared.events import (
    IDENTITY_MERGED_TYPE,
    STAGE_CHANGED_TYPE,
    CloudEvent,
    IdentityMergedData,
    StageChangedData,
    TouchpointData,
)
from lifecycle_shared.kafka.registry import Typed
from sqlalchemy import Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.support.messaging import messaging_namespace, messaging_routes

NOW = datetime(2026, 5, 1, tzinfo=UTC)
KEYS = ("g0", "g1", "g2", "u0", "u1")  # guests (anonymous ids) and users
TABLES = {"messages": "id", "contacts": "customer_id", "aliases": "absorbed_id", "claims": "anonymous_id",
          "latest_transitions": "customer_id", "holdout_assignments": "campaign, person",
          "last_events": "customer_id, event_type"}


@pytest.fixture(scope="module")
def namespace(infra) -> StackConfig:
    return messaging_namespace(infra)


# ---- the merge's statements one by one, as they were before issue 20 folded them (the reference) ------------

_ALIAS = text("INSERT INTO aliases (absorbed_id, survivor_id, user_id) VALUES (:absorbed, :survivor, :user) "
              "ON CONFLICT (absorbed_id) DO UPDATE SET survivor_id = excluded.survivor_id, user_id = excluded.user_id "
              "WHERE aliases.user_id IS NULL OR aliases.user_id = excluded.user_id")
_REPOINT = text("UPDATE aliases SET survivor_id = :survivor, user_id = COALESCE(:user, user_id) "
                "WHERE survivor_id = ANY(:absorbed) AND (user_id IS NULL OR user_id = :user)"
                ).bindparams(bindparam("absorbed", type_=ARRAY(Text)), bindparam("user", type_=Text))
_FOLLOWING = f"m.customer_id = ANY(:absorbed) AND COALESCE({MESSAGE_OWNER_SQL}, :user) IS NOT DISTINCT FROM :user"
_ABSORBED, _IDS = bindparam("absorbed", type_=ARRAY(Text)), bindparam("ids", type_=ARRAY(Text))
_USER, _PERSON = bindparam("user", type_=Text), bindparam("person", type_=Text)
_SUPERSEDE = text(f"UPDATE messages m SET status = 'superseded' WHERE {_FOLLOWING} AND m.status = 'awaiting_contact' "
                  f"AND {REPEATS_SQL.format(person=':person')}").bindparams(_ABSORBED, _USER, _PERSON)
_MOVE = text("UPDATE messages m SET customer_id = :survivor, user_id = COALESCE(:user, m.user_id), "
             f"linked_ids = ARRAY(SELECT DISTINCT unnest(m.linked_ids || :ids)) WHERE {_FOLLOWING}"
             ).bindparams(_ABSORBED, _IDS, _USER)
_COPY_CONTACT = text(
    "INSERT INTO contacts (customer_id, email, linked_ids, user_id) "
    "SELECT :survivor, c.email, ARRAY(SELECT DISTINCT unnest(c.linked_ids || :ids)), c.user_id FROM contacts c "
    "WHERE c.customer_id = ANY(:absorbed) AND c.user_id IS NOT DISTINCT FROM :user "
    "ORDER BY c.updated_at DESC, c.customer_id LIMIT 1 ON CONFLICT (customer_id) DO NOTHING"
).bindparams(_ABSORBED, _IDS, _USER)
_READDRESS = text("UPDATE messages SET recipient = :email WHERE customer_id = :survivor AND status = 'queued' "
                  "AND channel = 'email' AND recipient IS DISTINCT FROM :email")


async def merge_one_by_one(conn: AsyncConnection, merge: IdentityMergedData) -> None:
    merged_into = (await merges.aliases_of(conn, [merge.survivor_id])).get(merge.survivor_id)
    survivor = (merged_into if merged_into is not None and merge.user_id in (None, merged_into.user_id)
                else Alias(survivor_id=merge.survivor_id, user_id=merge.user_id))
    absorbed = sorted({merge.absorbed_id, *merge.absorbed_ids} - {merge.survivor_id, survivor.survivor_id})
    if not absorbed:
        return
    key, user = survivor.survivor_id, survivor.user_id
    await conn.execute(_ALIAS, [{"absorbed": a, "survivor": key, "user": user} for a in absorbed])
    await conn.execute(_REPOINT, {"absorbed": absorbed, "survivor": key, "user": user})
    await conn.execute(_SUPERSEDE, {"absorbed": absorbed, "user": user, "person": person_of(key, owner=user)})
    await conn.execute(_MOVE, {"absorbed": absorbed, "ids": [*absorbed, key], "user": user, "survivor": key})
    await conn.execute(_COPY_CONTACT, {"absorbed": absorbed, "ids": [*absorbed, key], "user": user, "survivor": key})
    for sql in (latest.HAND_OVER_SQL, gateway.HAND_OVER_SQL, last_events.HAND_OVER_SQL):
        await conn.execute(text(sql).bindparams(_ABSORBED), {"absorbed": absorbed, "survivor": key})
    if known := (await contacts.known(conn, [key])).get(key):
        await conn.execute(_READDRESS, {"email": known.email, "survivor": key})
        await contacts.release(conn, [contacts.Contact(email=known.email, linked_ids=[key, *known.linked_ids],
                                                       user_id=known.user_id)])


# ---- the state a chain of merges meets ---------------------------------------------------------------------


def is_user(key: str) -> bool:
    return key.startswith("u")


def transition(key: str, anonymous: list[str], email: str | None, minute: int) -> CloudEvent:
    at = NOW + timedelta(minutes=minute)
    data = StageChangedData(customer_id=key, user_id=key if is_user(key) else None, anonymous_ids=anonymous,
                            from_stage=None, to_stage="awareness", reason="r", rule_version="v",
                            cause_event_ids=[str(uuid.uuid4())], event_time=at, processed_at=at,
                            traits={"email": email} if email else {})
    return CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=STAGE_CHANGED_TYPE, time=at, subject=key,
                      data=data.model_dump(mode="json"))


def identify(user: str | None, visitor: str | None, email: str) -> CloudEvent:
    data = TouchpointData(type="identify", anonymousId=visitor, userId=user, messageId=str(uuid.uuid4()),
                          traits={"email": email}, timestamp=NOW, receivedAt=NOW, verified=True)
    return CloudEvent(id=str(uuid.uuid4()), source="/sources/web", type="touchpoint.identify", time=NOW,
                      subject=user or visitor, data=data.model_dump(mode="json"))


def merged(absorbed: str, survivor: str, user: str | None) -> CloudEvent:
    data = IdentityMergedData(survivor_id=survivor, absorbed_id=absorbed, absorbed_ids=[absorbed], user_id=user,
                              reason="identify" if user else "alias", cause_event_ids=["c"], event_time=NOW,
                              processed_at=NOW)
    return CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=IDENTITY_MERGED_TYPE, time=NOW,
                      subject=survivor, data=data.model_dump(mode="json"))


key = st.sampled_from(KEYS)
setup_step = st.one_of(
    st.tuples(st.just("transition"), key, st.lists(st.sampled_from(KEYS[:3]), max_size=2, unique=True),
              st.sampled_from([None, "a@example.com", "b@example.com"])),
    st.tuples(st.just("identify"), st.sampled_from([None, "u0", "u1"]), st.sampled_from([None, *KEYS[:3]]),
              st.sampled_from(["a@example.com", "b@example.com", "c@example.com"])),
    st.tuples(st.just("holdout"), key, st.sampled_from(["welcome", "retention_offer"]), st.integers(0, 3)),
    st.tuples(st.just("last_event"), key, st.just("touchpoint.order_completed"), st.integers(0, 3)),
    st.tuples(st.just("merge"), key, key, st.sampled_from(["none", "survivor", "u0", "u1"])),  # aliases before
)
merge_step = st.tuples(key, key, st.sampled_from(["none", "survivor", "u0", "u1"]))


def merge_of(absorbed: str, survivor: str, user: str) -> CloudEvent:
    return merged(absorbed, survivor, {"none": None, "survivor": survivor if is_user(survivor) else None}
                  .get(user, user))


async def set_up(conn: AsyncConnection, steps: list[tuple[Any, ...]]) -> None:
    route = messaging_routes(NOW)
    for minute, (kind, who, other, detail) in enumerate(steps):
        if kind == "holdout":
            await conn.execute(text("INSERT INTO holdout_assignments (campaign, person, \"group\", assigned_at) "
                                    "VALUES (:c, :p, 'holdout', :at) ON CONFLICT DO NOTHING"),
                               {"c": other, "p": who, "at": NOW + timedelta(minutes=detail)})
            continue
        if kind == "last_event":
            await last_events.record(conn, {(who, other): NOW + timedelta(minutes=detail)})
            continue
        if kind == "identify" and not (who or other):
            continue
        if kind == "transition":
            event = transition(who, [i for i in other if i != who], detail, minute)
        else:
            event = identify(who, other, detail) if kind == "identify" else merge_of(who, other, detail)
        found = route(event.type)
        assert found is not None
        await found.handler(conn, [found.typed(event)])


async def tables(conn: AsyncConnection) -> dict[str, list[tuple]]:
    found = {}
    for table, order in TABLES.items():
        rows = (await conn.execute(text(f"SELECT * FROM {table} ORDER BY {order}"))).mappings().all()
        found[table] = [tuple((k, v) for k, v in row.items() if k != "seq") for row in rows]  # seq: a sequence's
    return found


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=st.lists(setup_step, max_size=8), chain=st.lists(merge_step, min_size=1, max_size=5))
# A guest's waiting welcome repeating the user's queued one: superseded as it moves.
@example(steps=[("transition", "u0", [], "a@example.com"), ("transition", "g0", [], None)],
         chain=[("g0", "u0", "survivor")])
# A survivor merged before the run into a key an earlier merge of the run absorbs: it goes where that one went.
@example(steps=[("merge", "g0", "g1", "none")], chain=[("g1", "u0", "survivor"), ("g2", "g0", "none")])
# A guest merged into another guest a user claimed: its waiting welcome superseded as the survivor's address
# releases it (the user has theirs queued).
@example(steps=[("identify", "u0", "g0", "a@example.com"), ("transition", "u0", [], "a@example.com"),
                ("transition", "g1", [], None)], chain=[("g1", "g0", "none")])
# A guest's queued email moves to a user with another address: readdressed.
@example(steps=[("identify", "u0", None, "b@example.com"), ("transition", "g0", [], "a@example.com")],
         chain=[("g0", "u0", "survivor")])
async def test_a_run_of_merges_leaves_what_its_statements_one_by_one_leave(namespace, steps, chain):
    engine = create_engine(namespace.database_url(BY_NAME["messaging"]))
    events = [merge_of(*merge) for merge in chain]
    typed = [Typed(event, IdentityMergedData.model_validate(event.data)) for event in events]
    try:
        async with engine.connect() as conn:
            await conn.begin()
            await set_up(conn, steps)
            folded = await conn.begin_nested()
            await handle_identity_merged(conn, typed)
            after_folded = await tables(conn)
            await folded.rollback()
            one_by_one = await conn.begin_nested()
            for each in typed:
                await merge_one_by_one(conn, each.data)
            after_one_by_one = await tables(conn)
            await one_by_one.rollback()
            await conn.rollback()
        assert after_folded == after_one_by_one
    finally:
        await engine.dispose()
