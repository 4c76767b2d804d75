"""The email worker against real PostgreSQL and a real SMTP server (aiosmtpd) started here:
one message that cannot be built or sent never stops, undoes or re-sends the others; one that no
longer follows where its customer stands is suppressed when it is claimed, not sent."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from types import SimpleNamespace

import pytest
from aiosmtpd.controller import Controller
from lifecycle_devstack.ports import free_port
from lifecycle_devstack.services import BY_NAME
from lifecycle_messaging.db import repository as repo
from lifecycle_messaging.db.models import messages
from lifecycle_messaging.delivery import deliver_once
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_shared.db import create_engine
from lifecycle_shared.events import (
    IDENTITY_MERGED_TYPE,
    STAGE_CHANGED_TYPE,
    CloudEvent,
    IdentityMergedData,
    StageChangedData,
)
from lifecycle_shared.kafka.runner import ConsumerRunner
from sqlalchemy import select

from tests.support.kafka_records import record
from tests.support.messaging import freshness_at, messaging_routes

NOW = datetime(2026, 5, 1, tzinfo=UTC)


@dataclass
class PickySmtpServer:
    """Refuses `refused-*` recipients for good (550) and `busy-*` ones for now (451)."""

    received: list[Message] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:  # noqa: N802
        if address.startswith("refused-"):
            return "550 5.1.1 no such mailbox"
        if address.startswith("busy-"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802
        self.received.append(message_from_bytes(envelope.content))
        return "250 OK"

    def ids(self) -> list[str]:
        return [m["Message-ID"].strip("<>").split("@")[0] for m in self.received]


@pytest.fixture
def smtp():
    server, port = PickySmtpServer(), free_port()
    controller = Controller(server, hostname="127.0.0.1", port=port, enable_SMTPUTF8=False)
    controller.start()
    yield server, port
    controller.stop()


@pytest.fixture
async def runtime(namespace):
    engine = create_engine(namespace.database_url(BY_NAME["messaging"]))
    async with engine.begin() as conn:
        await conn.execute(messages.delete())  # each test owns the queue
    yield SimpleNamespace(engine=engine)
    await engine.dispose()


def queued(recipient: str, **fields) -> dict:
    message_id = str(uuid.uuid4())
    return {"id": message_id, "customer_id": f"c-{message_id[:8]}", "linked_ids": [], "template": "welcome",
            "stage": "awareness", "cause_event_id": message_id, "recipient": recipient, "subject": "Welcome",
            "body": "Hi", "status": "queued", **fields}


async def rows(runtime, ids: list[str]) -> dict[str, dict]:
    async with runtime.engine.connect() as conn:
        found = (await conn.execute(select(messages).where(messages.c.id.in_(ids)))).mappings().all()
    return {row["id"]: dict(row) for row in found}


async def test_a_line_break_in_a_name_or_id_stops_no_email_and_resends_none(runtime, smtp):
    server, port = smtp
    settings = MessagingSettings(environment="development", smtp_port=port, max_send_attempts=3, retry_base_s=0.05)
    batch = [queued("first@example.com"),
             queued("poison@example.com", subject="Thank you, Ann\r\nBcc: victim@example.com",
                    customer_id="ann\r\nX-Injected: yes"),
             queued("refused-1@example.com"),
             queued("busy-1@example.com"),
             queued("ünï@example.com"),  # this server has no SMTPUTF8: retrying cannot help
             queued("last@example.com")]
    async with runtime.engine.begin() as conn:
        await repo.add_messages(conn, batch)
    for _ in range(12):  # far more rounds than needed: nothing may be sent twice
        await deliver_once(runtime, settings, freshness_at(NOW))
        await asyncio.sleep(0.06)

    first, poison, refused, busy, unicode, last = (m["id"] for m in batch)
    assert sorted(server.ids()) == sorted([first, poison, last])  # each exactly once
    sent = next(m for m in server.received if m["To"] == "poison@example.com")
    assert sent["Subject"] == "Thank you, Ann Bcc: victim@example.com" and sent["Bcc"] is None
    assert sent["X-Injected"] is None
    outcome = await rows(runtime, [m["id"] for m in batch])
    assert [outcome[i]["status"] for i in (first, poison, last)] == ["sent"] * 3
    assert (outcome[refused]["status"], outcome[refused]["attempts"]) == ("failed", 1)  # 5xx: no retry
    assert outcome[refused]["last_error"] == "SMTPRecipientsRefused: SMTP 550"  # the code, not the address
    assert (outcome[busy]["status"], outcome[busy]["attempts"]) == ("failed", 3)  # 4xx: retried, bounded
    assert (outcome[unicode]["status"], outcome[unicode]["attempts"]) == ("failed", 1)
    assert "refused-1@example.com" not in outcome[refused]["last_error"]


async def test_a_worker_dying_mid_send_cannot_retry_a_message_forever(runtime, smtp):
    _, port = smtp
    settings = MessagingSettings(environment="development", smtp_port=port, max_send_attempts=3)
    message = queued("crashy@example.com")
    async with runtime.engine.begin() as conn:
        await repo.add_messages(conn, [message])
    for _ in range(3):  # three workers claim it and die before recording anything
        async with runtime.engine.begin() as conn:
            assert [row.id for row in await repo.claim_due(conn, limit=10, lease_s=0)] == [message["id"]]
    await deliver_once(runtime, settings, freshness_at(NOW))
    outcome = (await rows(runtime, [message["id"]]))[message["id"]]
    assert outcome["status"] == "failed" and "interrupted" in outcome["last_error"]


async def test_a_claimed_message_is_leased_so_another_worker_skips_it(runtime, smtp):
    message = queued("leased@example.com")
    async with runtime.engine.begin() as conn:
        await repo.add_messages(conn, [message])
    async with runtime.engine.begin() as conn:
        assert len(await repo.claim_due(conn, limit=10, lease_s=60)) == 1
    async with runtime.engine.begin() as conn:
        assert await repo.claim_due(conn, limit=10, lease_s=60) == []


def stage_changed(customer: str, from_stage: str | None, to_stage: str, at: datetime, *, user: str | None,
                  email: str) -> CloudEvent:
    data = StageChangedData(customer_id=customer, user_id=user, from_stage=from_stage, to_stage=to_stage, reason="r",
                            rule_version="v", cause_event_ids=["c"], event_time=at, processed_at=at,
                            traits={"email": email})
    return CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=STAGE_CHANGED_TYPE, time=at,
                      subject=customer, data=data.model_dump(mode="json"))


async def test_a_queued_welcome_a_merge_hands_to_a_customer_who_has_moved_on_is_suppressed_when_claimed(
        runtime, smtp):
    """A guest's welcome is queued (the delivery worker is not running); the guest turns out to be a user
    who has bought since, on another device: merged, the welcome is theirs, and at the claim it is
    superseded by their purchase - only the thank-you goes out."""
    server, port = smtp
    settings = MessagingSettings(environment="development", smtp_port=port)
    guest, user = f"guest-{uuid.uuid4().hex[:8]}", f"user-{uuid.uuid4().hex[:8]}"
    merge = IdentityMergedData(survivor_id=user, absorbed_id=guest, absorbed_ids=[guest], user_id=user,
                               reason="identify", cause_event_ids=["c"], event_time=NOW, processed_at=NOW)
    arrivals = [stage_changed(user, "consideration", "purchase", NOW - timedelta(minutes=1), user=user,
                              email=f"{user}@example.com"),
                stage_changed(guest, None, "awareness", NOW - timedelta(minutes=10), user=None,
                              email=f"{guest}@example.com"),
                CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=IDENTITY_MERGED_TYPE, time=NOW,
                           subject=user, data=merge.model_dump(mode="json"))]
    runner = ConsumerRunner(name="messaging-test", consumer=None, producer=None, engine=runtime.engine,
                            route=messaging_routes(NOW))
    for offset, event in enumerate(arrivals):
        await runner.process([record("topic", offset, event.to_bytes(), key=event.subject.encode())])
    async with runtime.engine.connect() as conn:
        log = {m["template"]: m for m in await repo.messages_for(conn, customer_id=user)}
    assert {t: (m["customer_id"], m["status"]) for t, m in log.items()} == {
        "welcome": (user, "queued"), "thank_you_feedback": (user, "queued"),  # both wait for the worker
        "feedback_request": (user, "queued")}  # and the feedback request for its day, three days on

    while await deliver_once(runtime, settings, freshness_at(NOW)):
        pass
    outcome = await rows(runtime, [m["id"] for m in log.values()])
    welcome, thanks = outcome[log["welcome"]["id"]], outcome[log["thank_you_feedback"]["id"]]
    assert (welcome["status"], welcome["suppressed_reason"], welcome["attempts"]) == ("suppressed", "superseded", 1)
    assert thanks["status"] == "sent"
    assert server.ids() == [thanks["id"]]
