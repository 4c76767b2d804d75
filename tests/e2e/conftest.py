"""The whole pipeline as users run it: four service processes (tests/support/pipeline.py) and a real SMTP
server (aiosmtpd, the `mail_sink` fixture of tests/support/mail_sink.py), talking over HTTP and Kafka."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lifecycle_devstack.infra import Infra

from tests.support.pipeline import ADMIN_TOKEN, API_TOKEN, ERASURE_PEPPER, Pipeline, four_services


@pytest.fixture(scope="session")
def pipeline(infra: Infra, mail_sink, tmp_path_factory) -> Iterator[Pipeline]:
    sink, smtp_port = mail_sink
    config = infra.stack_config(smtp_port=smtp_port, api_tokens=API_TOKEN, erasure_pepper=ERASURE_PEPPER,
                                extra_env={"LIFECYCLE_INGEST_ADMIN_TOKEN": ADMIN_TOKEN,
                                           "LIFECYCLE_STAGE_ENGINE_ADMIN_TOKEN": ADMIN_TOKEN,
                                           "LIFECYCLE_LOYALTY_ADMIN_TOKEN": ADMIN_TOKEN,
                                           "LIFECYCLE_MESSAGING_ADMIN_TOKEN": ADMIN_TOKEN,
                                           # A killed messaging's webhook deliveries come back within 65 s.
                                           "LIFECYCLE_MESSAGING_WEBHOOKS_TIMEOUT_S": "5",
                                           "LIFECYCLE_MESSAGING_WEBHOOKS_LEASE_S": "5",
                                           # Time-based stages come within a second of their moment.
                                           "LIFECYCLE_STAGE_ENGINE_SWEEP_INTERVAL_S": "1",
                                           # A destroyed data key leaves every process's cache within 2 s.
                                           "LIFECYCLE_KEYS_CACHE_S": "2"})
    with four_services(infra, config, tmp_path_factory.mktemp("logs")) as (processes, key):
        yield Pipeline(config=config, processes=processes, write_key=key, mail=sink)
