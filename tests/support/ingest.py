"""Ingest in-process on the test namespace (or a broker of a test's own), with its admin token; reading back
what it published."""

from __future__ import annotations

import json

from lifecycle_devstack.broker import EmbeddedBroker
from lifecycle_devstack.services import BY_NAME
from lifecycle_ingest.settings import IngestSettings
from lifecycle_shared.testing import read_topic

from tests.support.in_process import kafka_settings

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"


def settings_for(namespace, **overrides) -> IngestSettings:
    return IngestSettings(database_url=namespace.database_url(BY_NAME["ingest"]),
                          kafka=overrides.pop("kafka", kafka_settings(namespace)),
                          admin_token=ADMIN_TOKEN, key_refresh_s=0.2, **overrides)


def settings_on(namespace, broker: EmbeddedBroker, **overrides) -> IngestSettings:
    return settings_for(namespace, publish_timeout_s=1.5, kafka=kafka_settings(
        namespace, bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False, topic_check_interval_s=0.5),
        **overrides)


async def _consume_until(namespace, message_id: str):
    def ours(record) -> bool:
        return json.loads(record.value)["data"]["messageId"] == message_id

    records = await read_topic(namespace.kafka_bootstrap, namespace.topic_prefix + "touchpoints.v1", until=ours)
    return next(r for r in records if ours(r))
