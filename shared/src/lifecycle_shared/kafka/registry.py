"""One typed way to handle events: each service declares `event type -> Route(model, handler)`.

Every consuming service declares its routes in one shape, in its `handlers/__init__.py`:

    def routes(*, brand: str) -> Router:   # keyword arguments: what its handlers need
        return route_by_type({STAGE_CHANGED_TYPE: Route(StageChangedData, partial(handle_stage_changed, brand=brand)),
                              IDENTITY_MERGED_TYPE: Route(IdentityMergedData, handle_identity_merged)})

with one handler module per consumed event type, named after it (`handlers/stage_changed.py`), and its
handler named `handle_<event type>`. Its `main.py` passes `routes(...)` to its `ConsumerSpec`.

The runner validates an event's `data` into the route's model once, when it decodes the record (a
violation is permanent: the record goes to the DLQ on its own, the others flow), and hands the
handler `Typed` events: the envelope and the validated data. Handlers never validate again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_shared.events import CloudEvent
from lifecycle_shared.sealing import is_sealed
from lifecycle_shared.typed_events import data_as, event_with_data

Data = TypeVar("Data", bound=BaseModel)
Emitted = list[tuple[str, CloudEvent]]


@dataclass(frozen=True, slots=True)
class Typed(Generic[Data]):
    """An event whose `data` was validated into its route's model (`event.data`: as decoded - the envelope's
    dict, or the same model when the record was decoded in one pass; read `data`)."""

    event: CloudEvent
    data: Data


# A handler takes a run of consecutive events routed to it (in order) and returns what to emit.
Handler = Callable[[AsyncConnection, list[Typed[Any]]], Awaitable[Emitted]]


@dataclass(frozen=True)
class Route:
    model: type[BaseModel]
    handler: Handler

    def typed(self, event: CloudEvent) -> Typed[Any]:
        """The event with its data validated (PermanentError, naming only model fields, if invalid)."""
        return Typed(event, data_as(self.model, event))

    def typed_at_once(self, value: bytes) -> Typed[Any] | None:
        """A record's value as a typed event in one pass (`typed_events.event_with_data`), when it is a clear event
        whose data this route's model takes; None otherwise (sealed, invalid: decode and open it as usual).
        Its `event.data` is then the validated model, not a dict: handlers read `data`."""
        found = event_with_data(self.model, value)
        if found is None or is_sealed(found[0]):
            return None
        return Typed(*found)


def each(handle_one: Callable[[AsyncConnection, Typed[Any]], Awaitable[Emitted]]) -> Handler:
    """A handler that applies events one at a time."""

    async def handle(conn: AsyncConnection, events: list[Typed[Any]]) -> Emitted:
        emitted: Emitted = []
        for event in events:
            emitted += await handle_one(conn, event)
        return emitted

    return handle


# What a consumer routes with: an event type's Route, or None for 'not ours' (skipped undecoded).
Router = Callable[[str], Route | None]


def route_by_type(routes: Mapping[str, Route], *, prefixes: Mapping[str, Route] | None = None) -> Router:
    """Exact event-type match first, then the longest matching prefix; None means 'not ours'."""
    ordered = sorted((prefixes or {}).items(), key=lambda item: -len(item[0]))

    def route(event_type: str) -> Route | None:
        if event_type in routes:
            return routes[event_type]
        for prefix, found in ordered:
            if event_type.startswith(prefix):
                return found
        return None

    route.event_types = tuple(routes)  # type: ignore[attr-defined]  # read by routed_types
    return route


def routed_types(router: Router) -> tuple[str, ...]:
    """The exact event types a router from `route_by_type` handles (prefix routes are not enumerable: their
    types count as `other` in the metrics); () for any other router."""
    types = getattr(router, "event_types", ())
    return tuple(types)


Run = tuple[Handler, list[Typed[Any]]]


def runs_of(events: list[tuple[bytes | None, Handler, Typed[Any]]]) -> list[Run]:
    """A batch's events (record key, handler, event; in offset order) as the handler runs that apply them, in
    order: as few as keep each key's events in their order. An event joins its handler's latest run unless a
    later run already holds an event of its key; else it starts a run. Events of different keys may so apply in
    another order than their offsets - an order Kafka itself may deliver them in (keys on other partitions), which
    every handler already takes. Without this, a mixed batch of touchpoints was dozens of one-event runs, each a
    handler's full set of statements."""
    runs: list[Run] = []
    latest_run_of: dict[Handler, int] = {}
    last_run_of_key: dict[bytes | None, int] = {}
    for key, handler, typed in events:
        index = latest_run_of.get(handler)
        if index is None or index < last_run_of_key.get(key, -1):
            runs.append((handler, []))
            index = latest_run_of[handler] = len(runs) - 1
        runs[index][1].append(typed)
        last_run_of_key[key] = index
    return runs
