"""The stage engine's part of a GDPR erasure (docs/erasure.md), on real PostgreSQL through the real runner: a
customer with an email, a phone, an anonymousId and a userId, merged, with orders; the scan of every column of
every table finds each identifier first (the positive control) and none after the erasure; revenue stays; a
second erasure by another of their ids is a no-op with the same report."""

from __future__ import annotations

from datetime import timedelta

from lifecycle_devstack.services import BY_NAME
from lifecycle_stage_engine.db import erasure
from lifecycle_stage_engine.erasure import erase_and_announce
from lifecycle_stage_engine.main import create_app
from lifecycle_stage_engine.settings import StageEngineSettings
from sqlalchemy import text

from tests.support.erasure import scan_database
from tests.support.in_process import kafka_settings, running
from tests.support.stage_engine import T0, _h, announced, deliver, ev, order

PEPPER = b"erasure-test-pepper"


async def test_an_erased_customer_leaves_no_identifier_and_the_revenue_stays(namespace, engine):
    h = _h()
    anon, user = f"anon-{h}", f"user-{h}"
    email, phone = f"ann.{h}@example.com", f"+4479{h[:8]}"
    traits = {"email": email, "phone": phone, "firstName": "Ann"}
    other = f"user-other-{h}"
    await deliver(namespace, engine, [ev("page", T0, anonymousId=anon),
                                      ev("identify", T0 + timedelta(hours=1), anonymousId=anon, userId=user,
                                         traits=traits),
                                      order(T0 + timedelta(hours=2), f"o-{h}", userId=user),
                                      order(T0 + timedelta(hours=3), f"o2-{h}", userId=other)],
                  now=T0 + timedelta(hours=3))
    needles = [anon, user, email, phone]
    before = await scan_database(engine, needles)
    assert all(before[needle] for needle in needles), before  # the scan finds them: it looks where they are
    assert "identities.id_value" in before[""] and "profiles.traits" in before[""]

    async with engine.begin() as conn:
        first = await erasure.erase(conn, anon, pepper=PEPPER, now=T0 + timedelta(days=1))
    assert first is not None and not first.repeated
    assert first.counts["identities"] >= 2 and first.counts["profiles"] >= 1 and first.counts["touchpoints"] >= 3

    after = await scan_database(engine, needles)
    assert {needle: after[needle] for needle in needles} == {needle: [] for needle in needles}
    async with engine.connect() as conn:
        revenue = (await conn.execute(text(
            "SELECT sum(CAST(properties->>'revenue' AS numeric)), jsonb_agg(properties) FROM touchpoints"
        ))).first()
    assert revenue[0] == 20, revenue  # the erased customer's order still counts, anonymised
    assert (await scan_database(engine, [other]))[other]  # someone else is untouched

    async with engine.begin() as conn:
        again = await erasure.erase(conn, user, pepper=PEPPER, now=T0 + timedelta(days=2))
    assert again is not None and again.repeated
    assert (again.erasure_id, again.counts, again.requested_at) == (first.erasure_id, first.counts,
                                                                   first.requested_at)
    async with engine.begin() as conn:
        assert await erasure.erase(conn, f"nobody-{h}", pepper=PEPPER, now=T0) is None


async def test_the_erasure_is_announced_once_with_hashes_only(namespace, engine, topic):
    """erase_and_announce writes customer.erasure_requested to the outbox, keyed by the erasure id, carrying no
    id in clear; a repeat announces nothing more."""
    h = _h()
    user = f"user-{h}"
    await deliver(namespace, engine, [order(T0, f"o-{h}", userId=user)], now=T0)
    async with engine.begin() as conn:
        report = await erase_and_announce(conn, user, pepper=PEPPER, now=T0 + timedelta(days=1), topic=topic)
    assert report is not None
    async with engine.begin() as conn:
        await erase_and_announce(conn, user, pepper=PEPPER, now=T0 + timedelta(days=2), topic=topic)
    events = await announced(engine, topic, [report.erasure_id])
    assert [e["type"] for e in events] == ["customer.erasure_requested"]
    assert events[0]["data"]["id_hashes"] == report.id_hashes and user not in str(events[0])
    assert (await scan_database(engine, [user]))[user] == []


async def test_a_person_seen_again_after_an_erasure_is_new_and_erasable_again(namespace, engine):
    """docs/erasure.md: a later event with an erased id starts a new person; erasing by that id erases the new
    profile (a new erasure id), it does not answer the old report."""
    h = _h()
    user = f"user-{h}"
    await deliver(namespace, engine, [order(T0, f"o-{h}", userId=user)], now=T0)
    async with engine.begin() as conn:
        first = await erasure.erase(conn, user, pepper=PEPPER, now=T0 + timedelta(days=1))
    await deliver(namespace, engine, [order(T0 + timedelta(days=2), f"o2-{h}", userId=user)],
                  now=T0 + timedelta(days=2))
    assert (await scan_database(engine, [user]))[user]
    async with engine.begin() as conn:
        second = await erasure.erase(conn, user, pepper=PEPPER, now=T0 + timedelta(days=3))
    assert first is not None and second is not None and not second.repeated
    assert second.erasure_id != first.erasure_id
    assert (await scan_database(engine, [user]))[user] == []


ADMIN = "erasure-test-admin-token-0e4f2a9c"


def app_settings(namespace, **overrides) -> StageEngineSettings:
    return StageEngineSettings(environment="development", role="api", admin_token=ADMIN,
                               database_url=namespace.database_url(BY_NAME["stage-engine"]),
                               kafka=kafka_settings(namespace), **overrides)


async def test_the_admin_call_answers_202_then_the_same_report_and_404_for_nobody(namespace, engine):
    """POST /v1/admin/erasures through the app: 202 with the stage engine's counts, messaging and loyalty `pending`
    (no URL for them here); again by another id, 200 and the same report; GET answers it; unknown ids 404; without
    the pepper, 503 and nothing erased."""
    h = _h()
    anon, user = f"anon-{h}", f"user-{h}"
    await deliver(namespace, engine, [ev("identify", T0, anonymousId=anon, userId=user, traits={"email": "x@y.z"}),
                                      order(T0 + timedelta(hours=1), f"o-{h}", userId=user)],
                  now=T0 + timedelta(hours=1))
    auth = {"authorization": f"Bearer {ADMIN}"}
    async with running(create_app(app_settings(namespace))) as client:  # no pepper
        refused = await client.post("/v1/admin/erasures", json={"id": user}, headers=auth)
        assert refused.status_code == 503, refused.text
    assert (await scan_database(engine, [user]))[user]
    async with running(create_app(app_settings(namespace, erasure_pepper=PEPPER.decode()),
                                  clock=lambda: T0 + timedelta(days=1))) as client:
        first = await client.post("/v1/admin/erasures", json={"id": user}, headers=auth)
        assert first.status_code == 202, first.text
        report = first.json()
        assert report["status"] == "pending" and report["services"]["stage-engine"]["counts"]["identities"] >= 2
        assert report["services"]["messaging"] == {"status": "pending", "counts": None}
        again = await client.post("/v1/admin/erasures", json={"id": anon}, headers=auth)
        assert (again.status_code, again.json()) == (200, report)
        got = await client.get(f"/v1/admin/erasures/{report['erasure_id']}", headers=auth)
        assert (got.status_code, got.json()) == (200, report)
        assert (await client.post("/v1/admin/erasures", json={"id": f"nobody-{h}"}, headers=auth)).status_code == 404
        assert (await client.get("/v1/admin/erasures/not-a-uuid", headers=auth)).status_code == 404
        assert (await client.post("/v1/admin/erasures", json={"id": user})).status_code == 401
    assert (await scan_database(engine, [user, anon])) | {"": []} == {user: [], anon: [], "": []}
