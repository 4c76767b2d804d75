"""Driving the shared ConsumerRunner by hand in tests: a handler that records and fails on demand, a runner around
it, and what a batch applied."""

from __future__ import annotations

from lifecycle_shared.db import inbox, outbox
from lifecycle_shared.kafka.registry import Route, each
from lifecycle_shared.kafka.runner import ConsumerRunner, PermanentError, RetryPolicy
from lifecycle_shared.testing import make_cloud_event
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select


class FlakyHandler:
    """Emits one event per input; raises for ids in `poison` (transient) or `broken` (permanent)."""

    def __init__(self, *, poison=(), broken=()) -> None:
        self.poison, self.broken, self.calls = set(poison), set(broken), []

    async def __call__(self, conn, typed):
        event = typed.event
        self.calls.append(event.id)
        if event.id in self.poison:
            raise RuntimeError(f"cannot apply {event.id}")
        if event.id in self.broken:
            raise PermanentError("contract violated")
        return [("derived.v1", make_cloud_event(id=f"derived-{event.id}", subject=event.subject))]


class AnyData(BaseModel):
    """The runner tests' events: any object is valid data."""

    model_config = ConfigDict(extra="allow")


def make_runner(engine, producer, handler, model: type[BaseModel] = AnyData) -> ConsumerRunner:
    route = Route(model, each(handler))
    return ConsumerRunner(name="runner-test", consumer=None, producer=producer, engine=engine,
                          route=lambda event_type: route, retry=RetryPolicy(attempts=3, base_delay_s=0.01))


async def applied_by(engine, ids) -> tuple[set[str], set[str]]:
    async with engine.connect() as conn:
        seen = set((await conn.execute(select(inbox.c.event_id).where(inbox.c.event_id.in_(ids)))).scalars())
        emitted = set((await conn.execute(select(outbox.c.event_id).where(
            outbox.c.event_id.in_([f"derived-{i}" for i in ids])))).scalars())
    return seen, emitted
