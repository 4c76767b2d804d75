"""The embedded broker (Tansu, memory only) restarting under the four running services: every order
accepted after the restart arrives; services notice, re-create the topics and rejoin.

What cannot survive is documented (README): events in flight in the broker at the moment it
stopped, and consumer offsets (consumers re-read the re-created topics; inboxes drop repeats).
This test runs its own Tansu, whatever broker the rest of the suite uses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import httpx
import pytest
from lifecycle_devstack.broker import EmbeddedBroker
from lifecycle_devstack.infra import Infra
from lifecycle_devstack.ports import free_port
from lifecycle_shared.testing import eventually, make_touchpoint

from tests.support.pipeline import bearer, four_services


@pytest.fixture
def restartable(infra: Infra, tmp_path):
    broker = EmbeddedBroker(free_port(), tmp_path / "broker.log")
    try:
        broker.start()
        config = dataclasses.replace(
            infra.stack_config(), kafka_bootstrap=broker.bootstrap_servers, kafka_idempotence=False,
            embedded_broker=True, extra_env={"LIFECYCLE_KAFKA_TOPIC_CHECK_INTERVAL_S": "0.5"})
        with four_services(infra, config, tmp_path) as (processes, key):
            yield broker, processes, key
    finally:
        broker.stop()


async def test_orders_accepted_after_a_broker_restart_all_arrive(restartable):
    broker, processes, key = restartable
    run = uuid.uuid4().hex[:6]
    ingest, engine, loyalty = (processes[name].url for name in ("ingest", "stage-engine", "loyalty"))

    async def post_until_accepted(client: httpx.AsyncClient, event: dict) -> list[int]:
        """As a client would: retry a 503 (with the same messageId) until it is accepted."""
        answers = []
        while not answers or answers[-1] != 200:
            response = await client.post(ingest + "/v1/track", json=event, auth=(key, ""))
            answers.append(response.status_code)
            assert response.status_code in (200, 503), response.text
            if response.status_code == 503:
                await asyncio.sleep(0.5)
        return answers

    def order(n: int) -> dict:
        return make_touchpoint(event="Order Completed", userId=f"r-{run}-{n}", anonymousId=None,
                               properties={"order_id": f"o-{n}", "revenue": 10 + n})

    async with httpx.AsyncClient(timeout=30) as client:
        await post_until_accepted(client, order(0))
        await eventually(lambda: _profile(client, engine, f"r-{run}-0"), what="the first order applied")

        broker.stop()
        broker.start()  # same port, empty: no topics, no groups, no offsets
        answers = [await post_until_accepted(client, order(n)) for n in range(1, 7)]

        for n in range(1, 7):
            profile = await eventually(lambda n=n: _profile(client, engine, f"r-{run}-{n}"), timeout_s=90,
                                       what=f"order {n}, accepted after the restart, applied")
            assert (profile["orders"], profile["revenue"]) == (1, 10 + n)
            balance = await eventually(lambda n=n: _json(client, f"{loyalty}/v1/customers/r-{run}-{n}/balance",
                                                         lambda b: b["balance"] == 10 + n), timeout_s=60,
                                       what=f"order {n}'s points")
            assert balance["entries"] == 1
        for url in (process.url for process in processes.values()):
            assert (await client.get(url + "/readyz")).status_code == 200
    assert all(a[-1] == 200 for a in answers)
    for name in ("stage-engine", "messaging", "loyalty"):
        log = processes[name].log_path.read_text()
        assert "broker restarted: rejoining with fresh consumers" in log, name


async def _profile(client: httpx.AsyncClient, engine: str, customer: str):
    return await _json(client, f"{engine}/v1/customers/{customer}", lambda p: p["orders"] >= 1)


async def _json(client: httpx.AsyncClient, url: str, ready):
    response = await client.get(url, headers=bearer())
    return response.json() if response.status_code == 200 and ready(response.json()) else None
