"""One service at a time, in-process (ASGI + its lifespan), against real PostgreSQL and Kafka: the test
namespace, the stage engine's database and topic, a broker of a test's own."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer
from lifecycle_devstack.broker import EmbeddedBroker
from lifecycle_devstack.faults import StallingProxy
from lifecycle_devstack.infra import Infra
from lifecycle_devstack.ports import free_port
from lifecycle_devstack.services import BY_NAME, SERVICES, StackConfig
from lifecycle_shared.db import create_engine
from lifecycle_shared.topics import Topics


@pytest.fixture(scope="module")
def namespace(infra: Infra) -> StackConfig:
    config = infra.stack_config()
    infra.prepare(config, services=SERVICES)
    return config


@pytest.fixture(scope="module")
async def engine(namespace):
    eng = create_engine(namespace.database_url(BY_NAME["stage-engine"]))
    yield eng
    await eng.dispose()


@pytest.fixture(scope="module")
def topic(namespace) -> str:
    return Topics(namespace.topic_prefix).stage_transitions


@pytest.fixture
def own_broker(tmp_path):
    """A broker of this test's own, to stop or stall; stopped whatever happens."""
    proxy = StallingProxy(target_port=free_port())
    broker = EmbeddedBroker(proxy._target_port, tmp_path / "broker.log", advertised_port=proxy.port)
    try:
        broker.start()
        yield broker, proxy
    finally:
        broker.stop()


@pytest.fixture
async def loyalty_engine(namespace):
    """An engine on loyalty's database."""
    engine = create_engine(namespace.database_url(BY_NAME["loyalty"]))
    yield engine
    await engine.dispose()


@pytest.fixture
async def runner_parts(namespace):
    """A database engine (loyalty's database) and a started producer for driving a ConsumerRunner by hand."""
    engine = create_engine(namespace.database_url(BY_NAME["loyalty"]))
    producer = AIOKafkaProducer(bootstrap_servers=namespace.kafka_bootstrap, acks="all")
    await producer.start()
    yield engine, producer
    await producer.stop()
    await engine.dispose()
