"""The campaigns admin API (issue 16): the shipped campaigns seeded once, every change a new immutable version,
messages recording the version that made them, template errors refused at save time (400 naming the locale, part
and line), disabling and deleting, and the preview of a campaign's message for a customer in their locale.
Messaging's app in-process (role `api`), its handlers and delivery worker driven by hand on a held clock, real
PostgreSQL and broker, a real SMTP server (the session's sink)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import httpx
import pytest
from lifecycle_devstack.services import BY_NAME, StackConfig
from lifecycle_messaging.db import repository as repo
from lifecycle_messaging.delivery import deliver_once
from lifecycle_messaging.handlers import routes
from lifecycle_messaging.main import create_app
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_messaging.suppressing import Freshness
from lifecycle_shared.db import create_engine
from lifecycle_shared.events import IDENTITY_MERGED_TYPE, CloudEvent, IdentityMergedData
from lifecycle_shared.kafka.runner import ConsumerRunner

from tests.support.in_process import kafka_settings, running
from tests.support.kafka_records import record
from tests.support.messaging import Clock, messaging_namespace, stage_event, track_event

ADMIN = "campaigns-admin-token-6e1f0c2d9a"
NOW = datetime(2026, 5, 4, 3, 0, tzinfo=UTC)
SHIPPED = {"welcome", "consideration_nudge", "thank_you_feedback", "feedback_request", "retention_offer",
           "referral_invite", "come_back_offer", "we_miss_you", "welcome_back", "cart_reminder"}


@pytest.fixture(scope="module")
def namespace(infra) -> StackConfig:
    return messaging_namespace(infra)


@dataclass
class Admin:
    client: httpx.AsyncClient
    app: object
    settings: MessagingSettings
    clock: Clock
    engine: object

    async def call(self, method: str, path: str, **kwargs) -> httpx.Response:
        return await self.client.request(method, "/v1/admin/campaigns" + path,
                                         headers={"authorization": f"Bearer {ADMIN}"}, **kwargs)

    async def consume(self, *events: CloudEvent) -> None:
        """Through the handlers, with the campaigns in force in the app."""
        freshness = Freshness(clock=self.clock, window=self.settings.freshness)
        runner = ConsumerRunner(name="messaging-test", consumer=None, producer=None, engine=self.engine,
                                route=routes(brand="Mộc", freshness=freshness, book=self.app.state.campaigns))
        await runner.process([record("topic", n, e.to_bytes(), key=e.subject.encode()) for n, e in enumerate(events)])

    async def deliver(self) -> None:
        freshness = Freshness(clock=self.clock, window=self.settings.freshness)
        while await deliver_once(SimpleNamespace(engine=self.engine), self.settings, freshness,
                                 self.app.state.campaigns):
            pass

    async def log(self, customer: str) -> list[dict]:
        async with self.engine.connect() as conn:
            return await repo.messages_for(conn, customer_id=customer)


def settings_for(namespace: StackConfig, port: int) -> MessagingSettings:
    return MessagingSettings(environment="development", role="api", admin_token=ADMIN, brand_name="Mộc",
                             database_url=namespace.database_url(BY_NAME["messaging"]),
                             kafka=kafka_settings(namespace), smtp_port=port)


@pytest.fixture
async def admin(namespace, mail_sink) -> AsyncIterator[Admin]:
    _, port = mail_sink
    settings, clock = settings_for(namespace, port), Clock(NOW)
    app = create_app(settings, clock=clock)
    async with running(app) as client:
        engine = create_engine(settings.database_url)
        yield Admin(client, app, settings, clock, engine)
        await engine.dispose()


def cart_campaign(campaign_id: str, event: str, **changes) -> dict:
    return {"id": campaign_id, "name": "Wishlist reminder", "trigger": {"type": "touchpoint", "events": [event]},
            "delay_hours": 1, "template": "cart_reminder", "priority": 70, **changes}


async def test_the_shipped_campaigns_are_seeded_once_and_a_shops_change_survives_a_restart(namespace, mail_sink):
    _, port = mail_sink
    settings = settings_for(namespace, port)
    headers = {"authorization": f"Bearer {ADMIN}"}
    async with running(create_app(settings)) as client:
        listed = (await client.get("/v1/admin/campaigns", headers=headers)).json()
        assert {c["id"] for c in listed} >= SHIPPED
        shipped = {c["id"]: c for c in listed if c["id"] in SHIPPED}
        assert {(c["origin"], c["template"], c["holdout_share"]) for c in shipped.values()} == {
            ("shipped", c, None) for c in SHIPPED}
        before = shipped["we_miss_you"]
        changed = await client.put("/v1/admin/campaigns/we_miss_you", headers=headers,
                                   json={**{k: before[k] for k in ("name", "trigger", "template")}, "priority": 65})
        assert changed.status_code == 200, changed.text
    async with running(create_app(settings)) as client:  # started again: seeding adds nothing, changes nothing
        again = (await client.get("/v1/admin/campaigns/we_miss_you", headers=headers)).json()
        assert (again["priority"], [v["version"] for v in again["versions"]]) == (65, [1, 2])
        assert (await client.get("/v1/admin/campaigns/welcome", headers=headers)).json()["version"] == 1


async def test_every_change_is_a_new_version_and_messages_keep_the_version_that_made_them(admin, mail_sink):
    sink, _ = mail_sink
    run = uuid.uuid4().hex[:8]
    campaign_id, event, customer = f"wish-{run}", f"Wishlist Added {run}", f"wisher-{run}"
    created = await admin.call("POST", "", json=cart_campaign(campaign_id, event))
    assert created.status_code == 201, created.text
    assert (created.json()["version"], created.json()["origin"], created.json()["deleted_at"]) == (1, "api", None)
    assert (await admin.call("POST", "", json=cart_campaign(campaign_id, event))).status_code == 409

    await admin.consume(stage_event(customer, None, "awareness", NOW))
    await admin.consume(track_event(customer, event, NOW, name="Nón lá"))
    changed = await admin.call("PUT", f"/{campaign_id}", json={**cart_campaign(campaign_id, event), "id": None} | {
        "priority": 75})
    assert changed.status_code == 400  # the id is the path's, never the body's
    body = {k: v for k, v in cart_campaign(campaign_id, event).items() if k != "id"}
    changed = await admin.call("PUT", f"/{campaign_id}", json={**body, "priority": 75})
    assert (changed.status_code, changed.json()["version"], changed.json()["priority"]) == (200, 2, 75)
    same = await admin.call("PUT", f"/{campaign_id}", json={**body, "priority": 75})
    assert same.json()["version"] == 2  # nothing changed: no new version
    admin.clock.now = NOW + timedelta(hours=2)
    await admin.consume(track_event(f"other-{run}", event, admin.clock.now))
    detail = (await admin.call("GET", f"/{campaign_id}")).json()
    assert [(v["version"], v["definition"]["priority"]) for v in detail["versions"]] == [(1, 70), (2, 75)]
    [first] = [m for m in await admin.log(customer) if m["campaign"] == campaign_id]
    assert (first["campaign_version"], first["template"], first["trigger"]) == (1, "cart_reminder", "touchpoint")

    disabled = await admin.call("POST", f"/{campaign_id}/disable")
    assert (disabled.json()["version"], disabled.json()["enabled"]) == (3, False)
    await admin.deliver()  # due an hour after the wish: its campaign is off now
    [first] = [m for m in await admin.log(customer) if m["campaign"] == campaign_id]
    assert (first["status"], first["suppressed_reason"]) == ("suppressed", "campaign_disabled")
    assert "cart_reminder" not in [m["X-Lifecycle-Template"] for m in sink.to(f"{customer}@example.com")]
    assert (await admin.call("POST", f"/{campaign_id}/enable")).json()["version"] == 4

    assert (await admin.call("DELETE", f"/{campaign_id}")).status_code == 204
    assert (await admin.call("DELETE", f"/{campaign_id}")).status_code == 404
    assert campaign_id not in {c["id"] for c in (await admin.call("GET", "")).json()}
    listed = {c["id"]: c for c in (await admin.call("GET", "?include_deleted=true")).json()}
    assert listed[campaign_id]["deleted_at"] is not None
    assert (await admin.call("POST", f"/{campaign_id}/disable")).status_code == 409
    back = await admin.call("PUT", f"/{campaign_id}", json=body)
    assert (back.json()["version"], back.json()["deleted_at"]) == (5, None)
    assert (await admin.call("DELETE", f"/{campaign_id}")).status_code == 204


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"content": {"vi-VN": {"subject": "Chào {{ name }}", "text": "ok", "html": "<p>\n{{ name }\n</p>"}}},
     "content.vi-vn.html", "line 2: "),
    ({"content": {"th": {"subject": "{{ ''.__class__.__mro__ }}", "text": "t", "html": "h"}}},
     "content.th.subject", "not allowed"),
    ({"content": {"en": {"subject": "{{ coupon_code }}", "text": "t", "html": "h"}}}, "content.en.subject",
     "coupon_code"),
    ({"template": "no_such_template"}, "template", "unknown template"),
    ({"content": {"en": {"subject": "s", "text": "{{ " + "(" * 300 + "1" + ")" * 300 + " }}", "html": "h"}}},
     "content.en.text", "nested too deeply"),  # Jinja's parser recursing: a 400, never a 500
])
async def test_a_template_error_is_a_400_at_save_time_naming_where(admin, change, field, message):
    run = uuid.uuid4().hex[:8]
    answer = await admin.call("POST", "", json=cart_campaign(f"bad-{run}", f"Bad {run}", **change))
    assert answer.status_code == 400, answer.text
    [error] = answer.json()["errors"]
    assert error["field"] == field and message in error["message"]
    assert (await admin.call("GET", f"/bad-{run}")).status_code == 404  # nothing was saved


@pytest.mark.parametrize("body", [
    {"audience": [{"field": "shoe_size", "op": "eq", "value": 42}]},
    {"audience": [{"field": "stage", "op": "in", "value": ["heaven"]}]},
    {"trigger": {"type": "loyalty", "event": "tier_reached", "min_points": 10}},
    {"holdout_share": 2},
    {"delay_hours": 24 * 61},
    {"channel": "sms"},
    {"name": "a\u0000b"},
    {"id": "Not An Id"},
])
async def test_a_campaign_that_cannot_be_is_a_400(admin, body):
    answer = await admin.call("POST", "", json={**cart_campaign(f"x-{uuid.uuid4().hex[:8]}", "X"), **body})
    assert answer.status_code == 400, answer.text


async def test_the_admin_token_is_required(admin):
    assert (await admin.client.get("/v1/admin/campaigns")).status_code == 401
    wrong = await admin.client.get("/v1/admin/campaigns", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401


async def test_the_preview_renders_a_campaigns_message_for_a_customer_in_their_locale(admin):
    run = uuid.uuid4().hex[:8]
    lan, guest = f"lan-{run}", f"guest-{run}"
    await admin.consume(stage_event(lan, "consideration", "purchase", NOW, orders=1,
                                    traits={"firstName": "Lan", "locale": "vi-VN"}))
    preview = await admin.call("POST", "/thank_you_feedback/preview", json={"customer_id": lan})
    assert preview.status_code == 200, preview.text
    shown = preview.json()
    assert (shown["campaign"], shown["version"], shown["locale"], shown["in_audience"]) == (
        "thank_you_feedback", 1, "vi", True)
    assert "Lan" in shown["subject"] and shown["address_known"] and "<html lang=\"vi\">" in shown["html"]
    thai = (await admin.call("POST", "/thank_you_feedback/preview", json={"customer_id": lan, "locale": "th-TH"}))
    assert thai.json()["locale"] == "th" and thai.json()["subject"] != shown["subject"]
    marketing = (await admin.call("POST", "/retention_offer/preview", json={"customer_id": lan})).json()
    assert "/v1/unsubscribe/preview" in marketing["text"]  # a link that unsubscribes nobody

    # A campaign of its own: its copy, its audience.
    own = {**cart_campaign(f"own-{run}", f"Own {run}"), "audience": [{"field": "language", "op": "eq", "value": "th"}],
           "content": {"vi": {"subject": "{{ name }} ơi, giỏ hàng vẫn chờ bạn", "text": "Chào {{ name }}\n",
                              "html": "<p>Chào {{ name }}</p>"}}}
    assert (await admin.call("POST", "", json=own)).status_code == 201
    mine = (await admin.call("POST", f"/own-{run}/preview", json={"customer_id": lan})).json()
    assert mine["subject"] == "Lan ơi, giỏ hàng vẫn chờ bạn"
    assert (mine["in_audience"], mine["failing"]) == (False, [{"field": "language", "op": "eq", "value": "th"}])

    # A guest merged into Lan is previewed as Lan; someone messaging never heard of is a 404.
    merge = IdentityMergedData(survivor_id=lan, absorbed_id=guest, absorbed_ids=[guest], user_id=None,
                               reason="alias", cause_event_ids=["c"], event_time=NOW, processed_at=NOW)
    await admin.consume(CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=IDENTITY_MERGED_TYPE, time=NOW,
                                   subject=lan, data=merge.model_dump(mode="json")))
    merged = (await admin.call("POST", "/welcome/preview", json={"customer_id": guest})).json()
    assert merged["customer_id"] == lan
    assert (await admin.call("POST", "/welcome/preview", json={"customer_id": f"nobody-{run}"})).status_code == 404
    assert (await admin.call("POST", "/nothing-here/preview", json={"customer_id": lan})).status_code == 404
    assert (await admin.call("POST", "/welcome/preview", json={"customer_id": lan, "version": 9})).status_code == 404
    assert (await admin.call("DELETE", f"/own-{run}")).status_code == 204
