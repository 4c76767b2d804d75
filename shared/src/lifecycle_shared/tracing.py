"""OpenTelemetry traces: W3C trace context from an HTTP request through Kafka record headers and the outbox.

Off by default. `configure_tracing` installs the SDK only when the standard variables ask for an exporter
(`OTEL_TRACES_EXPORTER=console|otlp`, or `OTEL_EXPORTER_OTLP_ENDPOINT` / `..._TRACES_ENDPOINT` set); otherwise
the API's global provider stays the no-op proxy and `enabled()` is False, so the runner and the HTTP
middleware skip every tracing step (one isinstance check per batch or request). A test installs its own SDK
provider (with an in-memory exporter) through `opentelemetry.trace.set_tracer_provider`: `enabled()` follows.

OTLP goes over HTTP/protobuf (`opentelemetry-exporter-otlp-proto-http`, a dependency: the image exports with
nothing added), configured by the exporter's own standard variables (`OTEL_EXPORTER_OTLP_*`), sampled by the
SDK's (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from lifecycle_shared.events import TRACEPARENT_HEADER, TRACESTATE_HEADER, CloudEvent
from lifecycle_shared.logging import log_context

log = logging.getLogger(__name__)

PROPAGATOR = TraceContextTextMapPropagator()
TRACER_NAME = "lifecycle"


def enabled() -> bool:
    """True once an SDK tracer provider is installed (by `configure_tracing` or a test)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def exporter_wanted(environ: Mapping[str, str] = os.environ) -> str | None:
    """The exporter the standard OTEL_* variables ask for: `console`, `otlp`, or None (tracing off)."""
    chosen = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if chosen == "none" or environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if chosen in ("console", "otlp"):
        return chosen
    if environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return "otlp"
    return None


def configure_tracing(*, service: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Install the SDK with a batch exporter when the environment asks for one; True if installed."""
    wanted = exporter_wanted(environ)
    if wanted is None or enabled():
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    exporter: SpanExporter
    if wanted == "console":
        exporter = ConsoleSpanExporter()
    else:
        exporter = OTLPSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME", service)}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return True


def context_from_headers(headers: Iterable[tuple[str, bytes]] | None) -> Context | None:
    """The W3C trace context a Kafka record carries (None when it carries none or an invalid one)."""
    carrier = {name: value.decode("ascii", "replace") for name, value in headers or ()
               if name in (TRACEPARENT_HEADER, TRACESTATE_HEADER)}
    if TRACEPARENT_HEADER not in carrier:
        return None
    context = PROPAGATOR.extract(carrier)
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def headers_of(span: trace.Span | None = None) -> dict[str, str]:
    """`traceparent` (and `tracestate`) naming `span` (default: the current one); {} when it is not valid."""
    span = span if span is not None else trace.get_current_span()
    if not span.get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


def current_trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def consumer_attributes(*, topic: str, partition: int, offset: int, event_id: str,
                        event_type: str, consumer: str) -> dict[str, Any]:
    """Messaging semantic-convention attributes of a consumed record (no personal data: ids of events only)."""
    return {"messaging.system": "kafka", "messaging.operation.type": "process",
            "messaging.destination.name": topic, "messaging.destination.partition.id": str(partition),
            "messaging.kafka.offset": offset, "messaging.message.id": event_id,
            "messaging.consumer.group.name": consumer, "cloudevents.event_type": event_type}


def emitted_trace_headers(subjects: Sequence[str], spans_by_subject: Mapping[str, trace.Span],
                          only: trace.Span | None) -> list[dict[str, str]]:
    """For each emitted event (by its subject), the trace context it continues: the span of the consumed
    record about the same customer, else `only` (the run's single record), else none (a new trace)."""
    found: list[dict[str, str]] = []
    for subject in subjects:
        span = spans_by_subject.get(subject, only)
        found.append(headers_of(span) if span is not None else {})
    return found


class RecordSpans:
    """The runner's spans for one transaction over consumed records: one CONSUMER span per record, the child
    of the context its producer put on the record (a new trace when it carries none), all open for the whole
    transaction (the records are applied together) and ended with its outcome. A handler run of a single
    record runs with that record's span current (its logs carry its trace id); an event a run emits continues
    the trace of the record in the run about the same customer (subject), else of the run's only record."""

    def __init__(self, consumer: str, items: Sequence[tuple[Any, CloudEvent]]) -> None:
        start = tracer().start_span
        self._spans: dict[int, trace.Span] = {}
        for record, event in items:
            parent = context_from_headers(record.headers)
            self._spans[id(event)] = start(
                f"{consumer} process", context=parent if parent is not None else Context(),
                kind=trace.SpanKind.CONSUMER,
                attributes=consumer_attributes(topic=record.topic, partition=record.partition, offset=record.offset,
                                               event_id=event.id, event_type=event.type, consumer=consumer))

    @contextmanager
    def run(self, events: Sequence[CloudEvent]) -> Iterator[None]:
        """A handler run: the record's span current (and its ids in the logs) when the run has one record."""
        if len(events) != 1:
            yield
            return
        event = events[0]
        with trace.use_span(self._spans[id(event)], end_on_exit=False), \
                log_context(event_id=event.id, customer_id=event.subject):
            yield

    def emitted(self, events: Sequence[CloudEvent], emitted: Sequence[tuple[str, CloudEvent]]
                ) -> list[dict[str, str]]:
        """The trace context of each event a run over `events` emitted."""
        if not emitted:
            return []
        by_subject = {event.subject: self._spans[id(event)] for event in events}
        only = self._spans[id(events[0])] if len(events) == 1 else None
        return emitted_trace_headers([event.subject for _, event in emitted], by_subject, only)

    def log_applied(self, consumer: str, events: Sequence[CloudEvent]) -> None:
        """At DEBUG, a line per applied event in its own span and ids (a no-op at INFO)."""
        if not log.isEnabledFor(logging.DEBUG):
            return
        for event in events:
            with trace.use_span(self._spans[id(event)], end_on_exit=False), \
                    log_context(event_id=event.id, customer_id=event.subject):
                log.debug("event applied", extra={"consumer": consumer, "event_type": event.type})

    def end(self, error: BaseException | None = None) -> None:
        for span in self._spans.values():
            if error is not None:
                span.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__name__))
            span.end()
