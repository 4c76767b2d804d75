"""Handlers by consumed event type, routed by the shared runner."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial

from lifecycle_shared.events import TOUCHPOINT_TYPE_PREFIX, TouchpointData
from lifecycle_shared.kafka.registry import Route, Router, route_by_type
from lifecycle_shared.topics import Topics

from lifecycle_stage_engine.domain.rules import RuleSet
from lifecycle_stage_engine.handlers.touchpoints import handle_touchpoints


def routes(*, topics: Topics, rules: Callable[[], RuleSet], clock: Callable[[], datetime]) -> Router:
    handler = partial(handle_touchpoints, topic=topics.stage_transitions, rules=rules, clock=clock)
    return route_by_type({}, prefixes={TOUCHPOINT_TYPE_PREFIX: Route(TouchpointData, handler)})
