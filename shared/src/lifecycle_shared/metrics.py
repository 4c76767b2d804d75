"""Prometheus metrics shared by the services (exposed at `/metrics`).

Names: `lifecycle_<what>` for what every service has (HTTP, consumers, outbox), `lifecycle_<service>_<what>`
for one service's own (e.g. `lifecycle_loyalty_points_earned_total`); counters end in `_total`, durations
in `_seconds`. No label carries personal data: customer ids, emails and raw paths never appear, only
bounded sets (route templates, event types a consumer routes, stage names, reasons). Every series an
alert reads is created at start-up with value 0 (see `initialise_consumer`), so an alert sees a healthy 0,
not nothing. docs/operations.md lists them all.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter(
    "lifecycle_events_consumed_total",
    "Events taken from Kafka, by event type and outcome (applied, duplicate, dead_lettered, ignored, erased: "
    "sealed for a customer whose keys an erasure destroyed)",
    ["consumer", "type", "outcome"]
)
# `type` of records no route of the consumer wants, or that are not a readable CloudEvent: the header's
# value is not a label (anything on the topic could put an unbounded set there).
OTHER_TYPE = "other"
CONSUMER_OUTCOMES = ("applied", "duplicate", "dead_lettered", "erased")
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
OUTBOX_OLDEST_AGE = Gauge("lifecycle_outbox_oldest_age_seconds",
                          "Age of the oldest outbox row not yet published (0 when empty)", ["service"])
OUTBOX_DEAD = Counter("lifecycle_outbox_dead_total", "Outbox rows the broker can never take, set aside",
                      ["service"])
OUTBOX_PUBLISHED = Counter("lifecycle_outbox_published_total", "Outbox rows published", ["service"])
INGESTED = Counter("lifecycle_ingest_events_total", "Events at ingest", ["outcome"])

HTTP_REQUESTS = Counter("lifecycle_http_requests_total", "HTTP answers, by route template and status",
                        ["service", "method", "route", "status"])
HTTP_DURATION = Histogram("lifecycle_http_request_duration_seconds", "Time to answer, by route template",
                          ["service", "method", "route"],
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))


def initialise_consumer(consumer: str, event_types: Iterable[str], topics: Iterable[str] = ()) -> None:
    """Create a consumer's series at 0: each routed type's outcomes (the dead-letter count included), the
    ignored count and each consumed topic's dead-letter count."""
    for event_type in event_types:
        for outcome in CONSUMER_OUTCOMES:
            EVENTS_CONSUMED.labels(consumer, event_type, outcome)
    EVENTS_CONSUMED.labels(consumer, OTHER_TYPE, "ignored")
    EVENTS_CONSUMED.labels(consumer, OTHER_TYPE, "dead_lettered")
    for topic in topics:
        DLQ_RECORDS.labels(consumer, topic)


def initialise_service(service: str) -> None:
    """Create a service's outbox series at 0."""
    OUTBOX_BACKLOG.labels(service).set(0)
    OUTBOX_OLDEST_AGE.labels(service).set(0)
    OUTBOX_PUBLISHED.labels(service)
    OUTBOX_DEAD.labels(service)

_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Where a consumer's reaction time goes: how old a record is when a poll hands it over (its Kafka
# timestamp to the poll), how long its batch takes to apply (decode, handlers, DB commit), then to
# commit its offsets.
RECORD_AGE_AT_POLL = Histogram("lifecycle_consumer_record_age_at_poll_seconds",
                               "Record timestamp to the poll that returned it", ["consumer"], buckets=_SECONDS)
BATCH_SECONDS = Histogram("lifecycle_consumer_batch_seconds", "Time per polled batch, by step",
                          ["consumer", "step"], buckets=_SECONDS)
