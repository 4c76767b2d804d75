"""Tables of the messaging database."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

metadata = MetaData()

# Every message, whatever became of it. status: awaiting_contact | queued | sent | failed | superseded
# (a waiting message that another key of the same person already had sent or queued: kept, never sent)
# | suppressed (not sent, for `suppressed_reason`: one of `domain.suppression.REASONS`, e.g. `superseded`
# by a later transition of the customer, or `stale`). `event_time`/`processed_at` place the message's
# transition in its customer's history (NULL on messages from before they were kept: never judged).
# A queued message is claimed for sending with a lease (`next_attempt_at` moved ahead and
# `attempts` counted at claim time), so a worker that dies mid-send cannot retry it forever.
messages = Table(
    "messages",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),  # derived: customer + campaign + cause
    Column("seq", BigInteger, Identity(), nullable=False, unique=True),
    Column("customer_id", Text, nullable=False),
    Column("linked_ids", ARRAY(Text), nullable=False, server_default="{}"),
    Column("user_id", Text),  # the known user the transition was for; None while anonymous
    Column("template", Text, nullable=False),
    Column("stage", Text, nullable=False),
    Column("cause_event_id", Text, nullable=False),
    Column("channel", Text, nullable=False, server_default="email"),
    Column("recipient", Text),
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True)),
    Column("event_time", DateTime(timezone=True)),
    Column("processed_at", DateTime(timezone=True)),
    Column("suppressed_reason", Text),
    # The rendered parts besides subject and text (`body`); NULL on rows from before they were columns
    # (html NULL: sent as text only). `unsubscribe_url`: the signed link a marketing message carries in its
    # body and its List-Unsubscribe header (`domain.unsubscribe`); NULL for transactional mail.
    Column("html", Text),
    Column("locale", Text),
    Column("preheader", Text),
    Column("from_name", Text),
    Column("unsubscribe_url", Text),
    # The gateway (`gateway.py`, docs/messaging.md "The gateway"): the customer's `timezone` trait as the
    # transition carried it (NULL: the shop's zone); when the message first came due (set when queued, moved
    # to its first hold); the opening quiet hours or caps last held it until; the service clock's instant
    # of the send (what the caps count; `sent_at` is the database's).
    Column("timezone", Text),
    Column("due_at", DateTime(timezone=True)),
    Column("held_until", DateTime(timezone=True)),
    Column("sent_clock_at", DateTime(timezone=True)),
    # Campaigns (`domain.campaigns`, docs/messaging.md "Campaigns"): the campaign id and the version that made the
    # message (rows from before campaigns were data: the template, version NULL); what started it (`stage_changed`,
    # `touchpoint`, `loyalty`; NULL: a transition); the end of its delay (NULL: none), before which it is not
    # sent; the service clock's instant the gateway let it go to the SMTP server (an attempt under way counts
    # towards the caps: `db.gateway.sent_since`), cleared when the attempt fails.
    Column("campaign", Text, nullable=False),
    Column("campaign_version", Integer),
    Column("trigger", Text),
    Column("not_before", DateTime(timezone=True)),
    Column("allotted_at", DateTime(timezone=True)),
    CheckConstraint("(status = 'suppressed') = (suppressed_reason IS NOT NULL)", name="messages_suppressed_reason"),
    # The idempotency key: never the same campaign's message twice for the same cause.
    UniqueConstraint("customer_id", "campaign", "cause_event_id", name="messages_idempotency"),
    Index("messages_customer", "customer_id", "seq"),
    Index("messages_queued", "seq", postgresql_where="status = 'queued'"),
    Index("messages_awaiting_linked_ids", "linked_ids", postgresql_using="gin",
          postgresql_where="status = 'awaiting_contact'"),
    Index("messages_pending_customer", "customer_id", postgresql_where="status IN ('queued', 'awaiting_contact')"),
    Index("messages_sent_customer", "customer_id", "sent_clock_at", postgresql_where="status = 'sent'"),
)

# The address each customer id is known to have, from sign-ups, identifies and transitions, so a
# message waiting for an address finds it whichever of the two arrives first.
contacts = Table(
    "contacts",
    metadata,
    Column("customer_id", Text, primary_key=True),
    Column("email", Text, nullable=False),
    # Every id the address came with (a sign-up's userId and anonymousId): a message queued with
    # it is linked to them all, so the customer finds it under any of them.
    Column("linked_ids", ARRAY(Text), nullable=False, server_default="{}"),
    Column("user_id", Text),  # whose address it is, when the event that gave it named a user
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("contacts_updated_at", "updated_at"),
)

# Which known user an anonymous id belongs to. A shared device's anonymousId is claimed once: the
# stage engine's transitions say whose it is (and override), a sign-up claims it if no one has.
# A waiting message goes only to an address of the same owner, never to the next person on the device.
claims = Table(
    "claims",
    metadata,
    Column("anonymous_id", Text, primary_key=True),
    Column("user_id", Text, nullable=False),
)

# Customer keys that identity merges folded into another (`identity.merged`): a transition of an
# absorbed key that arrives after its merge goes straight to the survivor, as if it had been moved.
# `user_id` is the known user the survivor is, if any: an alias never hands one known user's
# messages to another (see `domain.people`).
aliases = Table(
    "aliases",
    metadata,
    Column("absorbed_id", Text, primary_key=True),
    Column("survivor_id", Text, nullable=False),
    Column("user_id", Text),
    Column("merged_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("aliases_survivor", "survivor_id"),
)

# Each customer's latest transition messaging has seen (`domain.suppression`), by the key its messages
# are kept under (after alias resolution; a merge hands the absorbed keys' latest to the survivor): a
# message about an older transition is suppressed as superseded instead of sent.
latest_transitions = Table(
    "latest_transitions",
    metadata,
    Column("customer_id", Text, primary_key=True),
    Column("transition_id", Text, nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False),
    # The customer's profile as that transition told it: what campaigns' audience conditions read
    # (`domain.audience.Profile`). NULL on rows from before they were kept.
    Column("to_stage", Text),
    Column("traits", JSONB),
    Column("orders", Integer),
    Column("revenue", Float),
)
# Webhook endpoints a marketing tool registered (admin API), and one delivery per (endpoint, event).
# status: active | paused (deliveries queue, none is sent) | disabled (410, or failing for 5 days; nothing
# queues). `secret` signs (it has to be kept as is: an HMAC key); during a rotation `previous_secret`
# signs too until `previous_secret_until`. `lease_until`: the worker holding the endpoint's queue, and when
# it last let go of it (the least recently served endpoint is taken first).
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", Text, primary_key=True),
    Column("url", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("event_types", ARRAY(Text), nullable=False),
    Column("stages", ARRAY(Text)),  # filter on lifecycle.stage_changed's to_stage; NULL: every stage
    Column("status", Text, nullable=False, server_default="active"),
    Column("disabled_reason", Text),
    Column("secret", Text, nullable=False),
    Column("previous_secret", Text),
    Column("previous_secret_until", DateTime(timezone=True)),
    Column("failing_since", DateTime(timezone=True)),  # first failure of the current run of failures
    Column("lease_until", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# status: pending (due at next_attempt_at; a claimed one is leased by moving it ahead) | delivered | failed
# (the schedule ran out, or the endpoint answered 410). `webhook_id` is derived from (endpoint, event).
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("webhook_id", Text, nullable=False, unique=True),
    Column("endpoint_id", Text, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("last_status_code", Integer),
    Column("last_latency_ms", Integer),
    Column("last_error", Text),
    Column("delivered_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("endpoint_id", "event_id", name="webhook_deliveries_once"),
    Index("webhook_deliveries_due", "endpoint_id", "next_attempt_at", postgresql_where="status = 'pending'"),
    Index("webhook_deliveries_log", "endpoint_id", "id"),
)

# How far each `message.*` webhook event type has been announced (named by the type: the `sent_at` or
# `status_changed_at` of the last message read).
webhook_cursors = Table(
    "webhook_cursors",
    metadata,
    Column("name", Text, primary_key=True),
    Column("position", DateTime(timezone=True), nullable=False),
)
# The sent messages by time, for `message.sent` webhooks.
Index("messages_sent_at", messages.c.sent_at, postgresql_where=messages.c.sent_at.is_not(None))

# Consent per address, channel and purpose (`domain.consent`): the current state. An address with no
# row has told nothing (soft opt-in unless `require_opt_in`).
consents = Table(
    "consents",
    metadata,
    Column("address", Text, primary_key=True),  # normalised (`domain.addresses.valid_address`)
    Column("channel", Text, primary_key=True),
    Column("purpose", Text, primary_key=True),
    Column("state", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("state IN ('subscribed', 'unsubscribed', 'bounced', 'complained', 'blocked')",
                    name="consents_state"),
    CheckConstraint("purpose IN ('marketing', 'transactional')", name="consents_purpose"),
)

# Every change of consent, append-only: what it became (and was), from which source (link, api,
# touchpoint, provider), with what reference (the message id of a link, the event id of a touchpoint,
# the provider's message id) and when (the service's clock).
consent_changes = Table(
    "consent_changes",
    metadata,
    Column("seq", BigInteger, Identity(), primary_key=True),
    Column("address", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("previous_state", Text),
    Column("source", Text, nullable=False),
    Column("reference", Text),
    Column("customer_id", Text),
    Column("at", DateTime(timezone=True), nullable=False),
    CheckConstraint("state IN ('subscribed', 'unsubscribed', 'bounced', 'complained', 'blocked')",
                    name="consent_changes_state"),
    CheckConstraint("source IN ('link', 'api', 'touchpoint', 'provider')", name="consent_changes_source"),
    Index("consent_changes_address", "address", "seq"),
)
# The changes to unsubscribed by time, for `message.unsubscribed` webhooks.
Index("consent_changes_unsubscribed_at", consent_changes.c.at, consent_changes.c.seq,
      postgresql_where=(consent_changes.c.state == "unsubscribed") & (consent_changes.c.purpose == "marketing"))

# When a message last changed status (stamped when the row is made and when it is suppressed or failed;
# NULL on rows from before it was kept), and the failed and suppressed messages by it: `message.failed`,
# `message.suppressed` webhooks.
messages.append_column(Column("status_changed_at", DateTime(timezone=True), server_default=func.now()))
Index("messages_status_changed_at", messages.c.status, messages.c.status_changed_at,
      postgresql_where=messages.c.status.in_(("failed", "suppressed")))

# Holdout assignments (`domain.holdout`), append-only: the first assignment of a person to a campaign's group
# stands (`campaign`: the campaign id, as `messages.campaign`). `person` is the message's customer key; a merge moves
# the absorbed keys' assignments to the survivor, whose own stand.
holdout_assignments = Table(
    "holdout_assignments",
    metadata,
    Column("campaign", Text, primary_key=True),
    Column("person", Text, primary_key=True),
    Column("group", Text, nullable=False),
    Column("assigned_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("\"group\" IN ('holdout', 'treatment')", name="holdout_assignments_group"),
)

# Orders and refunds, for campaign lift only (`db/lift.py`): no personal data - the order id, the customer key
# the event named (resolved through `aliases` when it is read, so merges are followed), the event's time and
# the order's value. The first `Order Completed` of an order stands; a refund is kept once per event, its
# amount NULL when it refunds the whole order.
orders = Table(
    "orders",
    metadata,
    Column("order_id", Text, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("ordered_at", DateTime(timezone=True), nullable=False),
    Column("revenue", Numeric, nullable=False),
    Column("event_id", Text, nullable=False),
    Index("orders_customer", "customer_id", "ordered_at"),
)
order_refunds = Table(
    "order_refunds",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("order_id", Text, nullable=False),
    Column("amount", Numeric),
    Column("refunded_at", DateTime(timezone=True), nullable=False),
    Index("order_refunds_order", "order_id"),
)

# Campaigns (`domain.campaigns`): one row per campaign (its current version; `deleted_at` once deleted - its
# versions stay, messages name them) and every version, immutable (`definition`: a `CampaignSpec` as JSON).
# `origin`: `shipped` (seeded from campaigns/default.yaml) or `api`.
campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Text, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("origin", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("deleted_at", DateTime(timezone=True)),
    CheckConstraint("origin IN ('shipped', 'api')", name="campaigns_origin"),
)
campaign_versions = Table(
    "campaign_versions",
    metadata,
    Column("campaign_id", Text, ForeignKey("campaigns.id"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("definition", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# When each customer (by message key) last did each track event a campaign's `cancelled_by` names (the event's
# time): a waiting message whose cause is older is cancelled (`campaigning.py`).
last_events = Table(
    "last_events",
    metadata,
    Column("customer_id", Text, primary_key=True),
    Column("event_type", Text, primary_key=True),
    Column("last_at", DateTime(timezone=True), nullable=False),
)
