"""Settings read from environment variables, once, by pydantic-settings.

Broker settings are shared by every service (prefix `LIFECYCLE_KAFKA_`); each service adds its
own class with its own prefix (`LIFECYCLE_INGEST_`, `LIFECYCLE_STAGE_ENGINE_`, ...).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lifecycle_shared.topics import Topics


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIFECYCLE_KAFKA_")

    bootstrap_servers: str = "127.0.0.1:9092"
    # Real Kafka: on. The embedded broker (Tansu) rejects InitProducerId, so the devstack turns it off.
    enable_idempotence: bool = True
    topic_prefix: str = ""
    partitions: int = 6
    replication_factor: int = 1
    linger_ms: int = 1
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 1500
    max_poll_records: int = 500
    # How long the broker may hold a fetch waiting for data: aiokafka's 500 ms default adds up
    # to half a second per hop at low load.
    fetch_max_wait_ms: int = 50
    # How often each service checks that its topics exist (and re-creates what vanished).
    topic_check_interval_s: float = 2.0
    # A broker that keeps topics in memory (the embedded Tansu) loses them on restart; on, each
    # service notices even a restart another service already repaired, and rejoins afresh.
    detect_broker_restarts: bool = False

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)


class ServiceSettings(BaseSettings):
    """Fields every service has; subclasses set `env_prefix` and defaults."""

    model_config = SettingsConfigDict(populate_by_name=True)

    # LIFECYCLE_ENVIRONMENT, shared by all services. Anything but development refuses to start
    # with a missing or placeholder secret; the embedded stack (`dev.py up`) runs as development.
    environment: Literal["development", "production"] = Field(default="production",
                                                              validation_alias="LIFECYCLE_ENVIRONMENT")
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/lifecycle"
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
