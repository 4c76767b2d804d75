"""JSON logs on stdout, one object per line (python-json-logger).

Tracebacks keep their frames (file, line, code) but not the exceptions' texts, which quote the
data an error was about: every logged exception goes through `describe_error`.

Every line carries the current trace's `trace_id` and `span_id` (OpenTelemetry, when a span is current) and,
inside a consumer's work on one event, its `event_id` and `customer_id` (the customer key the event is about,
never an address). Whatever a line says, messages and string fields are scrubbed of email addresses, our key
formats (`lc_wk_`, `lc_sk_`), bearer credentials and the service's own tokens (`register_secrets`).
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from lifecycle_shared.errors import describe_error


def json_formatter(service: str) -> logging.Formatter:
    return PersonalDataSafeFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        static_fields={"service": service},
    )


class PersonalDataSafeFormatter(JsonFormatter):
    def formatException(  # noqa: N802 - logging's name
        self, ei: tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
    ) -> str:
        _, error, tb = ei
        lines = traceback.format_tb(tb)
        cause = (error.__cause__ or error.__context__) if error is not None else None
        for _ in range(5):  # a chain can be long (or, rarely, a cycle)
            if cause is None:
                break
            lines.append(f"caused by {describe_error(cause)}\n")
            cause = cause.__cause__ or cause.__context__
        return scrub("".join(lines) + (describe_error(error) if error is not None else ""))


_CONTEXT: ContextVar[dict[str, str]] = ContextVar("lifecycle_log_context", default={})  # noqa: B039 - never mutated
_SECRETS: set[str] = set()
_SCRUB = re.compile(
    r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+"  # an email address
    r"|\blc_(?:wk|sk)_[A-Za-z0-9_\-]+"  # a write or server key
    r"|(?i:bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}")  # a credential as an Authorization header carries it
_STANDARD = frozenset(vars(logging.makeLogRecord({})))


@contextmanager
def log_context(**fields: str) -> Iterator[None]:
    """Fields every line logged inside carries (the consumer's `event_id`, `customer_id`)."""
    token = _CONTEXT.set({**_CONTEXT.get(), **fields})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def register_secrets(*values: str) -> None:
    """Values never to appear in a log line (the admin and API tokens): replaced wherever they occur."""
    _SECRETS.update(value for value in values if len(value) >= 8)


def scrub(text: str) -> str:
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "[redacted]")
    return _SCRUB.sub("[redacted]", text)


class ContextFilter(logging.Filter):
    """Adds the trace and event ids; scrubs the message and string fields of personal data and secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            record.trace_id = format(span.trace_id, "032x")
            record.span_id = format(span.span_id, "016x")
        for name, value in _CONTEXT.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        if record.args:
            record.msg, record.args = record.getMessage(), None
        if isinstance(record.msg, str):
            record.msg = scrub(record.msg)
        for name, value in list(vars(record).items()):
            if name not in _STANDARD and isinstance(value, str):
                setattr(record, name, scrub(value))
        return True


def configure_logging(*, service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(json_formatter(service))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
