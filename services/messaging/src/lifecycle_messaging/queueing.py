"""Queueing campaigns' messages, whatever started them (a stage transition, a touchpoint, a loyalty event).

Each message is one campaign's (its id and version recorded), about one cause (the event that started it),
for one customer key: the key the stage engine gave the customer - or, once merged into another, the survivor
(`Addressee`). Its id derives from (the cause's own customer key, campaign, cause), so it is the same whatever
arrived first and a redelivered cause adds nothing (`messages_idempotency`). It is rendered now, in the
customer's locale, and waits for an address when none is known (`awaiting_contact`).

Judged when queued (the delivery worker judges again when it is due):
- one person, one copy: a message from another key of a person that already has that campaign's message queued
  or sent is `superseded` (`domain.people`);
- a message about a transition that is not the customer's latest, or one too old to be news, is `suppressed`
  (`domain.suppression`; a delayed message is aged from the end of its delay);
- a campaign started by a touchpoint or a loyalty event waits once per customer: while one of its messages
  waits for them (queued, or waiting for an address) and is still news, another trigger adds nothing (counted,
  `lifecycle_messaging_campaign_triggers_skipped_total`) - five `Product Added` make one cart reminder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from lifecycle_shared.events import derived_event_id
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.campaignbook import CampaignBook
from lifecycle_messaging.consenting import Links
from lifecycle_messaging.db import contacts
from lifecycle_messaging.db import repository as repo
from lifecycle_messaging.domain.campaigns import Campaign
from lifecycle_messaging.domain.local_time import UTC_ZONE
from lifecycle_messaging.domain.people import Alias, follows, person_of, repeats
from lifecycle_messaging.domain.suppression import STAGE_TRIGGER, SUPPRESSED, Position, suppression
from lifecycle_messaging.domain.templates import render
from lifecycle_messaging.metrics import TRIGGERS_SKIPPED, suppressed
from lifecycle_messaging.suppressing import Freshness


@dataclass(frozen=True)
class Addressee:
    """Whom a message is for: under which key, which user, linked to which ids, and its owner (the known
    user it belongs to, see `db.contacts`)."""

    customer_id: str
    user_id: str | None
    linked_ids: list[str]
    owner: str | None


@dataclass(frozen=True)
class Cause:
    """What started a campaign's message: the event (its id, the customer key it named, when it happened),
    what kind of trigger it was, the customer's stage and traits then, and values it knows better than the
    traits (a loyalty event's tier and points, a cart's product). `email`: an address the cause itself
    carries as the customer's own (a transition: the stage engine's view); never a touchpoint's."""

    event_id: str
    origin_id: str
    trigger: str
    event_time: datetime
    processed_at: datetime
    stage: str
    traits: Mapping[str, Any]
    values: Mapping[str, object] = field(default_factory=dict)
    email: str | None = None

    @property
    def position(self) -> Position:
        return Position(self.event_time, self.processed_at, self.event_id)


@dataclass(frozen=True)
class Planned:
    """A cause, whom it is for, and the campaigns it starts for them."""

    cause: Cause
    to: Addressee
    campaigns: Sequence[Campaign]


@dataclass(frozen=True)
class Rendering:
    """What rendering needs: the campaigns' templates, the brand, the shop's locale, the unsubscribe links, the
    shop's web address (the templates' `shop_url`, None: not set) and zone (the days a template writes)."""

    book: CampaignBook
    brand: str
    default_locale: str = "en"
    links: Links | None = None
    shop_url: str | None = None
    shop_zone: ZoneInfo = UTC_ZONE


def addressee(customer_id: str, user_id: str | None, linked_ids: list[str], *, owners: dict[str, str],
              aliases: dict[str, Alias]) -> Addressee:
    """The customer a cause names - or, for an anonymous key merged into another, the survivor."""
    linked = list(dict.fromkeys([customer_id, *linked_ids]))
    alias = aliases.get(customer_id)
    if alias is not None and user_id is None and follows(alias, owner=contacts.message_owner(None, linked, owners)):
        customer_id, user_id, linked = alias.survivor_id, alias.user_id, [alias.survivor_id, *linked]
    linked = list(dict.fromkeys(linked))
    return Addressee(customer_id, user_id, linked, contacts.message_owner(user_id, linked, owners))


def address_of(to: Addressee, cause: Cause, *, known: dict[str, contacts.Contact],
               learned: dict[str, contacts.Contact]) -> tuple[str | None, list[str]]:
    """The address to send to, if known, and the ids the message is linked to with it. An address the cause
    carries (a transition's: the stage engine's own view of this customer's) is theirs, and remembered."""
    if cause.email:
        contact = contacts.Contact(email=cause.email, linked_ids=to.linked_ids, user_id=to.owner)
        learned.update(dict.fromkeys(to.linked_ids, contact))
        known.update(dict.fromkeys(to.linked_ids, contact))
        return cause.email, to.linked_ids
    remembered = next((known[i] for i in to.linked_ids if i in known and known[i].user_id == to.owner), None)
    if remembered is None:
        return None, to.linked_ids
    return remembered.email, list(dict.fromkeys([*to.linked_ids, *remembered.linked_ids]))


def zone_trait(trait: object) -> str | None:
    """The `timezone` trait as kept on the message (the gateway resolves it, `domain.local_time`)."""
    return (trait.strip()[:64] or None) if isinstance(trait, str) else None


def _later(at: datetime, delay: timedelta) -> datetime:
    """`at` + `delay`, or the last representable instant (a cause dated near year 9999 is accepted upstream)."""
    try:
        return at + delay
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC)


def message_row(cause: Cause, campaign: Campaign, to: Addressee, *, email: str | None, rendering: Rendering,
                now: datetime) -> dict[str, Any]:
    """A campaign's message about `cause` for `to`, rendered, as a row of `messages`."""
    # The id follows the cause's own key, not where the message ends up: the same whatever came first.
    message_id = derived_event_id(cause.origin_id, campaign.id, cause.event_id)
    # A marketing message's signed unsubscribe link, in its body and (delivery) its List-Unsubscribe header.
    unsubscribe_url = rendering.links.for_template(campaign.template, message_id) if rendering.links else None
    rendered = render(campaign.template, traits=cause.traits, brand=rendering.brand,
                      catalogue=rendering.book.catalogue(campaign), stage=cause.stage or None,
                      default_locale=rendering.default_locale, unsubscribe_url=unsubscribe_url, values=cause.values,
                      shop_url=rendering.shop_url, shop_zone=rendering.shop_zone)
    not_before = _later(cause.event_time, campaign.delay) if campaign.delay else None
    due = max(now, not_before) if not_before else now  # when it comes due: the gateway's waits count from here
    return {"id": message_id, "unsubscribe_url": unsubscribe_url, "customer_id": to.customer_id,
            "linked_ids": to.linked_ids, "user_id": to.user_id, "template": campaign.template,
            "campaign": campaign.id, "campaign_version": campaign.version, "trigger": cause.trigger,
            "stage": cause.stage, "cause_event_id": cause.event_id, "recipient": email,
            "subject": rendered.subject, **rendered.columns(), "status": "queued" if email else "awaiting_contact",
            "suppressed_reason": None, "event_time": cause.event_time, "processed_at": cause.processed_at,
            "timezone": zone_trait(cause.traits.get("timezone")), "due_at": due, "not_before": not_before}


async def queue(conn: AsyncConnection, planned: Sequence[Planned], *, known: dict[str, contacts.Contact],
                seen: Mapping[str, Position], freshness: Freshness, rendering: Rendering) -> None:
    """Queue (or record superseded / suppressed) each planned campaign message, with a handful of statements.
    `seen`: each customer's latest transition once the batch is counted."""
    persons = sorted({person_of(p.to.customer_id, owner=p.to.owner) for p in planned})
    now = freshness.clock()
    delivered, waiting = await repo.campaigns_delivered_and_waiting(
        conn, persons, sorted({p.to.customer_id for p in planned if p.cause.trigger != STAGE_TRIGGER}),
        due_since=now - freshness.window)
    learned: dict[str, contacts.Contact] = {}
    rows: list[dict[str, Any]] = []
    for cause, to, campaigns in ((p.cause, p.to, p.campaigns) for p in planned):
        email, linked_ids = address_of(to, cause, known=known, learned=learned)
        for campaign in campaigns:
            once = cause.trigger != STAGE_TRIGGER
            if once and campaign.id in waiting.get(to.customer_id, set()):
                TRIGGERS_SKIPPED.labels("waiting").inc()
                continue
            row = message_row(cause, campaign, Addressee(to.customer_id, to.user_id, linked_ids, to.owner),
                              email=email, rendering=rendering, now=now)
            person = person_of(to.customer_id, owner=to.owner)
            latest = seen.get(to.customer_id) if cause.trigger == STAGE_TRIGGER else None
            if repeats(campaign.id, origin_id=cause.origin_id, person=person, delivered=delivered):
                row.update(status="superseded", recipient=None)
            elif reason := suppression(cause.position, latest=latest, now=now - campaign.delay,
                                       freshness=freshness.window):
                row.update(status=SUPPRESSED, suppressed_reason=reason)
                suppressed(row["id"], campaign.template, reason, campaign=campaign.id)
            else:
                if row["status"] == "queued":
                    delivered.setdefault(person, set()).add(campaign.id)
                if once:
                    waiting.setdefault(to.customer_id, set()).add(campaign.id)
            rows.append(row)
    await contacts.remember(conn, learned)
    await repo.add_messages(conn, rows)
    await repo.due_at_their_delay(conn, [row["id"] for row in rows if row["not_before"] and row["status"] == "queued"])
    await contacts.release(conn, list(learned.values()))
