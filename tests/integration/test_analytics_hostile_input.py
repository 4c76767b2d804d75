"""Hostile query parameters on the analytics API: each is a 4xx naming the problem, never a 500; and the
recent moves honour the date range they accept."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.generated_shop import NOW
from tests.support.stage_engine import ADMIN, API, deliver, ev, stage_engine_client


@pytest.fixture(scope="module")
async def client(namespace, engine):
    events = [ev("track", NOW - timedelta(days=d), event="Order Completed", userId=f"u{d % 3}",
                 properties={"order_id": f"o{d}", "revenue": 10}) for d in (1, 5, 20, 40)]
    await deliver(namespace, engine, events, now=NOW)
    async with stage_engine_client(namespace, api_token=API, admin_token=ADMIN, sends=API,
                                   clock=lambda: NOW) as http:
        yield http


@pytest.mark.parametrize("path", [
    "/v1/analytics/fits/%00",
    "/v1/analytics/fits/a%00b",
])
async def test_a_nul_byte_in_the_fit_id_is_not_a_500(client, path):
    response = await client.get(path)
    assert response.status_code in (400, 404, 422), (response.status_code, response.text[:300])


@pytest.mark.parametrize("route", ["/v1/analytics/funnel", "/v1/analytics/stages", "/v1/analytics/cohorts",
                                   "/v1/analytics/transitions", "/v1/analytics/rfm", "/v1/analytics/clv",
                                   "/v1/analytics/customers.csv"])
@pytest.mark.parametrize("params", [
    {"start": "0001-01-01T00:30:00+01:00"},  # before year 1 in UTC
    {"end": "9999-12-31T23:59:00-01:00"},  # after year 9999 in UTC
    {"start": "0001-01-01T00:30:00+01:00", "end": "0001-01-02T00:00:00+00:00"},
])
async def test_extreme_offsets_are_not_a_500(client, route, params):
    response = await client.get(route, params=params)
    assert response.status_code < 500, (response.status_code, response.text[:300])


async def test_an_extreme_calibration_end_is_not_a_500(client):
    response = await client.post("/v1/admin/analytics/fits", json={"calibration_end": "0001-01-01T00:30:00+01:00"},
                                 headers={"authorization": f"Bearer {ADMIN}"})
    assert response.status_code < 500, (response.status_code, response.text[:300])


async def test_recent_moves_honour_the_date_range_they_accept(client):
    end = NOW - timedelta(days=30)
    moves = (await client.get("/v1/analytics/transitions", params={"end": end.isoformat()})).json()
    late = [m["event_time"] for m in moves if m["event_time"] >= end.isoformat().replace("+00:00", "Z")]
    assert moves and not late, moves  # the dashboard sends its From/To here; they are ignored
