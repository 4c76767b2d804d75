"""Messaging driven by hand: its routes and the delivery worker's judging on a fixed clock."""

from __future__ import annotations

from datetime import datetime

from lifecycle_devstack.infra import Infra
from lifecycle_devstack.services import BY_NAME, StackConfig
from lifecycle_messaging.handlers import routes
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_messaging.suppressing import Freshness
from lifecycle_shared.kafka.registry import Router


def freshness_at(now: datetime, settings: MessagingSettings | None = None) -> Freshness:
    """The freshness window of `settings` (the defaults unless given), judged at `now`."""
    settings = settings or MessagingSettings(environment="development")
    return Freshness(clock=lambda: now, window=settings.freshness)


def messaging_routes(now: datetime) -> Router:
    """Messaging's handlers as the service routes them, its clock stopped at `now`."""
    settings = MessagingSettings(environment="development")
    return routes(brand=settings.brand_name, freshness=freshness_at(now, settings))


def messaging_namespace(infra: Infra) -> StackConfig:
    """A namespace of its own with the topics and messaging's database only (for a module that drives messaging)."""
    config = infra.stack_config()
    infra.prepare(config, services=[BY_NAME["messaging"]])
    return config
