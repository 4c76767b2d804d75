"""`accept()`: one raw event, as a client sent it, to the record to publish - or its refusal."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lifecycle_shared.events import touchpoint_type

from lifecycle_ingest.api.deps import Caller
from lifecycle_ingest.domain.touchpoints import InvalidTouchpoint, touchpoint_data
from lifecycle_ingest.domain.verification import USER_HASH, identity_verified, without_user_hash
from lifecycle_ingest.publisher import Record, to_record

# Events a browser could forge that move money or points: only a server key may send them.
SERVER_KEY_EVENTS = frozenset({"touchpoint.order_completed", "touchpoint.order_refunded",
                               "touchpoint.referral_completed", "touchpoint.review_written"})


def accept(raw: Any, caller: Caller, *, received_at: datetime, max_record_bytes: int, call_type: str | None = None,
           context: dict[str, Any] | None = None, sent_at: datetime | None = None, historical: bool = False,
           storable: bool = False) -> Record:
    """One event validated and normalised (`touchpoint_data`), allowed for the caller's key, and built as
    the record to publish, `verified` as `domain.verification` judges it; `InvalidTouchpoint` (its status, code
    and every field at fault) when refused.
    Single events and batch items alike: `call_type` is the type the path gives, `context` and `sent_at` a
    batch's, `historical` the import path's, `storable` whether the body was checked whole."""
    data = touchpoint_data(raw, received_at=received_at, default_type=call_type, batch_context=context,
                           batch_sent_at=sent_at, known_storable=storable, historical=historical)
    if caller.key.kind != "server" and touchpoint_type(data["type"], data.get("event")) in SERVER_KEY_EVENTS:
        raise InvalidTouchpoint([{"field": "event", "message": "this event moves money or points: send it "
                                  "from your server with a server key (lc_sk_...)"}],
                                status=403, code="server_key_required")
    item_key = raw.get("writeKey")
    if isinstance(item_key, str) and item_key != caller.key_text:
        raise InvalidTouchpoint([{"field": "writeKey", "message": "differs from the request's key"}],
                                status=401, code="unauthorized")
    context = data["context"]
    data["verified"] = identity_verified(key_kind=caller.key.kind, user_id=data.get("userId"),
                                         given_hash=context.get(USER_HASH), secret=caller.key.identity_secret)
    data["context"] = without_user_hash(context)
    record = to_record(data, source=caller.key.source, key_kind=caller.key.kind)
    if len(record.value) > max_record_bytes:
        raise InvalidTouchpoint([{"field": "(event)", "message": f"larger than {max_record_bytes} bytes as "
                                  "published (normalised, batch context included)"}],
                                status=413, code="payload_too_large")
    return record
