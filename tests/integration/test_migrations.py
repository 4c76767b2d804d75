"""Every service's migrations go up, all the way down and up again on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from lifecycle_devstack.databases import create_databases
from lifecycle_devstack.services import SERVICES
from lifecycle_ingest.db.keys import create_key, rotate_key
from lifecycle_ingest.keys import KeyStore
from lifecycle_shared.db import create_engine
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_migrations_go_down_and_up_again(infra, service):
    database = f"rt_{uuid.uuid4().hex[:8]}_{service.database}"
    asyncio.run(create_databases(infra.postgres_url, [database]))
    config = Config()
    migrations = ROOT / "services" / service.name / "src" / service.module / "migrations"
    config.set_main_option("script_location", str(migrations))
    config.set_main_option("sqlalchemy.url", f"{infra.postgres_url}/{database}")
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    command.upgrade(config, "head")


def test_an_order_earned_before_the_upgrade_keeps_its_points_when_sent_again(infra):
    from datetime import UTC, datetime

    from lifecycle_loyalty.db import ledger
    from lifecycle_loyalty.handlers import routes
    from lifecycle_shared.db import create_engine
    from lifecycle_shared.events import CloudEvent, TouchpointData
    from lifecycle_shared.kafka.runner import ConsumerRunner
    from sqlalchemy import text

    from tests.support.kafka_records import record

    database = f"rt_{uuid.uuid4().hex[:8]}_lifecycle_loyalty"
    asyncio.run(create_databases(infra.postgres_url, [database]))
    config = Config()
    config.set_main_option("script_location", str(ROOT / "services/loyalty/src/lifecycle_loyalty/migrations"))
    config.set_main_option("sqlalchemy.url", f"{infra.postgres_url}/{database}")
    command.upgrade(config, "0001")
    time = datetime(2026, 3, 1, tzinfo=UTC)
    resent = TouchpointData(type="track", event="Order Completed", userId="ann", messageId="again", timestamp=time,
                            receivedAt=time, properties={"order_id": "o1", "revenue": 5})

    async def earn_before_the_upgrade() -> None:
        engine = create_engine(f"{infra.postgres_url}/{database}")
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO ledger_entries (id, customer_id, kind, points, rule, cause_event_id, order_id) "
                "VALUES (gen_random_uuid(), 'ann', 'earn', 100, 'points_per_currency_unit/default-v1', 'e1', 'o1')"))
        await engine.dispose()

    async def resend_and_read_the_balance() -> int:
        engine = create_engine(f"{infra.postgres_url}/{database}")
        runner = ConsumerRunner(name="upgrade-test", consumer=None, producer=None, engine=engine, route=routes())
        event = CloudEvent(id="shop/again", source="/sources/shop", type="touchpoint.order_completed", time=time,
                           subject="ann", data=resent.model_dump(mode="json"))
        await runner.process([record("touchpoints", 0, event.to_bytes(), key=b"ann")])
        async with engine.connect() as conn:
            balance = (await ledger.balance(conn, customer_id="ann"))["balance"]
        await engine.dispose()
        return balance

    asyncio.run(earn_before_the_upgrade())
    command.upgrade(config, "head")
    assert asyncio.run(resend_and_read_the_balance()) == 100


INGEST_MIGRATIONS = ROOT / "services/ingest/src/lifecycle_ingest/migrations"

async def test_existing_write_keys_keep_working_through_the_migration(infra):
    database = f"rt_{uuid.uuid4().hex[:8]}_lifecycle_ingest"
    await create_databases(infra.postgres_url, [database])
    url = f"{infra.postgres_url}/{database}"
    config = Config()
    config.set_main_option("script_location", str(INGEST_MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    await asyncio.to_thread(command.upgrade, config, "0001")
    old_key = "lc_wk_" + secrets.token_urlsafe(24)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO sources (id, name) VALUES (gen_random_uuid(), 'legacy')"))
            await conn.execute(text(
                "INSERT INTO write_keys (id, source_id, key_hash, key_prefix) "
                "SELECT gen_random_uuid(), id, :hash, :prefix FROM sources WHERE name = 'legacy'"),
                {"hash": hashlib.sha256(old_key.encode()).hexdigest(), "prefix": old_key[:10]})
        await asyncio.to_thread(command.upgrade, config, "head")
        store = KeyStore(engine=engine, refresh_s=60)
        await store.start()
        await store.stop()
        legacy = store.lookup(old_key)
        assert legacy is not None and (legacy.source, legacy.kind, legacy.expires_at) == ("legacy", "write", None)

        async with engine.begin() as conn:
            server = await create_key(conn, source_name="legacy", kind="server")
            await rotate_key(conn, key_id=legacy.key_id, overlap_s=3600)
        await asyncio.to_thread(command.downgrade, config, "0001")
        async with engine.connect() as conn:
            rows = {row.key_prefix[:6]: row for row in await conn.execute(text(
                "SELECT key_prefix, revoked_at FROM write_keys WHERE key_hash IN (:old, :server)"),
                {"old": hashlib.sha256(old_key.encode()).hexdigest(),
                 "server": hashlib.sha256(server.key.encode()).hexdigest()})}
        # The old schema has no expiry: the key being rotated out stops; the server key survives.
        assert rows["lc_wk_"].revoked_at is not None and rows["lc_sk_"].revoked_at is None
        await asyncio.to_thread(command.upgrade, config, "head")
        store = KeyStore(engine=engine, refresh_s=60)
        await store.start()
        await store.stop()
        assert store.lookup(server.key).kind == "server" and store.lookup(old_key) is None
    finally:
        await engine.dispose()


MESSAGING_MIGRATIONS = ROOT / "services/messaging/src/lifecycle_messaging/migrations"


async def test_queued_messages_keep_their_parts_through_the_migration_to_columns(infra):
    """0006: a body holding the parts as a JSON document (0005's) becomes the columns; a plain-text body stays
    the text (html NULL: sent as text only); a downgrade writes the document back."""
    import json

    from lifecycle_messaging.delivery import build_email
    from lifecycle_messaging.settings import MessagingSettings

    database = f"rt_{uuid.uuid4().hex[:8]}_lifecycle_messaging"
    await create_databases(infra.postgres_url, [database])
    url = f"{infra.postgres_url}/{database}"
    config = Config()
    config.set_main_option("script_location", str(MESSAGING_MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    await asyncio.to_thread(command.upgrade, config, "0005")
    parts = {"format": "lifecycle.email/1", "template": "welcome", "locale": "vi", "subject": "Chào bạn",
             "text": "Chào Lan,\n", "html": "<!DOCTYPE html>\n<p>Chào Lan,</p>\n", "preheader": "Rất vui",
             "from_name": "Cửa hàng Mộc"}
    insert = text("INSERT INTO messages (id, customer_id, template, stage, cause_event_id, recipient, subject, body, "
                  "status) VALUES (CAST(:id AS uuid), 'lan', 'welcome', 'awareness', :id, 'lan@example.com', "
                  "'Chào bạn', :body, 'queued')")
    stored, plain = str(uuid.uuid4()), str(uuid.uuid4())
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert, [{"id": stored, "body": json.dumps(parts, ensure_ascii=False)},
                                        {"id": plain, "body": "{not json, just text that starts with a brace\n"}])
        await asyncio.to_thread(command.upgrade, config, "head")
        async with engine.connect() as conn:
            rows = {str(row.id): row for row in await conn.execute(text("SELECT * FROM messages"))}
        new = rows[stored]
        assert (new.body, new.html, new.locale, new.preheader, new.from_name, new.unsubscribe_url) == (
            parts["text"], parts["html"], "vi", "Rất vui", "Cửa hàng Mộc", None)
        assert rows[plain].body.startswith("{not json") and rows[plain].html is None
        settings = MessagingSettings(environment="development")
        assert build_email(new, settings=settings).get_content_type() == "multipart/alternative"
        assert build_email(rows[plain], settings=settings).get_content_type() == "text/plain"
        await asyncio.to_thread(command.downgrade, config, "0005")
        async with engine.connect() as conn:
            back = {str(row.id): row.body for row in await conn.execute(text("SELECT id, body FROM messages"))}
        assert json.loads(back[stored]) == parts and back[plain].startswith("{not json")
    finally:
        await engine.dispose()


async def test_messages_queued_before_the_gateway_are_judged_as_before_and_it_goes_down_and_up(infra):
    """0009: a message queued before it has no zone, no `due_at` and no hold (the shop's zone; aged as before);
    the holdout assignments table and the new columns go down and come back."""
    database = f"rt_{uuid.uuid4().hex[:8]}_lifecycle_messaging"
    await create_databases(infra.postgres_url, [database])
    url = f"{infra.postgres_url}/{database}"
    config = Config()
    config.set_main_option("script_location", str(MESSAGING_MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    await asyncio.to_thread(command.upgrade, config, "0008")
    message = str(uuid.uuid4())
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO messages (id, customer_id, template, stage, cause_event_id, recipient, subject, body, "
                "status) VALUES (CAST(:id AS uuid), 'lan', 'welcome', 'awareness', :id, 'lan@example.com', 'Hi', "
                "'Hi', 'queued')"), {"id": message})
        await asyncio.to_thread(command.upgrade, config, "0009")
        async with engine.begin() as conn:
            row = (await conn.execute(text("SELECT timezone, due_at, held_until, sent_clock_at FROM messages"))).one()
            assert tuple(row) == (None, None, None, None)
            await conn.execute(text("INSERT INTO holdout_assignments (campaign, person, \"group\", assigned_at) "
                                    "VALUES ('welcome', 'lan', 'holdout', now()) ON CONFLICT DO NOTHING"))
        await asyncio.to_thread(command.downgrade, config, "0008")
        await asyncio.to_thread(command.upgrade, config, "head")
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM holdout_assignments"))).scalar_one() == 0
            assert (await conn.execute(text("SELECT count(*) FROM messages"))).scalar_one() == 1
    finally:
        await engine.dispose()


async def test_messages_written_before_campaigns_are_their_templates_campaigns_and_it_goes_down_and_up(infra):
    """0011: a message from before campaigns were data belongs to the campaign of its template's name (no version);
    the idempotency key becomes (customer, campaign, cause); the campaign tables go down and come back."""
    database = f"rt_{uuid.uuid4().hex[:8]}_lifecycle_messaging"
    await create_databases(infra.postgres_url, [database])
    url = f"{infra.postgres_url}/{database}"
    config = Config()
    config.set_main_option("script_location", str(MESSAGING_MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    await asyncio.to_thread(command.upgrade, config, "0010")
    message = str(uuid.uuid4())
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO messages (id, customer_id, template, stage, cause_event_id, recipient, subject, body, "
                "status) VALUES (CAST(:id AS uuid), 'lan', 'retention_offer', 'retention', 'cause-1', "
                "'lan@example.com', 'Hi', 'Hi', 'queued')"), {"id": message})
        await asyncio.to_thread(command.upgrade, config, "0011")
        async with engine.begin() as conn:
            row = (await conn.execute(text("SELECT campaign, campaign_version, trigger, not_before FROM messages")))
            assert tuple(row.one()) == ("retention_offer", None, None, None)
            # Another campaign's message about the same cause, with the same template: a message of its own now.
            await conn.execute(text(
                "INSERT INTO messages (id, customer_id, template, campaign, stage, cause_event_id, subject, body, "
                "status) VALUES (CAST(:id AS uuid), 'lan', 'retention_offer', 'vip_offer', 'retention', 'cause-1', "
                "'Hi', 'Hi', 'queued')"), {"id": str(uuid.uuid4())})
            await conn.execute(text("INSERT INTO campaigns (id, version, origin) VALUES ('vip_offer', 1, 'api')"))
        await asyncio.to_thread(command.downgrade, config, "0010")  # one message per template and cause again
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT id::text FROM messages"))).scalars().all() == [message]
        await asyncio.to_thread(command.upgrade, config, "head")
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM campaigns"))).scalar_one() == 0
            assert (await conn.execute(text("SELECT campaign FROM messages"))).scalar_one() == "retention_offer"
    finally:
        await engine.dispose()
