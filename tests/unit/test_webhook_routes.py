"""Messaging's router with the webhook fan-out: the subscribable Kafka event types are handled by their own
handler and then fanned out; everything else is routed as before; messaging's own message.sent never comes
from Kafka."""

from __future__ import annotations

from datetime import UTC, datetime

from lifecycle_messaging.handlers import routes, routes_and_webhooks
from lifecycle_shared.events import IDENTITY_MERGED_TYPE, STAGE_CHANGED_TYPE, IdentityMergedData, StageChangedData

from tests.support.messaging import freshness_at


def test_subscribable_types_get_the_fan_out_and_the_rest_is_routed_as_before():
    freshness = freshness_at(datetime(2026, 5, 1, tzinfo=UTC))
    plain = routes(brand="Shop", freshness=freshness)
    with_hooks = routes_and_webhooks(brand="Shop", freshness=freshness)
    for event_type, model in ((STAGE_CHANGED_TYPE, StageChangedData), (IDENTITY_MERGED_TYPE, IdentityMergedData)):
        route = with_hooks(event_type)
        assert route is not None and route.model is model
        assert route.handler is not plain(event_type).handler  # wrapped: own handler, then the fan-out
        assert with_hooks(event_type) is route  # built once
    # not a subscribable type: routed as before (the same model and handler function)
    identify, plain_identify = with_hooks("touchpoint.identify"), plain("touchpoint.identify")
    assert identify is not None and plain_identify is not None and identify.model is plain_identify.model
    assert getattr(identify.handler, "func", identify.handler) is getattr(plain_identify.handler, "func",
                                                                          plain_identify.handler)
    assert with_hooks("lifecycle.history_corrected") is None
    assert with_hooks("message.sent") is None and with_hooks("message.failed") is None
    assert with_hooks("webhook.endpoint_disabled") is None
