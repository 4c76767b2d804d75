"""Scale-out, proven: several instances of the stage engine, messaging and loyalty in one consumer group
each, against the same broker and databases. An instance added and another SIGKILLed mid-stream lose
nothing and double nothing; a SIGTERMed instance drains (finishes and commits its batch, leaves the group)
and exits 0, so the instance after it re-reads nothing it applied. The end state is compared with
tests/support/scale_out_reference.py, which computes it from the events sent, without the services' code,
and reads the databases with plain SQL."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from lifecycle_devstack.infra import Infra
from lifecycle_devstack.ports import free_port
from lifecycle_devstack.services import BY_NAME, ServiceProcess, StackConfig, run_module
from lifecycle_shared.testing import eventually

from tests.support import scale_out_reference as reference
from tests.support.pipeline import API_TOKEN, wait_until_key_works

CONSUMING = ("stage-engine", "messaging", "loyalty")
DRAIN_S = 15  # LIFECYCLE_KAFKA_DRAIN_TIMEOUT_S: a SIGTERMed instance's grace for its batch in hand


@dataclass
class Fleet:
    """Ingest, and instances of each consuming service sharing one namespace (same groups, same databases)."""

    config: StackConfig
    logs: Path
    ingest: ServiceProcess
    key: str = ""
    instances: dict[str, list[ServiceProcess]] = field(default_factory=lambda: {s: [] for s in CONSUMING})

    def add(self, service: str, **env: str) -> ServiceProcess:
        """One more instance of `service`, on its own port (and with `env` added), started (not yet ready)."""
        number = len(self.instances[service])
        config = dataclasses.replace(self.config, extra_env={**self.config.extra_env, **env})
        process = ServiceProcess(BY_NAME[service], config, self.logs / f"{service}-{number}.log", port=free_port())
        process.start()
        self.instances[service].append(process)
        return process

    async def send(self, client: httpx.AsyncClient, journeys: list[list[dict]], *, chunk: int = 100) -> None:
        """Whole journeys per request (a customer's events stay in order), a few requests at a time."""
        batches: list[list[dict]] = [[]]
        for journey in journeys:
            if len(batches[-1]) + len(journey) > chunk:
                batches.append([])
            batches[-1] += journey
        for first in range(0, len(batches), 4):
            responses = await asyncio.gather(*(
                client.post(self.ingest.url + "/v1/batch", json={"batch": batch}, auth=(self.key, ""))
                for batch in batches[first:first + 4] if batch))
            assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]

    async def rows(self, service: str, sql: str, *args) -> int:
        url = self.config.database_url(BY_NAME[service]).replace("postgresql+asyncpg://", "postgresql://")
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()

    async def observed(self, customers: set[str]) -> dict[str, reference.Customer]:
        return await reference.observed(self.config.postgres_url, self.config.database_prefix, customers)


@pytest.fixture
def crew(infra: Infra, mail_sink, tmp_path_factory) -> Iterator[Fleet]:
    """A fresh namespace with ingest running; each test adds the instances it needs."""
    logs = tmp_path_factory.mktemp("scale-out-logs")
    config = infra.stack_config(smtp_port=mail_sink[1], api_tokens=API_TOKEN,
                                extra_env={"LIFECYCLE_KAFKA_DRAIN_TIMEOUT_S": str(DRAIN_S)})
    infra.prepare(config)
    crew = Fleet(config, logs, ServiceProcess(BY_NAME["ingest"], config, logs / "ingest.log"))
    try:
        crew.ingest.start()
        crew.ingest.wait_ready()
        crew.key = run_module(BY_NAME["ingest"], config, "create-key", "scale-shop", "--server").strip()
        wait_until_key_works(crew.ingest.url, crew.key)
        yield crew
    finally:
        for process in [crew.ingest, *(p for ps in crew.instances.values() for p in ps)]:
            process.stop()


async def ready(*processes: ServiceProcess) -> None:
    await asyncio.gather(*(asyncio.to_thread(p.wait_ready) for p in processes))


async def until_matches(crew: Fleet, want: dict[str, reference.Customer], *, timeout_s: float = 150) -> None:
    """Until the databases hold exactly what the reference says (and no outbox row is left to publish)."""
    async def settled():
        diff = reference.differences(want, await crew.observed(set(want)))
        if diff:
            return None
        left = [await crew.rows(s, "SELECT count(*) FROM outbox WHERE dead_at IS NULL") for s in CONSUMING]
        return not any(left)

    try:
        await eventually(settled, timeout_s=timeout_s, interval_s=1, what="the databases to match the reference")
    finally:
        diff = reference.differences(want, await crew.observed(set(want)))
        assert diff == {}, f"{len(diff)} customers differ, e.g. {dict(list(diff.items())[:3])}"


async def refunds_when_booked(crew: Fleet, client: httpx.AsyncClient, stream: reference.Stream) -> None:
    """The refunds, once loyalty has booked the orders they refund (then each reverses its order's points;
    consumed in the same batch as its order, it would have made no entry at all)."""
    orders = [refund["properties"]["order_id"] for refund in stream.refunds]

    async def booked():
        return await crew.rows("loyalty", "SELECT count(*) FROM ledger_entries WHERE kind = 'earn' AND"
                                          " order_id = ANY($1)", orders) == len(orders)

    await eventually(booked, timeout_s=120, interval_s=0.5, what="the refunded orders' points")
    await crew.send(client, [[refund] for refund in stream.refunds])


async def test_instances_added_and_killed_mid_stream_lose_nothing_and_double_nothing(crew: Fleet):
    stream = reference.stream(f"scale-{uuid.uuid4().hex[:6]}", 360, datetime.now(UTC) - timedelta(minutes=5))
    want = reference.expected(stream.events)
    thirds = [stream.journeys[i::3] for i in range(3)]
    await ready(*(crew.add(s) for s in CONSUMING for _ in range(2)))
    async with httpx.AsyncClient(timeout=30) as client:
        await crew.send(client, thirds[0])
        await eventually(lambda: crew.rows("stage-engine", "SELECT count(*) FROM touchpoints"),
                         interval_s=0.05, what="the stage engine to start consuming")
        added = [crew.add(s) for s in CONSUMING]  # a third instance joins each group...
        for service in CONSUMING:  # ...and one of the first two dies without a word
            crew.instances[service][0].kill()
        await crew.send(client, thirds[1])
        await ready(*added)
        await crew.send(client, thirds[2])
        await refunds_when_booked(crew, client, stream)
    await until_matches(crew, want)
    # Three instances, then two: each group kept every partition covered.
    assert all(len([p for p in crew.instances[s] if p.process and p.process.poll() is None]) == 2
               for s in CONSUMING)


async def test_a_sigtermed_instance_drains_commits_and_exits_0(crew: Fleet):
    stream = reference.stream(f"drain-{uuid.uuid4().hex[:6]}", 600, datetime.now(UTC) - timedelta(minutes=5))
    want = reference.expected(stream.events)
    async with httpx.AsyncClient(timeout=30) as client:
        await crew.send(client, stream.journeys)  # a backlog, before any consumer runs
        # Small batches: the drain ends the first instances well before the end of the backlog.
        first = [crew.add(s, LIFECYCLE_KAFKA_MAX_POLL_RECORDS="10") for s in CONSUMING]
        busy = {"stage-engine": "SELECT count(*) FROM touchpoints", "loyalty": "SELECT count(*) FROM ledger_entries",
                "messaging": "SELECT count(*) FROM messages"}
        for process in first:  # each as soon as it has applied something: in the middle of the backlog
            name, sql = process.service.name, busy[process.service.name]
            await eventually(lambda sql=sql, name=name: crew.rows(name, sql), timeout_s=90, interval_s=0.05,
                             what=f"{name} to start consuming")
            assert process.process is not None
            process.process.terminate()
        for process in first:
            # Within its grace (the drain, the relay's last round, closing): a clean exit, not a kill.
            assert await asyncio.to_thread(process.process.wait, DRAIN_S + 20) == 0
        # The stage engine stopped after the batch in hand, before the end: the next instance had work left.
        applied = await crew.rows("stage-engine", "SELECT count(*) FROM touchpoints")
        sent = sum(map(len, stream.journeys))
        assert applied < sent, f"the first stage engine applied all {sent} events before its SIGTERM"
        second = [crew.add(s) for s in CONSUMING]
        await ready(*second)
        await refunds_when_booked(crew, client, stream)
        await until_matches(crew, want)
        # What the first instances applied they committed: their successors re-read none of it.
        for process in second:
            duplicates = await duplicates_seen(client, process.url)
            assert duplicates == 0, f"{process.service.name} re-read {duplicates} applied events"


async def duplicates_seen(client: httpx.AsyncClient, url: str) -> float:
    text = (await client.get(url + "/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("lifecycle_events_consumed_total{") and 'outcome="duplicate"' in line)
