"""Prometheus metrics shared by the services (exposed at `/metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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

_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Where a consumer's reaction time goes: how old a record is when a poll hands it over (its Kafka
# timestamp to the poll), how long its batch takes to apply (decode, handlers, DB commit), then to
# commit its offsets.
RECORD_AGE_AT_POLL = Histogram("lifecycle_consumer_record_age_at_poll_seconds",
                               "Record timestamp to the poll that returned it", ["consumer"], buckets=_SECONDS)
BATCH_SECONDS = Histogram("lifecycle_consumer_batch_seconds", "Time per polled batch, by step",
                          ["consumer", "step"], buckets=_SECONDS)
