"""Handlers by consumed event type, routed by the shared runner."""

from __future__ import annotations

from functools import partial

from lifecycle_shared.events import STAGE_CHANGED_TYPE
from lifecycle_shared.kafka.runner import route_by_type

from lifecycle_messaging.handlers.contact import handle_contacts
from lifecycle_messaging.handlers.stage_changed import handle_stage_changes
from lifecycle_messaging.settings import MessagingSettings


def route_for(settings: MessagingSettings):
    return route_by_type({
        STAGE_CHANGED_TYPE: partial(handle_stage_changes, brand=settings.brand_name),
        "touchpoint.identify": handle_contacts,
        "touchpoint.signed_up": handle_contacts,
    })
