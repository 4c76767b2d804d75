"""A late backlog is not messaged as if it were live (issue 15, part 3): messaging's consumer is down while
stage transitions pile up on the real broker; when it starts and catches up, each person gets at most the
email for the stage they stand in now, and the rest are recorded `suppressed` with their reason. A message
already queued while the SMTP server is down is not sent once a later transition overtakes it, nor once it
has grown older than the freshness window. Messaging in-process (its consumer and delivery worker, on a
stopped clock), real Kafka-protocol broker, real PostgreSQL, real SMTP server (aiosmtpd)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller
from lifecycle_devstack.ports import free_port
from lifecycle_devstack.services import BY_NAME, StackConfig
from lifecycle_messaging.main import create_app
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_shared.events import STAGE_CHANGED_TYPE, CloudEvent, StageChangedData, kafka_headers
from lifecycle_shared.testing import eventually
from lifecycle_shared.topics import Topics
from prometheus_client import REGISTRY

from tests.support.in_process import kafka_settings, running
from tests.support.mail_sink import MailSink
from tests.support.messaging import messaging_namespace

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)  # messaging's clock: the moment it catches up
TOKEN = "backlog-read-token-7c1e9d24a0b3"
JOURNEY = ["awareness", "consideration", "purchase", "retention"]
# The default campaign each move starts at once; entering purchase also starts the feedback request, due three
# days later (a delayed campaign: it waits, or is superseded when a later move comes).
STANDS_IN = {"awareness": "welcome", "consideration": "consideration_nudge", "purchase": "thank_you_feedback",
             "retention": "retention_offer"}
DELAYED = "feedback_request"


@pytest.fixture(scope="module")
def namespace(infra) -> StackConfig:
    """Messaging's database and the topics."""
    return messaging_namespace(infra)


@pytest.fixture
async def producer(namespace) -> AsyncIterator[AIOKafkaProducer]:
    """What the stage engine's outbox relay does: transitions onto the stage-transitions topic, keyed by customer."""
    started = AIOKafkaProducer(bootstrap_servers=namespace.kafka_bootstrap, acks="all",
                               enable_idempotence=namespace.kafka_idempotence)
    await started.start()
    yield started
    await started.stop()


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


def settings_for(namespace: StackConfig, smtp_port: int) -> MessagingSettings:
    return MessagingSettings(environment="development", database_url=namespace.database_url(BY_NAME["messaging"]),
                             kafka=kafka_settings(namespace), api_tokens=TOKEN, smtp_port=smtp_port,
                             idle_poll_s=0.05, retry_base_s=0.1, max_send_attempts=1000)


@asynccontextmanager
async def messaging(namespace: StackConfig, smtp_port: int, clock: Callable[[], datetime]):
    """Messaging's consumer and delivery worker, started now (and the read API)."""
    async with running(create_app(settings_for(namespace, smtp_port), clock=clock)) as client:
        yield client


def stage_changed(customer: str, from_stage: str | None, to_stage: str, at: datetime, *,
                  email: str | None = None) -> CloudEvent:
    data = StageChangedData(customer_id=customer, user_id=customer, from_stage=from_stage, to_stage=to_stage,
                            reason="r", rule_version="v", cause_event_ids=[str(uuid.uuid4())], event_time=at,
                            processed_at=at + timedelta(seconds=1),
                            traits={"email": email, "firstName": "Ann"} if email else {})
    return CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=STAGE_CHANGED_TYPE, time=at,
                      subject=customer, data=data.model_dump(mode="json"))


def journey(customer: str, *, stages: int, start: datetime, email_from: int | None) -> list[CloudEvent]:
    """The customer's first `stages` moves along the journey, minutes apart; their transitions carry the
    address from move `email_from` on (None: never given)."""
    return [stage_changed(customer, JOURNEY[n - 1] if n else None, JOURNEY[n], start + timedelta(minutes=7 * n),
                          email=f"{customer}@example.com" if email_from is not None and n >= email_from else None)
            for n in range(stages)]


async def publish(producer: AIOKafkaProducer, namespace: StackConfig, events: list[CloudEvent]) -> None:
    topic = Topics(namespace.topic_prefix).stage_transitions
    for event in events:
        await producer.send_and_wait(topic, event.to_bytes(), key=event.subject.encode(),
                                     headers=kafka_headers(event.type))


async def log_of(client: httpx.AsyncClient, customer: str) -> list[dict]:
    response = await client.get(f"/v1/customers/{customer}/messages", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    return response.json()


def suppressed_count(reason: str) -> float:
    return REGISTRY.get_sample_value("lifecycle_messaging_messages_suppressed_total", {"reason": reason}) or 0.0


def templates(received: list[Message]) -> list[str]:
    return [m["X-Lifecycle-Template"] for m in received]


async def test_a_backlog_caught_up_after_an_outage_sends_each_person_only_where_they_stand_now(
        namespace, producer, mail_sink):
    sink, smtp_port = mail_sink
    run = uuid.uuid4().hex[:6]
    start = NOW - timedelta(hours=2)  # the outage: two hours of transitions nobody messaged
    # (customer, how far along the journey, from which move their transitions carry an address)
    people = [(f"p{n}-{run}", 1 + n % 4, n % 3 if n % 5 else None) for n in range(15)]
    backlog = {customer: journey(customer, stages=stages, start=start + timedelta(minutes=n), email_from=email_from)
               for n, (customer, stages, email_from) in enumerate(people)}
    # One customer's transitions arrive out of order (the latest first), as after a recomputation.
    shuffled = f"shuffled-{run}"
    backlog[shuffled] = journey(shuffled, stages=4, start=start, email_from=0)
    backlog[shuffled] = [backlog[shuffled][i] for i in (3, 0, 2, 1)]
    # One customer's moves all happened three days ago: older than the freshness window (a day).
    old = f"old-{run}"
    backlog[old] = journey(old, stages=3, start=NOW - timedelta(days=3), email_from=0)
    interleaved = [events[i] for i in range(4) for events in backlog.values() if i < len(events)]
    before = {reason: suppressed_count(reason) for reason in ("superseded", "stale")}

    await publish(producer, namespace, interleaved)  # messaging is not running: the backlog builds up
    async with messaging(namespace, smtp_port, Clock()) as client:
        def expected(customer: str) -> int:  # one message per move, and the feedback request once purchase came
            return len(backlog[customer]) + any(e.data["to_stage"] == "purchase" for e in backlog[customer])

        async def caught_up() -> dict[str, list[dict]] | None:
            logs = {customer: await log_of(client, customer) for customer in backlog}
            done = all(len(log) == expected(customer)
                       and not any(m["status"] == "queued" and m["template"] != DELAYED for m in log)
                       for customer, log in logs.items())
            return logs if done else None

        logs = await eventually(caught_up, timeout_s=90, what="messaging caught up with the backlog")
        metrics = (await client.get("/metrics")).text

    for customer, events in backlog.items():
        latest = max(events, key=lambda e: e.data["event_time"])
        stands_in = STANDS_IN[latest.data["to_stage"]]
        received = sink.to(f"{customer}@example.com")
        by_template = {m["template"]: (m["status"], m["suppressed_reason"]) for m in logs[customer]}
        if latest.data["to_stage"] == "purchase":  # the feedback request waits for its day (or for an address)
            assert by_template.pop(DELAYED)[0] == ("queued" if latest.data["traits"].get("email")
                                                   else "awaiting_contact"), (customer, by_template)
        others = {t: s for t, s in by_template.items() if t != stands_in}
        assert set(others.values()) <= {("suppressed", "superseded")}, (customer, by_template)
        if customer == old:  # all of it is old news: nothing sent
            assert received == [] and by_template[stands_in] == ("suppressed", "stale")
        elif latest.data["traits"].get("email"):  # exactly one email: for where they stand now
            assert templates(received) == [stands_in], (customer, by_template)
            assert by_template[stands_in] == ("sent", None)
        else:  # no address yet: the message for where they stand waits for one, the rest are suppressed
            assert received == [] and by_template[stands_in] == ("awaiting_contact", None)
    assert templates(sink.to(f"{shuffled}@example.com")) == ["retention_offer"]  # the latest, not the last to arrive

    superseded = sum(len(events) - 1 + (len(events) == 4) for events in backlog.values())  # + feedback requests
    assert suppressed_count("superseded") - before["superseded"] == superseded
    assert suppressed_count("stale") - before["stale"] == 1
    assert 'lifecycle_messaging_messages_suppressed_total{reason="superseded"}' in metrics


@asynccontextmanager
async def smtp_server(port: int):
    sink = MailSink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


async def wait_for_status(client: httpx.AsyncClient, customer: str, template: str, *,
                          status: str, attempted: bool = False) -> dict:
    async def reached():
        found = [m for m in await log_of(client, customer) if m["template"] == template]
        return found[0] if found and found[0]["status"] == status and (found[0]["attempts"] or not attempted) \
            else None

    return await eventually(reached, timeout_s=60, what=f"{customer}'s {template} {status}")


async def test_a_message_queued_while_smtp_is_down_is_not_sent_once_a_later_transition_arrives(
        namespace, producer):
    smtp_port, customer = free_port(), f"waiting-{uuid.uuid4().hex[:6]}"  # nothing listens there yet: SMTP down
    welcome, nudge = journey(customer, stages=2, start=NOW - timedelta(minutes=30), email_from=0)
    async with messaging(namespace, smtp_port, Clock()) as client:
        await publish(producer, namespace, [welcome])
        await wait_for_status(client, customer, "welcome", status="queued", attempted=True)  # tried, failed, waits
        await publish(producer, namespace, [nudge])
        overtaken = await wait_for_status(client, customer, "welcome", status="suppressed")
        assert overtaken["suppressed_reason"] == "superseded"
        async with smtp_server(smtp_port) as sink:  # the SMTP server is back
            await wait_for_status(client, customer, "consideration_nudge", status="sent")
    assert templates(sink.to(f"{customer}@example.com")) == ["consideration_nudge"]


async def test_a_message_that_waited_longer_than_the_freshness_window_is_suppressed_when_claimed(
        namespace, producer):
    smtp_port, customer = free_port(), f"late-{uuid.uuid4().hex[:6]}"
    clock = Clock()
    (welcome,) = journey(customer, stages=1, start=NOW - timedelta(minutes=5), email_from=0)
    before = suppressed_count("stale")
    async with messaging(namespace, smtp_port, clock) as client:
        await publish(producer, namespace, [welcome])
        await wait_for_status(client, customer, "welcome", status="queued", attempted=True)  # fresh, SMTP down
        clock.now = NOW + timedelta(days=1)  # the SMTP server stays down for a day
        stale = await wait_for_status(client, customer, "welcome", status="suppressed")
        assert stale["suppressed_reason"] == "stale"
        async with smtp_server(smtp_port) as sink:
            probe = journey(f"probe-{customer}", stages=1, start=clock.now, email_from=0)  # the server is back
            await publish(producer, namespace, probe)
            await wait_for_status(client, probe[0].subject, "welcome", status="sent")
    assert sink.to(f"{customer}@example.com") == []
    assert suppressed_count("stale") == before + 1
