"""Event endpoints: Segment's `/v1/track|identify|page|screen|group|alias|batch` and the native
`/v1/touchpoints`. Answered 200 only after the broker acknowledged every accepted event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from lifecycle_shared import metrics
from lifecycle_shared.events import TouchpointData

from lifecycle_ingest.api.deps import Publisher, Settings, Source, json_body
from lifecycle_ingest.api.schemas import EVENT_ERRORS, AcceptedOut, BatchOut, batch_body, touchpoint_body
from lifecycle_ingest.domain.json_values import unstorable
from lifecycle_ingest.domain.touchpoints import InvalidTouchpoint, normalise
from lifecycle_ingest.publisher import (
    BrokerNotReady,
    DeliveryUnknown,
    Overloaded,
    Record,
    TouchpointPublisher,
    to_record,
)

router = APIRouter(prefix="/v1", tags=["events"])

BATCH_FIELDS = {"batch", "sentAt", "context", "writeKey", "integrations", "_metadata", "metadata"}
MAX_BATCH_EVENTS = 2500  # Segment's limit; documented in the OpenAPI schema
MAX_ENVELOPE_DEPTH = 16  # the batch context is merged into every item, which has its own limit


def _record(touchpoint: TouchpointData, *, source: str, limit: int) -> Record:
    record = to_record(touchpoint, source=source)
    if len(record.value) > limit:
        raise InvalidTouchpoint([{"field": "(event)", "message": f"larger than {limit} bytes as published "
                                                                 "(normalised, batch context included)"}])
    return record


async def _publish(publisher: TouchpointPublisher, records: list[Record]) -> None:
    try:
        await publisher.publish(records)
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
            "error": "the event broker did not confirm every event in time: some may have been accepted. "
                     "Retry with the same messageIds (listed here): events already accepted are recognised "
                     "and applied once.",
            "messageIds": [record.message_id for record in records]},
            headers={"Retry-After": "5"}) from None
    metrics.INGESTED.labels("accepted").inc(len(records))


async def _single(request: Request, source: str, settings, publisher, event_type: str | None) -> dict[str, Any]:
    raw = await json_body(request, limit=settings.max_event_bytes)
    try:
        touchpoint = normalise(raw, received_at=datetime.now(UTC), default_type=event_type)
        record = _record(touchpoint, source=source, limit=settings.max_record_bytes)
    except InvalidTouchpoint as invalid:
        metrics.INGESTED.labels("rejected").inc()
        raise HTTPException(400, {"error": str(invalid), "errors": invalid.errors}) from None
    await _publish(publisher, [record])
    return {"success": True, "messageId": record.message_id}


def _single_route(event_type: str | None):
    async def endpoint(request: Request, source: Source, settings: Settings, publisher: Publisher) -> dict[str, Any]:
        return await _single(request, source, settings, publisher, event_type)

    endpoint.__name__ = f"post_{event_type or 'touchpoint'}"
    return endpoint


router.add_api_route("/touchpoints", _single_route(None), methods=["POST"], response_model=AcceptedOut,
                     summary="Send one touchpoint (type in the body)", responses=EVENT_ERRORS,
                     openapi_extra=touchpoint_body(None))
for _type in ("track", "identify", "page", "screen", "group", "alias"):
    router.add_api_route(f"/{_type}", _single_route(_type), methods=["POST"], response_model=AcceptedOut,
                         summary=f"Segment-compatible {_type} call", responses=EVENT_ERRORS,
                         openapi_extra=touchpoint_body(_type))


@router.post("/batch", summary="Segment-compatible batch: {\"batch\": [...]}", response_model=BatchOut,
             responses=EVENT_ERRORS, openapi_extra=batch_body(max_events=MAX_BATCH_EVENTS))
async def post_batch(request: Request, source: Source, settings: Settings, publisher: Publisher) -> JSONResponse:
    body = await json_body(request, limit=settings.max_batch_bytes)
    items, context, sent_at = _batch_envelope(body, max_events=settings.max_batch_events)
    received_at = datetime.now(UTC)
    accepted: list[Record] = []
    rejected: list[dict[str, Any]] = []
    for index, raw in enumerate(items):
        try:
            touchpoint = normalise(raw, received_at=received_at, batch_context=context, batch_sent_at=sent_at)
            accepted.append(_record(touchpoint, source=source, limit=settings.max_record_bytes))
        except InvalidTouchpoint as invalid:
            message_id = raw.get("messageId") if isinstance(raw, dict) else None
            rejected.append({"index": index, "messageId": message_id if isinstance(message_id, str) else None,
                             "errors": invalid.errors})
    if rejected:
        metrics.INGESTED.labels("rejected").inc(len(rejected))
    if not accepted:
        return JSONResponse({"success": False, "error": "no valid event in the batch",
                             "accepted": 0, "rejected": rejected}, status_code=400)
    await _publish(publisher, accepted)
    return JSONResponse({"success": True, "accepted": len(accepted), "rejected": rejected,
                         "messageIds": [record.message_id for record in accepted]})


def _batch_envelope(body: Any, *, max_events: int) -> tuple[list[Any], dict[str, Any], datetime | None]:
    if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
        raise HTTPException(400, {"error": "batch: expected an object with a 'batch' array",
                                  "errors": [{"field": "batch", "message": "required array"}]})
    unknown = sorted(set(body) - BATCH_FIELDS)
    if unknown:
        raise HTTPException(400, {"error": f"unknown field(s): {', '.join(unknown)}",
                                  "errors": [{"field": name, "message": "unknown field"} for name in unknown]})
    if len(body["batch"]) > max_events:
        raise HTTPException(413, f"batch has {len(body['batch'])} events; the limit is {max_events}")
    if not body["batch"]:
        raise HTTPException(400, {"error": "batch: empty", "errors": [{"field": "batch", "message": "empty"}]})
    # What applies to every item must be storable itself; each item is checked on its own.
    envelope = {name: value for name, value in body.items() if name != "batch"}
    if problems := unstorable(envelope, max_depth=MAX_ENVELOPE_DEPTH):
        raise HTTPException(400, {"error": "; ".join(f"{p['field']}: {p['message']}" for p in problems),
                                  "errors": problems})
    context = body.get("context") if isinstance(body.get("context"), dict) else {}
    sent_at = _parse_time(body.get("sentAt"))
    return body["batch"], context, sent_at


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(400, {"error": "sentAt: not an ISO-8601 time",
                                  "errors": [{"field": "sentAt", "message": "not an ISO-8601 time"}]}) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
