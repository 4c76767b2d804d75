"""Topic names. A prefix (empty in production) lets tests and benchmarks run side by side."""

from __future__ import annotations

from dataclasses import dataclass

TOUCHPOINTS = "touchpoints.v1"
STAGE_TRANSITIONS = "stage-transitions.v1"
LOYALTY_EVENTS = "loyalty-events.v1"
ALL = (TOUCHPOINTS, STAGE_TRANSITIONS, LOYALTY_EVENTS)
# A consumer's dead letters for `<topic>` go to `<topic>.dlq` (see kafka/runner.py).
DLQ_SUFFIX = ".dlq"
# Empty marker topics, one per service process, by which it notices a restart of the embedded broker
# (see kafka/watch.py): no records, not part of the event contract.
SENTINEL_PREFIX = "_lifecycle.alive."


@dataclass(frozen=True)
class Topics:
    prefix: str = ""

    @property
    def touchpoints(self) -> str:
        return self.prefix + TOUCHPOINTS

    @property
    def stage_transitions(self) -> str:
        return self.prefix + STAGE_TRANSITIONS

    @property
    def loyalty_events(self) -> str:
        return self.prefix + LOYALTY_EVENTS

    def all_with_dlq(self) -> list[str]:
        names = [self.prefix + name for name in ALL]
        return names + [name + DLQ_SUFFIX for name in names]
