"""Traces and logs as a test reads them: an SDK tracer provider with an in-memory exporter installed for the
test's duration (the API's globals put back after), and the services' JSON log lines captured as the
service's own logging setup formats and filters them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from lifecycle_shared.logging import ContextFilter, json_formatter
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once


@contextmanager
def in_memory_tracing() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        provider.shutdown()
        # The API sets its global provider once per process; put it back to "none" for the tests after.
        trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]  # noqa: SLF001
        trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]  # noqa: SLF001


class CapturedLogs:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]


@contextmanager
def captured_logs(*debug_loggers: str) -> Iterator[CapturedLogs]:
    """Every line logged meanwhile (INFO and up; DEBUG from `debug_loggers`), as the services write them."""
    captured = CapturedLogs()
    handler = logging.StreamHandler(captured.stream)
    handler.setFormatter(json_formatter("test"))
    handler.addFilter(ContextFilter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in debug_loggers}
    root_level = root.level
    root.addHandler(handler)
    root.setLevel(min(root_level or logging.WARNING, logging.INFO))
    for name in debug_loggers:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield captured
    finally:
        root.removeHandler(handler)
        root.setLevel(root_level)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
