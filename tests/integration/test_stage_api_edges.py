"""The stage engine's profile and admin APIs at their edges (real PostgreSQL, the app in-process): the
customer list shows each customer's ids; odd cursors, paths and bodies never answer 5xx."""

from __future__ import annotations

import json

import pytest

from tests.support.stage_engine import ADMIN, API, T0, _h, deliver, ev, stage_engine_client

# --- API ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
async def api(namespace):
    async with stage_engine_client(namespace, api_token=API, admin_token=ADMIN, sends=API) as client:
        yield client


async def test_the_customer_list_shows_each_customers_anonymous_ids(namespace, engine, api):
    h = _h()
    anon, user = f"a-{h}", f"u-{h}"
    await deliver(namespace, engine, [ev("identify", T0, userId=user, anonymousId=anon)], now=T0)
    single = (await api.get(f"/v1/customers/{user}")).json()
    assert single["anonymous_ids"] == [anon]
    cursor, listed = None, None
    while listed is None:
        page = (await api.get("/v1/customers", params={"stage": "awareness", "limit": 500,
                                                       **({"cursor": cursor} if cursor else {})})).json()
        listed = next((c for c in page["customers"] if c["customer_id"] == user), None)
        cursor = page["next_cursor"]
        if listed is None and cursor is None:
            pytest.fail("the customer is not listed")
    assert listed["anonymous_ids"] == [anon], listed


async def test_odd_requests_never_answer_5xx(api):
    import base64 as b64
    weird_cursor = [b64.urlsafe_b64encode(b).decode() for b in (b"\xff\xfe", b"{12345678-1234-5678-1234-567812345678}",
                                                               b"urn:uuid:12345678-1234-5678-1234-567812345678",
                                                               b"12345678123456781234567812345678")] + ["%%%", "=", "é"]
    admin = {"authorization": f"Bearer {ADMIN}"}
    answers = []
    for cursor in weird_cursor:
        answers.append(("cursor", cursor, (await api.get("/v1/customers", params={"cursor": cursor})).status_code))
    for path in ("/v1/customers/%ff%fe", "/v1/customers/%ed%a0%80", "/v1/customers/a%00b",
                 "/v1/customers/ /transitions", "/v1/customers/" + "x" * 300,
                 "/v1/content/%ff", "/v1/customers?stage=%ff", "/v1/customers?limit=1e3"):
        answers.append(("path", path, (await api.get(path)).status_code))
    for body in ({"scope": {"customer_id": "\ud800"}}, {"scope": {"stage": "vip"}}, {"scope": []},
                 {"dry_run": False, "rules": {"version": "zz"}},
                 {"rules": {"version": "x", "drift": {"min_days": 1e308}}},
                 {"rules": {"version": "x", "identity": {"trait_ids": ["email"] * 11}}}):
        raw = json.dumps(body).encode()  # ensure_ascii: a lone surrogate goes as its JSON escape
        answers.append(("replay", body, (await api.post("/v1/admin/replays", content=raw,
                                                        headers={**admin, "content-type": "application/json"})
                                         ).status_code))
    for job in ("00000000-0000-0000-0000-000000000000", "{12345678-1234-5678-1234-567812345678}", "%ff", "1" * 500):
        answers.append(("job", job, (await api.get(f"/v1/admin/replays/{job}", headers=admin)).status_code))
    assert [a for a in answers if a[2] >= 500] == [], answers
