"""What a browser may establish (README): the public write key neither mints points nor re-points a customer's
email, while the same facts told by the shop's server, or by a write key with a valid identity-verification
hash (`context.userHash`), do count. Through the real ingest HTTP API, Kafka, the four services and an SMTP sink."""

from __future__ import annotations

import hashlib
import hmac
import uuid

import httpx
import pytest
from lifecycle_shared.testing import eventually, make_touchpoint

from tests.support.pipeline import Pipeline, metric_total

SOURCE = "trust-shop"
BONUS = 500


class Shop:
    """A source with a write key (as in every browser), a server key (kept on the shop's server) and an
    identity-verification secret (the shop's server makes each signed-in customer's hash with it)."""

    def __init__(self, pipeline: Pipeline, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
        self.pipeline, self.client, self.admin = pipeline, client, admin
        self.write_key = self.server_key = self.secret = ""

    async def set_up(self) -> Shop:
        ingest = self.pipeline.url("ingest")
        for kind in ("write", "server"):
            response = await self.client.post(ingest + "/v1/admin/keys", json={"source": SOURCE, "kind": kind},
                                              headers=self.admin)
            assert response.status_code == 201, response.text
            setattr(self, f"{kind}_key", response.json()["key"])
        response = await self.client.post(ingest + f"/v1/admin/sources/{SOURCE}/identity-secret", headers=self.admin)
        assert response.status_code == 201, response.text
        self.secret = response.json()["identity_secret"]
        assert self.secret.startswith("lc_iv_")
        return self

    def user_hash(self, user_id: str) -> str:
        """What the shop's server computes for its signed-in customer and hands to the page."""
        return hmac.new(self.secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()

    async def send(self, key: str, *events: dict) -> httpx.Response:
        return await self.client.post(self.pipeline.url("ingest") + "/v1/batch", json={"batch": list(events)},
                                      auth=(key, ""))

    async def from_server(self, *events: dict) -> None:
        response = await self.send(self.server_key, *events)
        assert response.status_code == 200, response.text

    async def from_browser(self, *events: dict) -> None:
        response = await self.send(self.write_key, *events)
        assert response.status_code == 200, response.text

    async def buyer(self, *, orders: int = 2, email: str | None = None) -> str:
        """A signed-up customer with `orders` orders of 10 (retention with two): balance 10 per order."""
        user = f"user-{uuid.uuid4().hex[:8]}"
        traits = {"email": email, "firstName": "Ann"} if email else {}
        await self.from_server(make_touchpoint(event="Signed Up", userId=user, context={"traits": traits}))
        for n in range(orders):
            await self.from_server(make_touchpoint(event="Order Completed", userId=user, anonymousId=None,
                                                   properties={"order_id": f"{user}-o{n}", "revenue": 10}))
        await self.balance(user, 10 * orders)
        return user

    async def stage(self, user: str, stage: str) -> dict:
        async def reached():
            profile = await self.pipeline.get(self.client, "stage-engine", f"/v1/customers/{user}")
            return profile if profile and profile["stage"] == stage else None

        return await eventually(reached, what=f"{user} in {stage}")

    async def balance(self, user: str, points: int) -> dict:
        async def settled():
            balance = await self.pipeline.get(self.client, "loyalty", f"/v1/customers/{user}/balance")
            return balance if balance and balance["balance"] == points else None

        return await eventually(settled, what=f"{user}'s balance at {points}")

    async def unpaid(self) -> float:
        return await metric_total(self.client, self.pipeline.url("loyalty"), "lifecycle_loyalty_bonuses_unpaid_total")


@pytest.fixture
async def shop(pipeline):
    async with pipeline.client() as client:
        yield await Shop(pipeline, client, {"authorization": f"Bearer {pipeline.admin_token}"}).set_up()


def review(user: str, **extra) -> dict:
    return make_touchpoint(event="Product Reviewed", userId=user, anonymousId=None,
                           properties={"rating": 5, "product_id": "TEE-1"}, **extra)


async def test_a_review_from_the_write_key_moves_the_stage_but_pays_no_points(shop):
    user = await shop.buyer()
    unpaid = await shop.unpaid()
    await shop.from_browser(review(user))
    profile = await shop.stage(user, "loyalty")  # analytics still follow the browser (Segment's model)
    # Loyalty has seen the move, and refused to pay it.
    await eventually(lambda: _above(shop.unpaid(), unpaid), what="the unverified move to be counted unpaid")
    balance = await shop.pipeline.get(shop.client, "loyalty", f"/v1/customers/{user}/balance")
    assert balance["balance"] == 20 and profile["orders"] == 2
    transitions = await shop.pipeline.get(shop.client, "stage-engine", f"/v1/customers/{user}/transitions")
    assert transitions[-1]["to_stage"] == "loyalty"


@pytest.mark.parametrize("sent", ["server_key", "write_key_with_user_hash"])
async def test_the_same_review_sent_verified_pays_the_stage_bonus(shop, sent):
    user = await shop.buyer()
    if sent == "server_key":
        await shop.from_server(review(user))
    else:
        await shop.from_browser(review(user, context={"userHash": shop.user_hash(user)}))
    await shop.stage(user, "loyalty")
    await shop.balance(user, 20 + BONUS)


async def test_a_wrong_user_hash_is_refused_naming_the_field(shop):
    user, other = await shop.buyer(orders=0), f"user-{uuid.uuid4().hex[:8]}"
    response = await shop.send(shop.write_key, review(user, context={"userHash": shop.user_hash(other)}))
    assert response.status_code == 403, response.text
    refused = response.json()["rejected"][0]
    assert refused["code"] == "identity_unverified"
    assert [e["field"] for e in refused["errors"]] == ["context.userHash"]


async def test_an_identify_from_the_write_key_does_not_re_point_a_customers_email(shop):
    mail = shop.pipeline.mail
    owner, attacker = f"ann-{uuid.uuid4().hex[:8]}@example.com", f"mallory-{uuid.uuid4().hex[:8]}@example.com"
    user = await shop.buyer(orders=0, email=owner)
    await eventually(lambda: _mails(mail.to(owner), 1), what="the welcome to the owner")
    # Any browser holding the write key names the customer and gives its own address...
    await shop.from_browser(make_touchpoint(type="identify", event=None, userId=user, traits={"email": attacker}))
    # ...and the customer's next email (their order's thank-you, with their name) still goes to them.
    await shop.from_server(make_touchpoint(event="Order Completed", userId=user, anonymousId=None,
                                           properties={"order_id": f"{user}-o1", "revenue": 30}))
    thanks = await eventually(lambda: _mails(_sent(mail, owner, "thank_you_feedback"), 1),
                              what="the thank-you to the owner")
    assert "Ann" in thanks[0]["Subject"]
    assert mail.to(attacker) == []
    profile = await shop.pipeline.get(shop.client, "stage-engine", f"/v1/customers/{user}")
    assert profile["traits"]["email"] == owner


async def test_a_verified_identify_from_the_browser_changes_the_customers_email(shop):
    mail = shop.pipeline.mail
    old, new = f"old-{uuid.uuid4().hex[:8]}@example.com", f"new-{uuid.uuid4().hex[:8]}@example.com"
    user = await shop.buyer(orders=1, email=old)
    await eventually(lambda: _mails(_sent(mail, old, "thank_you_feedback"), 1),
                     what="the thank-you to the old address")
    # The signed-in shopper changes their address on the page, which carries the hash the server made.
    await shop.from_browser(make_touchpoint(type="identify", event=None, userId=user, anonymousId=None,
                                            traits={"email": new}, context={"userHash": shop.user_hash(user)}))

    async def changed():
        profile = await shop.pipeline.get(shop.client, "stage-engine", f"/v1/customers/{user}")
        return profile if profile and profile["traits"].get("email") == new else None

    await eventually(changed, what="the new address on the profile")
    await shop.from_server(make_touchpoint(event="Order Completed", userId=user, anonymousId=None,
                                           properties={"order_id": f"{user}-o2", "revenue": 30}))
    offers = await eventually(lambda: _mails(_sent(mail, new, "retention_offer"), 1),
                              what="the retention offer at the new address")
    assert len(offers) == 1
    assert _sent(mail, old, "retention_offer") == []


async def _above(value, threshold: float) -> bool:
    return await value > threshold


def _sent(mail, address: str, template: str) -> list:
    return [m for m in mail.to(address) if m["X-Lifecycle-Template"] == template]


async def _mails(found: list, count: int):
    return found if len(found) >= count else None
