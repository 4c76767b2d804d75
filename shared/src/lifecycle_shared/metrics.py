"""Prometheus metrics shared by the services (exposed at `/metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS_CONSUMED = Counter(
    "lifecycle_events_consumed_total", "Events taken from Kafka", ["consumer", "outcome"]
)
DUPLICATE_CONFLICTS = Counter(
    "lifecycle_duplicate_conflicts_total",
    "Events skipped as duplicates whose body differs from the one applied (a reused messageId)", ["consumer"]
)
DLQ_RECORDS = Counter(
    "lifecycle_dlq_records_total", "Records sent to a dead-letter topic", ["consumer", "topic"]
)
CONSUMER_LAG = Gauge(
    "lifecycle_consumer_lag", "Records behind the high watermark", ["consumer", "topic", "partition"]
)
OUTBOX_BACKLOG = Gauge("lifecycle_outbox_backlog", "Outbox rows not yet published", ["service"])
OUTBOX_DEAD = Counter("lifecycle_outbox_dead_total", "Outbox rows the broker can never take, set aside",
                      ["service"])
OUTBOX_PUBLISHED = Counter("lifecycle_outbox_published_total", "Outbox rows published", ["service"])
INGESTED = Counter("lifecycle_ingest_events_total", "Events at ingest", ["outcome"])
