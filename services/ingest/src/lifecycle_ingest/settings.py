"""Ingest settings, from `LIFECYCLE_INGEST_*` environment variables."""

from __future__ import annotations

from lifecycle_shared.settings import ServiceSettings
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict


class IngestSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LIFECYCLE_INGEST_")

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/lifecycle_ingest"
    port: int = 8000
    # Segment's limits.
    max_event_bytes: int = 32 * 1024
    max_batch_bytes: int = 500 * 1024
    max_batch_events: int = 2500
    # How long a request waits for the broker's ack before answering 503.
    publish_timeout_s: float = 5.0
    # Events in flight to the broker across all requests; beyond it: 503 + Retry-After.
    max_inflight_events: int = 50_000
    # Revoked keys stop working within this many seconds.
    key_cache_ttl_s: float = 30.0
    # Bearer token for the admin API (sources and keys); unset = admin API disabled.
    admin_token: SecretStr | None = None
