"""Ingest settings, from `LIFECYCLE_INGEST_*` environment variables."""

from __future__ import annotations

from typing import ClassVar, Self

from lifecycle_shared.settings import ServiceSettings
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict


class IngestSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LIFECYCLE_INGEST_")
    # LIFECYCLE_INGEST_ADMIN_TOKEN guards the admin API (sources and keys).
    requires_admin_token: ClassVar[bool] = True

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/lifecycle_ingest"
    port: int = 8000
    # Segment's limits.
    max_event_bytes: int = 32 * 1024
    max_batch_bytes: int = 500 * 1024
    max_batch_events: int = 2500
    # An event as published (normalised, with the batch context merged in); below the producer's
    # 1 MB request limit, so an accepted event can always be sent.
    max_record_bytes: int = 128 * 1024
    # How long a request waits for the broker's ack before answering 503.
    publish_timeout_s: float = 5.0
    # Events in flight to the broker across all requests; beyond it: 503 + Retry-After.
    max_inflight_events: int = 50_000
    # Requests being processed at once (body in, checked, published); beyond it: 503 at once.
    max_inflight_requests: int = Field(default=256, gt=0)
    # A request body must arrive within this (else 408): slow senders do not hold connections forever.
    body_timeout_s: float = Field(default=10.0, gt=0)
    # How often each instance checks whether keys or sources changed (one one-row read) and reloads
    # them if so: a revocation or rotation takes effect on every instance within about this long.
    key_refresh_s: float = Field(default=1.0, gt=0, le=60)
    # Per key and instance, in events (a batch counts its items): a token bucket refilled at
    # `rate_limit_events_per_s`, holding at most `rate_limit_burst` (at least one full batch).
    rate_limit_events_per_s: float = Field(default=5_000.0, gt=0)
    rate_limit_burst: int = 10_000
    @model_validator(mode="after")
    def _burst_holds_a_batch(self) -> Self:
        if self.rate_limit_burst < self.max_batch_events:
            raise ValueError("LIFECYCLE_INGEST_RATE_LIMIT_BURST must hold a full batch "
                             f"(at least LIFECYCLE_INGEST_MAX_BATCH_EVENTS = {self.max_batch_events})")
        return self
