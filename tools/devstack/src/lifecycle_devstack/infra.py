"""Broker + PostgreSQL for tests and benchmarks: embedded by default, or what the env names.

LIFECYCLE_TEST_KAFKA_BOOTSTRAP    use this Kafka instead of starting Tansu (idempotence on)
LIFECYCLE_TEST_POSTGRES_URL       use this server (postgresql+asyncpg://user:pw@host:port)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from lifecycle_shared.kafka.watch import TopicWatch
from lifecycle_shared.settings import KafkaSettings

from lifecycle_devstack.broker import EmbeddedBroker
from lifecycle_devstack.databases import create_databases
from lifecycle_devstack.ports import free_port
from lifecycle_devstack.postgres import EmbeddedPostgres
from lifecycle_devstack.services import SERVICES, StackConfig, run_module


async def create_topics(config: StackConfig) -> None:
    """The namespace's topics, created as every service creates them (clients never auto-create)."""
    settings = KafkaSettings(bootstrap_servers=config.kafka_bootstrap, topic_prefix=config.topic_prefix)

    async def nothing_to_rejoin() -> None:
        return None

    await TopicWatch(settings, on_restart=nothing_to_rejoin).check()


@dataclass
class Infra:
    kafka_bootstrap: str
    kafka_idempotence: bool
    postgres_url: str
    work_dir: Path
    broker_name: str
    _owned: list = field(default_factory=list)

    @classmethod
    def start(cls, *, durable_postgres: bool = False) -> Infra:
        work_dir = Path(tempfile.mkdtemp(prefix="lifecycle-"))
        owned: list = []
        postgres_url = os.environ.get("LIFECYCLE_TEST_POSTGRES_URL")
        if not postgres_url:
            postgres = EmbeddedPostgres(work_dir / "postgres", free_port(), durable=durable_postgres)
            postgres.start()
            owned.append(postgres)
            postgres_url = postgres.server_url
        bootstrap = os.environ.get("LIFECYCLE_TEST_KAFKA_BOOTSTRAP")
        broker_name = "apache-kafka"
        if not bootstrap:
            broker = EmbeddedBroker(free_port(), work_dir / "broker.log")
            try:
                broker.start()
            except BaseException:
                for part in reversed(owned):  # PostgreSQL is not left running when the broker fails
                    part.stop()
                raise
            owned.append(broker)
            bootstrap, broker_name = broker.bootstrap_servers, "tansu"
        return cls(kafka_bootstrap=bootstrap, kafka_idempotence=broker_name != "tansu",
                   postgres_url=postgres_url, work_dir=work_dir, broker_name=broker_name, _owned=owned)

    def stack_config(self, **overrides) -> StackConfig:
        """A fresh, isolated namespace: its own topic prefix and its own four databases."""
        tag = uuid.uuid4().hex[:8]
        return StackConfig(kafka_bootstrap=self.kafka_bootstrap, kafka_idempotence=self.kafka_idempotence,
                           embedded_broker=self.broker_name == "tansu",
                           postgres_url=self.postgres_url, topic_prefix=f"t{tag}.",
                           database_prefix=f"t{tag}_", ports={s.name: free_port() for s in SERVICES},
                           **overrides)

    def prepare(self, config: StackConfig, services=SERVICES) -> None:
        """Create the topics, and create and migrate the databases of `services`, in `config`'s namespace."""
        asyncio.run(create_databases(self.postgres_url, [config.database_prefix + s.database for s in services]))
        asyncio.run(create_topics(config))
        with ThreadPoolExecutor() as pool:
            list(pool.map(lambda service: run_module(service, config, "migrate"), services))

    def stop(self, *, keep_files: bool = False) -> None:
        """Stop what was started and delete its files (a PostgreSQL cluster per run: about a gigabyte after a
        test suite), unless `keep_files` or LIFECYCLE_KEEP_INFRA_FILES is set (to look at them afterwards)."""
        for part in reversed(self._owned):
            part.stop()
        if not (keep_files or os.environ.get("LIFECYCLE_KEEP_INFRA_FILES")):
            shutil.rmtree(self.work_dir, ignore_errors=True)
