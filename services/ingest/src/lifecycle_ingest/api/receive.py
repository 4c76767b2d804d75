"""Receiving events over HTTP: one event, or a batch, read, authenticated, accepted and published.

The contract (README "Send events"): 200 only when every event was accepted and the broker
acknowledged it. Anything refused makes the whole answer a 4xx - a client that only reads the
status code notices - with each refused item named (`rejected`, its own status and fields) and
the accepted ones listed (`messageIds`; they are kept, and a resend of them is recognised by
messageId and applied once).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import HTTPException, Request
from fastapi.responses import Response
from lifecycle_shared import metrics, tracing
from lifecycle_shared.events import trace_headers

from lifecycle_ingest.api.accept import accept
from lifecycle_ingest.api.deps import Caller, authenticate, inflight_of, json_body, publisher_of, settings_of
from lifecycle_ingest.domain.json_values import MAX_DEPTH, storable_text, unstorable
from lifecycle_ingest.domain.touchpoints import InvalidTouchpoint, to_json
from lifecycle_ingest.publisher import (
    BrokerNotReady,
    DeliveryUnknown,
    KeysNotReady,
    Overloaded,
    Record,
    TouchpointPublisher,
)

log = logging.getLogger(__name__)

ACCEPTED = metrics.INGESTED.labels("accepted")  # once: `labels()` looks the child up under a lock
# The batch context is merged into every item, which has its own limit (MAX_DEPTH): a batch body no
# deeper than this has nothing too deep anywhere.
MAX_ENVELOPE_DEPTH = 16


async def receive_event(request: Request, *, call_type: str | None, historical: bool) -> Response:
    """One event; `call_type`: the type the path gives it (None: the body's own)."""
    settings = settings_of(request)
    raw, storable = await json_body(request, limit=settings.max_event_bytes, max_depth=MAX_DEPTH)
    caller = authenticate(request, body=raw, events=1)
    with inflight_of(request).slot():
        try:
            record = accept(raw, caller, received_at=datetime.now(UTC), max_record_bytes=settings.max_record_bytes,
                            call_type=call_type, historical=historical, storable=storable)
        except InvalidTouchpoint as invalid:
            _refused(caller, [{"index": 0, "status": invalid.status, "errors": invalid.errors}])
            raise HTTPException(invalid.status, {
                "code": invalid.code, "message": str(invalid), "errors": invalid.errors,
                "messageId": _echoed_id(raw)}, headers=caller.headers) from None
        await _publish(publisher_of(request), [record], request)
    return _ok({"success": True, "messageId": record.message_id}, caller.headers)


async def receive_batch(request: Request, *, call_type: str | None, historical: bool) -> Response:
    """Segment's `{"batch": [...]}`; `historical`: its events are published so (the import path)."""
    settings = settings_of(request)
    # An item's own levels start at the body's third ({"batch": [{...).
    body, storable = await json_body(request, limit=settings.max_batch_bytes, max_depth=MAX_ENVELOPE_DEPTH)
    items, context, sent_at = batch_envelope(body, max_events=settings.max_batch_events, storable=storable,
                                             max_context_bytes=settings.max_event_bytes)
    caller = authenticate(request, body=body, events=len(items))
    with inflight_of(request).slot():
        accepted, rejected = accept_batch(items, caller, max_record_bytes=settings.max_record_bytes,
                                          storable=storable, context=context, sent_at=sent_at,
                                          call_type=call_type, historical=historical)
        if accepted:
            await _publish(publisher_of(request), accepted, request)
    message_ids = [record.message_id for record in accepted]
    if not rejected:
        return _ok({"success": True, "accepted": len(accepted), "rejected": [], "messageIds": message_ids},
                   caller.headers)
    _refused(caller, rejected)
    statuses = {item["status"] for item in rejected}
    status = next(iter(statuses)) if len(statuses) == 1 else 400
    raise HTTPException(status, {
        "code": "partially_rejected" if accepted else rejected[0]["code"] if len(statuses) == 1 else "invalid_request",
        "message": f"{len(rejected)} of {len(items)} events refused (see rejected); "
                   f"{len(accepted)} accepted (see messageIds) and kept",
        "accepted": len(accepted), "rejected": rejected, "messageIds": message_ids}, headers=caller.headers)


def accept_batch(items: list[Any], caller: Caller, *, max_record_bytes: int, storable: bool,
                 context: dict[str, Any], sent_at: datetime | None, call_type: str | None = None,
                 historical: bool = False) -> tuple[list[Record], list[dict[str, Any]]]:
    """Each item accepted or refused on its own. An item reusing an earlier item's messageId for other
    content is refused (downstream it would be dropped as a reused id); an exact repeat is a retry."""
    received_at = datetime.now(UTC)
    accepted: list[Record] = []
    rejected: list[dict[str, Any]] = []
    digests: dict[str, str] = {}
    for index, raw in enumerate(items):
        try:
            record = accept(raw, caller, received_at=received_at, max_record_bytes=max_record_bytes,
                            call_type=call_type, context=context, sent_at=sent_at, historical=historical,
                            storable=storable)
            if digests.setdefault(record.message_id, record.digest) != record.digest:
                raise InvalidTouchpoint([{"field": "messageId", "message": "an earlier event in this batch has "
                                          "this messageId and other content"}])
            accepted.append(record)
        except InvalidTouchpoint as invalid:
            rejected.append({"index": index, "messageId": _echoed_id(raw), "status": invalid.status,
                             "code": invalid.code, "errors": invalid.errors})
    return accepted, rejected


def batch_envelope(body: Any, *, max_events: int, storable: bool,
                   max_context_bytes: int) -> tuple[list[Any], dict[str, Any], datetime | None]:
    """A batch body's items, the context merged into each, and its `sentAt`; 400 or 413 otherwise."""
    if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
        raise HTTPException(400, {"message": "batch: expected an object with a 'batch' array",
                                  "errors": [{"field": "batch", "message": "required array"}]})
    if len(body["batch"]) > max_events:
        raise HTTPException(413, f"batch has {len(body['batch'])} events; the limit is {max_events}")
    if not body["batch"]:
        raise HTTPException(400, {"message": "batch: empty", "errors": [{"field": "batch", "message": "empty"}]})
    # What applies to every item must be storable itself; each item is checked on its own.
    envelope = {} if storable else {name: value for name, value in body.items() if name != "batch"}
    if problems := unstorable(envelope, max_depth=MAX_ENVELOPE_DEPTH):
        raise HTTPException(400, {"message": "; ".join(f"{p['field']}: {p['message']}" for p in problems),
                                  "errors": problems})
    if body.get("context") is not None and not isinstance(body["context"], dict):
        raise HTTPException(400, {"message": "context: expected an object",
                                  "errors": [{"field": "context", "message": "expected an object"}]})
    # Merged into every item: larger than an event may be, it would only make every item too large (at
    # the cost of serialising each), so the batch is refused at once.
    if body.get("context") and len(to_json(body["context"])) > max_context_bytes:
        raise HTTPException(413, f"batch context larger than {max_context_bytes} bytes (it is merged into every event)")
    sent_at = _parse_time(body.get("sentAt"))
    return body["batch"], body.get("context") or {}, sent_at


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(400, {"message": "sentAt: not an ISO-8601 time",
                                  "errors": [{"field": "sentAt", "message": "not an ISO-8601 time"}]}) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _trace_headers(request: Request) -> list[tuple[str, bytes]]:
    """The records' W3C trace context: the request's span when tracing is on (a child of the caller's
    `traceparent`, or a new trace), else the caller's own `traceparent`, carried as it came."""
    if tracing.enabled():
        current = tracing.headers_of()
        return trace_headers(current.get("traceparent"), current.get("tracestate"))
    return trace_headers(request.headers.get("traceparent"), request.headers.get("tracestate"))


async def _publish(publisher: TouchpointPublisher, records: list[Record], request: Request) -> None:
    try:
        await publisher.publish(records, headers=_trace_headers(request))
    except Overloaded:
        metrics.INGESTED.labels("overloaded").inc(len(records))
        raise HTTPException(503, "too many events in flight; nothing was accepted, retry",
                            headers={"Retry-After": "1"}) from None
    except BrokerNotReady:
        metrics.INGESTED.labels("unavailable").inc(len(records))
        raise HTTPException(503, "the event broker is unreachable, or lost its topics and they are being "
                                 "re-created; nothing was accepted, retry", headers={"Retry-After": "5"}) from None
    except KeysNotReady as error:
        log.warning("customers' data keys unavailable; refused with 503", extra={"error": str(error)})
        metrics.INGESTED.labels("unavailable").inc(len(records))
        raise HTTPException(503, "the customers' data keys are unavailable (ingest's database is away); nothing "
                                 "was accepted, retry", headers={"Retry-After": "5"}) from None
    except DeliveryUnknown:
        metrics.INGESTED.labels("unconfirmed").inc(len(records))
        raise HTTPException(503, {
            "code": "delivery_unknown",
            "message": "the event broker did not confirm every event in time: some may have been accepted. "
                       "Retry with the same messageIds (listed here): events already accepted are recognised "
                       "and applied once.",
            "messageIds": [record.message_id for record in records]},
            headers={"Retry-After": "5"}) from None
    ACCEPTED.inc(len(records))


def _refused(caller: Caller, rejected: list[dict[str, Any]]) -> None:
    """Every refused event is counted and logged (where and why; never a value)."""
    for item in rejected:
        metrics.INGESTED.labels("rejected").inc()
        # Top-level fields only: deeper paths hold the client's own keys, which may be personal data.
        fields = sorted({error["field"].split(".")[0].split("[")[0] for error in item["errors"]})
        log.warning("event refused", extra={"source": caller.key.source, "index": item["index"],
                                            "status": item["status"], "fields": fields})


def _ok(body: dict[str, Any], headers: dict[str, str]) -> Response:
    """A 200, rendered by orjson (the standard library's json is the larger part of a small answer)."""
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


def _echoed_id(raw: Any) -> str | None:
    """A refused event's messageId as sent, when it can be echoed (a lone surrogate cannot be encoded)."""
    message_id = raw.get("messageId") if isinstance(raw, dict) else None
    return message_id if storable_text(message_id) else None
