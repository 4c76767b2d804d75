"""The stage engine's emit path per event, in isolation: a `lifecycle.stage_changed` announcement from its data
model to the bytes the outbox stores, the old way and the one `writes.Changes` takes.

    .venv/bin/python bench/emit_path.py [--events 2000] [--repeat 5]

The announcements are built from the touchpoints `bench/payloads.py` gives the apply bench (their customer,
anonymousId, kept traits, time), as `Changes._announce` builds them. Timed (best of `--repeat` passes, µs per event):

  before  `StageChangedData(...)` -> `model_dump(mode="json")` -> `CloudEvent(data=dict)` -> `to_bytes` (exclude_none)
  after   `StageChangedData(...)` -> `typed_events.event_of` (the model as `data`) -> `to_bytes`

and their parts. Every pair of outputs is checked byte for byte first.
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lifecycle_shared.events import STAGE_CHANGED_TYPE, CloudEvent, StageChangedData  # noqa: E402
from lifecycle_shared.typed_events import event_of  # noqa: E402
from lifecycle_stage_engine.domain.profiles import traits_of  # noqa: E402
from payloads import backlog_records  # noqa: E402

SOURCE = "/stage-engine"


def announcements(count: int) -> list[tuple[str, dict[str, Any]]]:
    """(event id, StageChangedData fields) per bench touchpoint."""
    now = datetime.now(UTC)
    found = []
    for n, (_, value) in enumerate(backlog_records(count, customers=max(1, count // 4))):
        event = json.loads(value)
        data = event["data"]
        traits = traits_of({**data.get("context", {}).get("traits", {}), **data.get("traits", {})}, data["context"])
        found.append((event["id"], dict(
            customer_id=event["subject"], user_id=data.get("userId"), anonymous_ids=[data.get("anonymousId") or "anon"],
            from_stage=None if n % 3 == 0 else "awareness", to_stage="consideration", reason="engaged",
            rule_version="v1", cause_event_ids=[event["id"]], event_time=datetime.fromisoformat(data["timestamp"]),
            processed_at=now, traits=traits, orders=n % 4, revenue=float(n % 7) * 10.5, historical=False,
            verified=n % 2 == 0)))
    return found


def before(event_id: str, fields: dict[str, Any]) -> bytes:
    data = StageChangedData(**fields)
    event = CloudEvent(id=event_id, source=SOURCE, type=STAGE_CHANGED_TYPE, time=fields["event_time"],
                       subject=fields["customer_id"], data=data.model_dump(mode="json"))
    return event.model_dump_json(exclude_none=True).encode()  # the old `to_bytes`


def after(event_id: str, fields: dict[str, Any]) -> bytes:
    data = StageChangedData(**fields)
    return event_of(data, id=event_id, source=SOURCE, type=STAGE_CHANGED_TYPE, time=fields["event_time"],
                    subject=fields["customer_id"]).to_bytes()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    items = announcements(args.events)
    assert all(before(*item) == after(*item) for item in items), "the bytes differ"
    models = [(event_id, StageChangedData(**fields), fields) for event_id, fields in items]
    dicts = [(event_id, data.model_dump(mode="json"), fields) for event_id, data, fields in models]
    envelopes = [event_of(data, id=event_id, source=SOURCE, type=STAGE_CHANGED_TYPE, time=fields["event_time"],
                          subject=fields["customer_id"]) for event_id, data, fields in models]
    cases = {
        "before: whole path": lambda: [before(*item) for item in items],
        "after: whole path": lambda: [after(*item) for item in items],
        "  data model built": lambda: [StageChangedData(**fields) for _, fields in items],
        "  before: model_dump(mode=json)": lambda: [data.model_dump(mode="json") for _, data, _ in models],
        "  before: CloudEvent(data=dict)": lambda: [
            CloudEvent(id=i, source=SOURCE, type=STAGE_CHANGED_TYPE, time=f["event_time"], subject=f["customer_id"],
                       data=d) for i, d, f in dicts],
        "  after: event_of (model as data)": lambda: [
            event_of(d, id=i, source=SOURCE, type=STAGE_CHANGED_TYPE, time=f["event_time"], subject=f["customer_id"])
            for i, d, f in models],
        "  after: to_bytes": lambda: [e.to_bytes() for e in envelopes],
    }
    print(f"{len(items)} announcements, bytes identical; µs per event (best of {args.repeat}):")
    for name, run in cases.items():
        best = min(timeit.repeat(run, number=1, repeat=args.repeat))
        print(f"  {name:36s} {best / len(items) * 1e6:7.2f}")


if __name__ == "__main__":
    main()
