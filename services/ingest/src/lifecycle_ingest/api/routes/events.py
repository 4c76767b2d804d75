"""Event endpoints: Segment's `/v1/track|identify|page|screen|group|alias|batch`, analytics.js's
short paths `/v1/t|i|p|s|g|a|b`, the native `/v1/touchpoints`, and Segment's `/v1/import` for
historical data (a batch whose events are published `historical`: recorded, nobody messaged).

The contract (README "Send events"): 200 only when every event was accepted and the broker
acknowledged it. Anything refused makes the whole answer a 4xx - a client that only reads the
status code notices - with each refused item named (`rejected`, its own status and fields) and
the accepted ones listed (`messageIds`; they are kept, and a resend of them is recognised by
messageId and applied once).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from lifecycle_shared import metrics
from lifecycle_shared.events import touchpoint_type, trace_headers

from lifecycle_ingest.api.deps import (
    WRITE_KEY_SCHEME,
    Caller,
    authenticate,
    inflight_of,
    json_body,
    publisher_of,
    settings_of,
)
from lifecycle_ingest.api.schemas import EVENT_ERRORS, AcceptedOut, BatchOut, batch_body, touchpoint_body
from lifecycle_ingest.domain.json_values import MAX_DEPTH, storable_text, unstorable
from lifecycle_ingest.domain.touchpoints import InvalidTouchpoint, to_json, touchpoint_data
from lifecycle_ingest.publisher import (
    BrokerNotReady,
    DeliveryUnknown,
    Overloaded,
    Record,
    TouchpointPublisher,
    to_record,
)

log = logging.getLogger(__name__)
# No FastAPI dependencies on the event routes: each costs a resolution per request, and the routes
# read the key themselves (`authenticate`). The key's scheme is documented through `SECURITY`.
router = APIRouter(prefix="/v1", tags=["events"])
SECURITY: dict[str, Any] = {"security": [{WRITE_KEY_SCHEME: []}]}

ACCEPTED = metrics.INGESTED.labels("accepted")  # once: `labels()` looks the child up under a lock
SHORT_PATHS = {"t": "track", "i": "identify", "p": "page", "s": "screen", "g": "group", "a": "alias"}
BATCH_FIELDS = {"batch", "sentAt", "context", "writeKey", "integrations", "_metadata", "metadata"}
# The batch context is merged into every item, which has its own limit (MAX_DEPTH): a batch body no
# deeper than this has nothing too deep anywhere.
MAX_ENVELOPE_DEPTH = 16
# Events a browser could forge that move money or points: only a server key may send them.
SERVER_KEY_EVENTS = frozenset({"touchpoint.order_completed", "touchpoint.order_refunded",
                               "touchpoint.referral_completed"})


def _accept(raw: Any, caller: Caller, *, settings, received_at: datetime, storable: bool,
            default_type: str | None = None, context: dict[str, Any] | None = None,
            sent_at: datetime | None = None, historical: bool = False) -> Record:
    """One event, normalised, allowed for this key, and built as the record to publish."""
    data = touchpoint_data(raw, received_at=received_at, default_type=default_type, batch_context=context,
                           batch_sent_at=sent_at, known_storable=storable, historical=historical)
    if caller.key.kind != "server" and touchpoint_type(data["type"], data.get("event")) in SERVER_KEY_EVENTS:
        raise InvalidTouchpoint([{"field": "event", "message": "this event moves money or points: send it "
                                  "from your server with a server key (lc_sk_...)"}],
                                status=403, code="server_key_required")
    item_key = raw.get("writeKey")
    if isinstance(item_key, str) and item_key != caller.key_text:
        raise InvalidTouchpoint([{"field": "writeKey", "message": "differs from the request's key"}],
                                status=401, code="unauthorized")
    return _record(data, caller, limit=settings.max_record_bytes)


def _record(data: dict[str, Any], caller: Caller, *, limit: int) -> Record:
    record = to_record(data, source=caller.key.source, key_kind=caller.key.kind)
    if len(record.value) > limit:
        raise InvalidTouchpoint([{"field": "(event)", "message": f"larger than {limit} bytes as published "
                                                                 "(normalised, batch context included)"}],
                                status=413, code="payload_too_large")
    return record


async def _publish(publisher: TouchpointPublisher, records: list[Record], request: Request) -> None:
    try:
        await publisher.publish(records, headers=trace_headers(request.headers.get("traceparent"),
                                                                request.headers.get("tracestate")))
    except Overloaded:
        metrics.INGESTED.labels("overloaded").inc(len(records))
        raise HTTPException(503, "too many events in flight; nothing was accepted, retry",
                            headers={"Retry-After": "1"}) from None
    except BrokerNotReady:
        metrics.INGESTED.labels("unavailable").inc(len(records))
        raise HTTPException(503, "the event broker is unreachable, or lost its topics and they are being "
                                 "re-created; nothing was accepted, retry", headers={"Retry-After": "5"}) from None
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


async def _single(request: Request, event_type: str | None) -> Response:
    settings = settings_of(request)
    raw, storable = await json_body(request, limit=settings.max_event_bytes, max_depth=MAX_DEPTH)
    caller = authenticate(request, body=raw, events=1)
    with inflight_of(request).slot():
        try:
            record = _accept(raw, caller, settings=settings, received_at=datetime.now(UTC), storable=storable,
                             default_type=event_type)
        except InvalidTouchpoint as invalid:
            _refused(caller, [{"index": 0, "status": invalid.status, "errors": invalid.errors}])
            raise HTTPException(invalid.status, {
                "code": invalid.code, "message": str(invalid), "errors": invalid.errors,
                "messageId": _echoed_id(raw)}, headers=caller.headers) from None
        await _publish(publisher_of(request), [record], request)
    return _ok({"success": True, "messageId": record.message_id}, caller.headers)


def _ok(body: dict[str, Any], headers: dict[str, str]) -> Response:
    """A 200, rendered by orjson (the standard library's json is the larger part of a small answer)."""
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


def _single_route(event_type: str | None):
    async def endpoint(request: Request) -> Response:
        return await _single(request, event_type)

    endpoint.__name__ = f"post_{event_type or 'touchpoint'}"
    return endpoint


async def post_batch(request: Request) -> Response:
    return await _batch(request, historical=False)


async def post_import(request: Request) -> Response:
    """Segment's path for historical data: a batch whose events are published `historical`."""
    return await _batch(request, historical=True)


async def _batch(request: Request, *, historical: bool) -> Response:
    settings, publisher = settings_of(request), publisher_of(request)
    # An item's own levels start at the body's third ({"batch": [{...).
    body, storable = await json_body(request, limit=settings.max_batch_bytes, max_depth=MAX_ENVELOPE_DEPTH)
    items, context, sent_at = _batch_envelope(body, max_events=settings.max_batch_events, storable=storable,
                                              max_context_bytes=settings.max_event_bytes)
    caller = authenticate(request, body=body, events=len(items))
    with inflight_of(request).slot():
        accepted, rejected = _accept_batch(items, caller, settings=settings, storable=storable,
                                           context=context, sent_at=sent_at, historical=historical)
        if accepted:
            await _publish(publisher, accepted, request)
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


def _accept_batch(items: list[Any], caller: Caller, *, settings, storable: bool, context: dict[str, Any],
                  sent_at: datetime | None, historical: bool) -> tuple[list[Record], list[dict[str, Any]]]:
    """Each item accepted or refused on its own. An item reusing an earlier item's messageId for other
    content is refused (downstream it would be dropped as a reused id); an exact repeat is a retry."""
    received_at = datetime.now(UTC)
    accepted: list[Record] = []
    rejected: list[dict[str, Any]] = []
    digests: dict[str, str] = {}
    for index, raw in enumerate(items):
        try:
            record = _accept(raw, caller, settings=settings, received_at=received_at, storable=storable,
                             context=context, sent_at=sent_at, historical=historical)
            if digests.setdefault(record.message_id, record.digest) != record.digest:
                raise InvalidTouchpoint([{"field": "messageId", "message": "an earlier event in this batch has "
                                          "this messageId and other content"}])
            accepted.append(record)
        except InvalidTouchpoint as invalid:
            rejected.append({"index": index, "messageId": _echoed_id(raw), "status": invalid.status,
                             "code": invalid.code, "errors": invalid.errors})
    return accepted, rejected


def _echoed_id(raw: Any) -> str | None:
    """A refused event's messageId as sent, when it can be echoed (a lone surrogate cannot be encoded)."""
    message_id = raw.get("messageId") if isinstance(raw, dict) else None
    return message_id if storable_text(message_id) else None


def _batch_envelope(body: Any, *, max_events: int, storable: bool,
                    max_context_bytes: int) -> tuple[list[Any], dict[str, Any], datetime | None]:
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


HANDLERS: dict[str, Callable[[Request], Awaitable[Response]]] = {"/v1/touchpoints": _single_route(None)}
router.add_api_route("/touchpoints", HANDLERS["/v1/touchpoints"], methods=["POST"], response_model=AcceptedOut,
                     summary="Send one touchpoint (type in the body)", responses=EVENT_ERRORS,
                     openapi_extra=touchpoint_body(None) | SECURITY)
for _short, _type in SHORT_PATHS.items():
    HANDLERS[f"/v1/{_type}"] = HANDLERS[f"/v1/{_short}"] = _single_route(_type)
    router.add_api_route(f"/{_type}", HANDLERS[f"/v1/{_type}"], methods=["POST"], response_model=AcceptedOut,
                         summary=f"Segment-compatible {_type} call (also at /v1/{_short})", responses=EVENT_ERRORS,
                         openapi_extra=touchpoint_body(_type) | SECURITY)
    router.add_api_route(f"/{_short}", HANDLERS[f"/v1/{_short}"], methods=["POST"], include_in_schema=False)
HANDLERS.update({"/v1/batch": post_batch, "/v1/b": post_batch, "/v1/import": post_import})
router.add_api_route("/batch", post_batch, methods=["POST"], response_model=BatchOut, responses=EVENT_ERRORS,
                     summary="Segment-compatible batch: {\"batch\": [...]} (also at /v1/b)",
                     openapi_extra=batch_body() | SECURITY)
router.add_api_route("/b", post_batch, methods=["POST"], include_in_schema=False)
router.add_api_route("/import", post_import, methods=["POST"], response_model=BatchOut, responses=EVENT_ERRORS,
                     summary="Historical data (Segment's import): a batch whose events are published with "
                             "`historical: true` - recorded, and nobody is messaged about them",
                     openapi_extra=batch_body() | SECURITY)


@router.post("/m", status_code=204, include_in_schema=False)
async def analytics_js_telemetry() -> Response:
    """analytics.js reports its own delivery metrics to `<apiHost>/m` unless told not to
    (`metrics: {sampleRate: 0}`): not events, answered and not read, so a browser's console stays clean."""
    return Response(status_code=204)
