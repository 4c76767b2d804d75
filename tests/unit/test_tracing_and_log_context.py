"""Tracing off by default and on by the standard variables; the outbox's trace context per emitted event;
log lines carrying trace and event ids and scrubbed of emails, keys and tokens."""

from __future__ import annotations

import logging

import pytest
from lifecycle_shared import tracing
from lifecycle_shared.logging import log_context, register_secrets, scrub
from opentelemetry import trace

from tests.support.tracing import captured_logs, in_memory_tracing

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(("environ", "wanted"), [
    ({}, None),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, None),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "otlp"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, "otlp"),
    ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, None),
    ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, None),
])
def test_the_exporter_follows_the_standard_variables_and_is_off_by_default(environ, wanted):
    assert tracing.exporter_wanted(environ) == wanted


def test_without_an_sdk_provider_tracing_is_off_and_nothing_is_configured():
    assert not tracing.enabled()
    assert tracing.configure_tracing(service="test", environ={}) is False
    assert not tracing.enabled()
    assert tracing.headers_of() == {}


def test_a_record_context_is_read_only_from_a_valid_traceparent():
    assert tracing.context_from_headers(None) is None
    assert tracing.context_from_headers([("traceparent", b"00-abc")]) is None
    context = tracing.context_from_headers([("ce_type", b"x"), ("traceparent", CALLER.encode())])
    assert context is not None
    assert format(trace.get_current_span(context).get_span_context().trace_id, "032x") == CALLER.split("-")[1]


def test_an_emitted_event_continues_the_span_of_its_customer_else_the_only_record():
    with in_memory_tracing():
        ann, bob = (tracing.tracer().start_span(name) for name in ("ann", "bob"))
        found = tracing.emitted_trace_headers(["ann", "bob", "cy"], {"ann": ann, "bob": bob}, None)
        assert [h["traceparent"].split("-")[2] for h in found[:2]] == [
            format(span.get_span_context().span_id, "016x") for span in (ann, bob)]
        assert found[2] == {}
        assert tracing.emitted_trace_headers(["cy"], {"ann": ann}, ann) == [tracing.headers_of(ann)]


def test_log_lines_carry_the_trace_and_event_ids_and_no_email_key_or_token():
    register_secrets("admin-token-for-the-log-test-0f3a")
    log = logging.getLogger("lifecycle_test.logs")
    with in_memory_tracing(), captured_logs() as logs:
        with tracing.tracer().start_as_current_span("work") as span, log_context(event_id="e-1", customer_id="ann"):
            log.warning("refused %s with key lc_wk_abc123 and Bearer xyz.987654", "ann@example.com",
                        extra={"detail": "token admin-token-for-the-log-test-0f3a, lc_sk_0011 from bo.b@shop.co.uk"})
            trace_id = format(span.get_span_context().trace_id, "032x")
        log.warning("outside")
    first, second = logs.lines()
    assert (first["trace_id"], first["event_id"], first["customer_id"]) == (trace_id, "e-1", "ann")
    assert "trace_id" not in second and "event_id" not in second
    for secret in ("ann@example.com", "lc_wk_abc123", "xyz.987654", "admin-token-for-the-log-test", "lc_sk_0011",
                   "bo.b@shop.co.uk"):
        assert secret not in logs.text
    assert scrub("customer ann-1 ordered o-1 @ 10:00; basic auth") == "customer ann-1 ordered o-1 @ 10:00; basic auth"
