"""Handlers by consumed event type, routed by the shared runner."""

from __future__ import annotations

from functools import partial

from lifecycle_shared.events import TOUCHPOINT_TYPE_PREFIX, TouchpointData
from lifecycle_shared.kafka.registry import Route, route_by_type
from lifecycle_shared.topics import Topics

from lifecycle_stage_engine.handlers.touchpoints import handle_touchpoints


def touchpoint_route(topics: Topics):
    return route_by_type({}, prefixes={
        TOUCHPOINT_TYPE_PREFIX: Route(TouchpointData, partial(handle_touchpoints, topic=topics.stage_transitions))})
