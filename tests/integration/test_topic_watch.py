"""The topic watch against a real embedded broker that restarts (Tansu keeps topics in memory)."""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient
from lifecycle_devstack.broker import EmbeddedBroker
from lifecycle_devstack.ports import free_port
from lifecycle_shared.kafka.clients import make_producer
from lifecycle_shared.kafka.watch import TopicWatch
from lifecycle_shared.settings import KafkaSettings


async def partitions(bootstrap: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics() if not t["error_code"]}
    finally:
        await admin.close()


async def test_topics_lost_in_a_restart_are_recreated_with_the_configured_count_while_not_ready(tmp_path):
    broker = EmbeddedBroker(free_port(), tmp_path / "broker.log")
    broker.start()
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False,
                             topic_prefix="w.", partitions=6, detect_broker_restarts=True)
    seen_while_rejoining: list[bool] = []

    async def rejoin() -> None:
        seen_while_rejoining.append(watch.healthy)

    watch = TopicWatch(settings, on_restart=rejoin)
    try:
        await watch.check()
        expected = {name: 6 for name in settings.topics.all_with_dlq()}
        assert watch.healthy and expected.items() <= (await partitions(broker.bootstrap_servers)).items()
        assert seen_while_rejoining == []  # the first check is no restart

        broker.stop()
        broker.start()
        assert (await partitions(broker.bootstrap_servers)) == {}  # memory only: everything is gone
        await watch.check()
        assert seen_while_rejoining == [False]  # not ready while it repaired
        assert watch.healthy and expected.items() <= (await partitions(broker.bootstrap_servers)).items()
    finally:
        broker.stop()


async def test_our_clients_never_auto_create_a_topic_with_the_brokers_default_count(tmp_path):
    broker = EmbeddedBroker(free_port(), tmp_path / "broker.log")
    broker.start()
    producer = make_producer(KafkaSettings(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False))
    await producer.start()
    try:
        try:
            await asyncio.wait_for(producer.send_and_wait("never-created", b"x"), 3)
        except Exception:  # noqa: BLE001 - no topic, no send: that is the point
            pass
        # (aiokafka's own metadata request would have Tansu create it, with 4 partitions)
        assert "never-created" not in await partitions(broker.bootstrap_servers)
    finally:
        await producer.stop()
        broker.stop()
