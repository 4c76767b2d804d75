"""A Vietnamese and a Thai message, from the stage transition to the mailbox: rendered by the handler in
the customer's locale, stored, sent by the delivery worker through a real SMTP server (aiosmtpd, with and
without SMTPUTF8) and parsed back with Python's `email` package (policy.default). Subject, display name,
text and HTML come back exactly as rendered. Real PostgreSQL."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, message_from_string, policy
from email.message import EmailMessage
from types import SimpleNamespace

import pytest
from aiosmtpd.controller import Controller
from lifecycle_devstack.ports import free_port
from lifecycle_devstack.services import BY_NAME
from lifecycle_messaging.catalogue import shipped
from lifecycle_messaging.db.models import messages
from lifecycle_messaging.delivery import deliver_once
from lifecycle_messaging.domain.templates import render
from lifecycle_messaging.handlers.stage_changed import handle_stage_changed
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_messaging.suppressing import Freshness
from lifecycle_shared.db import create_engine
from lifecycle_shared.events import STAGE_CHANGED_TYPE, CloudEvent, StageChangedData
from lifecycle_shared.kafka.registry import Typed
from sqlalchemy import select

from tests.support.messaging import rendering

NOW = datetime(2026, 5, 1, tzinfo=UTC)
# The messages are judged at the moment of their transition: fresh, whatever today's date.
FRESHNESS = Freshness(clock=lambda: NOW, window=timedelta(days=1))


@dataclass
class RawMailbox:
    """Keeps what the server received: the bytes and the MAIL FROM options (SMTPUTF8 or not)."""

    received: list[tuple[bytes, list[str]]] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd hook
        self.received.append((envelope.original_content or envelope.content, list(envelope.mail_options)))
        return "250 OK"


@pytest.fixture
async def runtime(namespace):
    """The module's own namespace (tests/integration/conftest.py): no message but this module's is queued."""
    engine = create_engine(namespace.database_url(BY_NAME["messaging"]))
    yield SimpleNamespace(engine=engine)
    await engine.dispose()


@pytest.fixture(params=[False, True], ids=["encoded-words", "smtputf8"])
def mailbox(request):
    box, port = RawMailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, enable_SMTPUTF8=request.param)
    controller.start()
    yield box, port, request.param
    controller.stop()


def transition(customer: str, traits: dict) -> CloudEvent:
    data = StageChangedData(customer_id=customer, user_id=customer, from_stage="consideration", to_stage="purchase",
                            reason="first_order", rule_version="v", cause_event_ids=["c"], event_time=NOW,
                            processed_at=NOW, traits=traits)
    return CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=STAGE_CHANGED_TYPE, time=NOW,
                      subject=customer, data=data.model_dump(mode="json"))


@pytest.mark.parametrize(("locale", "brand", "name"), [
    ("vi-VN", "Cửa hàng Mộc", "Nguyễn Thị Ánh"),
    ("th_TH", "ร้านบ้านสวน", "สมหญิง"),
])
async def test_a_vietnamese_or_thai_message_comes_back_exactly_as_rendered(runtime, mailbox, locale, brand, name):
    box, port, smtputf8 = mailbox
    # Only a non-ASCII address makes the client use SMTPUTF8 (and raw UTF-8 headers); else encoded words.
    address = "ánh@example.com" if smtputf8 else "anh@example.com"
    traits = {"email": address, "firstName": name, "locale": locale, "points": 1250, "lastProduct": "Bình giữ nhiệt"}
    customer = f"c-{uuid.uuid4().hex[:8]}"
    change = transition(customer, traits)
    async with runtime.engine.begin() as conn:
        await handle_stage_changed(conn, [Typed(change, StageChangedData.model_validate(change.data))],
                                   freshness=FRESHNESS, rendering=rendering(brand))
    settings = MessagingSettings(environment="development", smtp_port=port, brand_name=brand,
                                 smtp_from="Lifecycle <hello@shop.example>")
    assert await deliver_once(runtime, settings, FRESHNESS) == 1
    async with runtime.engine.connect() as conn:
        statuses = await conn.execute(select(messages.c.template, messages.c.status)
                                      .where(messages.c.customer_id == customer))
        # The feedback request of the same first order waits for its day (a campaign delayed three days).
        assert dict(statuses.all()) == {"thank_you_feedback": "sent", "feedback_request": "queued"}

    expected = render("thank_you_feedback", traits=traits, brand=brand, catalogue=shipped(), stage="purchase")
    assert expected.locale == locale[:2] and name in expected.subject and name in expected.text
    [(raw, mail_options)] = box.received
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert ("SMTPUTF8" in mail_options) is smtputf8
    if smtputf8:  # the header is UTF-8 itself
        assert expected.subject.encode() in head and brand.encode() in head
    else:  # RFC 2047 encoded words: plain ASCII on the wire
        assert head.isascii() and b"=?utf-8?" in head
    # A message sent with SMTPUTF8 has UTF-8 headers (RFC 6532), which the bytes parser would read as
    # unknown 8-bit: it is read as the text it is (its body parts are base64, so all of it is UTF-8).
    back = message_from_string(raw.decode(), policy=policy.default) if smtputf8 else message_from_bytes(
        raw, policy=policy.default)
    assert isinstance(back, EmailMessage) and back.get_content_type() == "multipart/alternative"
    assert back["Subject"] == expected.subject
    assert back["From"].addresses[0].display_name == brand
    assert back["From"].addresses[0].addr_spec == "hello@shop.example"
    assert back["To"].addresses[0].addr_spec == address
    assert back.get_body(("plain",)).get_content() == expected.text
    assert back.get_body(("html",)).get_content() == expected.html
