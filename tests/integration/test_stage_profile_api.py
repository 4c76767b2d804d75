"""The profile API a storefront calls while rendering a page (real PostgreSQL, the app in-process): the
profile's figures, its acquisition (the earliest campaign touch, whatever order events came in), what to
show the visitor, the content table without a profile, and the customer list by stage page by page; a profile
read whose pooled connection the database dropped (the read pool has no pre-ping) answers from a fresh one."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from lifecycle_shared.db import READS_APPLICATION
from sqlalchemy import text

from tests.support.stage_engine import ADMIN, API, T0, _h, deliver, ev, order, stage_engine_client


@pytest.fixture(scope="module")
async def api(namespace):
    async with stage_engine_client(namespace, api_token=API, admin_token=ADMIN, sends=API) as client:
        yield client


async def test_a_profile_answers_what_a_storefront_renders_with(namespace, engine, api):
    h = _h()
    anon, user = f"a-{h}", f"u-{h}"
    later_campaign = {"campaign": {"source": "newsletter", "medium": "email"}}
    await deliver(namespace, engine, [ev("page", T0 + timedelta(hours=1), anonymousId=anon, context=later_campaign)],
                  now=T0 + timedelta(hours=1))
    await deliver(namespace, engine, [  # the first touch arrives late: it decides the acquisition
        ev("page", T0, anonymousId=anon, context={"campaign": {"source": "google", "medium": "cpc"}}),
        ev("identify", T0 + timedelta(hours=2), userId=user, anonymousId=anon, traits={"firstName": "Ann"}),
        order(T0 + timedelta(hours=3), "o1", userId=user), order(T0 + timedelta(days=2), "o2", userId=user)],
        now=T0 + timedelta(days=2))
    profile = (await api.get(f"/v1/customers/{anon}")).json()  # the anonymous id finds the customer
    assert (profile["customer_id"], profile["user_id"], profile["anonymous_ids"]) == (user, user, [anon])
    assert (profile["stage"], profile["previous_stage"], profile["orders"], profile["revenue"]) == (
        "retention", "purchase", 2, 20.0)
    assert profile["last_order"]["order_id"] == "o2" and profile["show"] == "member_offers"
    assert profile["acquisition"] == {"channel": "cpc", "source": "google"}
    assert profile["first_seen_at"].startswith(T0.date().isoformat()) and profile["traits"] == {"firstName": "Ann"}
    assert sorted((i["type"], i["value"]) for i in profile["identities"]) == [("anonymous", anon), ("user", user)]


async def test_a_profile_read_on_a_connection_the_database_dropped_answers_from_a_fresh_one(namespace, engine, api):
    """Many rounds, at several delays: the read may come while the driver is still taking in the server's
    FATAL (asyncpg's InternalClientError, about one round in twenty), or after it saw the socket close."""
    user = f"u-{_h()}"
    await deliver(namespace, engine, [order(T0, "o1", userId=user)], now=T0)
    first = await api.get(f"/v1/customers/{user}")
    for delay in [0, 0, 0.0005, 0.001, 0.002, 0.005] * 5:
        async with engine.connect() as conn:  # as a database restart or an idle timeout would, to the read pool's
            killed = (await conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                              "WHERE datname = current_database() AND application_name = :name"),
                                         {"name": READS_APPLICATION})).scalar()
        await asyncio.sleep(delay)
        again = await api.get(f"/v1/customers/{user}")
        assert killed >= 1 and first.status_code == again.status_code == 200 and again.json() == first.json()


@pytest.mark.parametrize(("stage", "show", "status"), [
    ("new_visitor", "welcome_banner", 200), ("consideration", "comparison_and_faq", 200),
    ("at_risk", "come_back_offer", 200), ("vip", None, 404)])
async def test_the_content_table_answers_without_a_profile(api, stage, show, status):
    response = await api.get(f"/v1/content/{stage}")
    assert response.status_code == status
    if status == 200:
        assert response.json() == {"stage": stage, "show": show}


async def test_the_customer_list_by_stage_pages_through_everyone_once(namespace, engine, api):
    h = _h()
    mine = [f"p-{h}-{i}" for i in range(7)]
    await deliver(namespace, engine, [ev("track", T0, event="Product Viewed", userId=u) for u in mine], now=T0)
    seen, cursor, pages = [], None, 0
    while True:
        page = (await api.get("/v1/customers", params={"stage": "consideration", "limit": 3,
                                                       **({"cursor": cursor} if cursor else {})})).json()
        pages += 1
        assert all(c["stage"] == "consideration" for c in page["customers"])
        seen += [c["customer_id"] for c in page["customers"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) and set(mine) <= set(seen) and pages >= 3
    assert (await api.get("/v1/customers", params={"cursor": "bm90LWEtdXVpZA"})).status_code == 400
