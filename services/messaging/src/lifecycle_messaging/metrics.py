"""Messaging's own Prometheus metrics (served at `/metrics` with the shared ones)."""

from __future__ import annotations

import logging

from prometheus_client import Counter

from lifecycle_messaging.domain.suppression import REASONS

log = logging.getLogger("lifecycle_messaging.suppression")

TRANSITIONS_UNMESSAGED = Counter(
    "lifecycle_messaging_transitions_unmessaged_total",
    "Stage transitions that queued no message on purpose, by reason (historical: caused by imported past events)",
    ["reason"],
)
CONTACT_CHANGES_REFUSED = Counter(
    "lifecycle_messaging_contact_changes_refused_total",
    "Touchpoints whose address replaced no known one on purpose, by reason (unverified: a write key's event "
    "without identity verification)",
    ["reason"],
)

MESSAGES_SENT = Counter("lifecycle_messaging_messages_sent_total", "Messages handed to the SMTP server")
MESSAGES_SENT.inc(0)  # the series exists from the start

MESSAGES_SUPPRESSED = Counter(
    "lifecycle_messaging_messages_suppressed_total",
    "Messages recorded as suppressed instead of sent, by reason (superseded: the customer has moved on; "
    "stale: older than the freshness window; consent: marketing to an address that does not allow it; holdout; "
    "frequency_cap; cancelled, audience, campaign_disabled: the campaign's conditions no longer held)",
    ["reason"],
)
for _reason in REASONS:  # every series exists from the start, at 0
    MESSAGES_SUPPRESSED.labels(_reason)


def suppressed(message_id: str, template: str, reason: str, *, campaign: str | None = None,
               detail: str | None = None) -> None:
    """Count and log a suppressed message: its id, template, campaign and reason (and what the reason is
    about, e.g. the event that cancelled it), nothing personal."""
    MESSAGES_SUPPRESSED.labels(reason).inc()
    extra = {"message_id": message_id, "template": template, "campaign": campaign or template, "reason": reason}
    log.info("message suppressed", extra=extra | ({"detail": detail} if detail else {}))


TRIGGERS_SKIPPED = Counter(
    "lifecycle_messaging_campaign_triggers_skipped_total",
    "Campaign triggers that queued nothing on purpose, by reason (waiting: a message of the campaign already "
    "waits for that customer)",
    ["reason"],
)

CONSENT_CHANGES = Counter(
    "lifecycle_messaging_consent_changes_total",
    "Consent changes recorded, by source (link, api, touchpoint, provider) and the state they set",
    ["source", "state"],
)
CONSENT_CHANGES_REFUSED = Counter(
    "lifecycle_messaging_consent_changes_refused_total",
    "Consent changes told that did not stand (domain.consent.change), by source and the state asked for",
    ["source", "state"],
)
CONSENT_UNRESOLVED = Counter(
    "lifecycle_messaging_consent_unresolved_total",
    "Touchpoints about consent naming no address messaging knows, by event type",
    ["event_type"],
)
ERASURE_MARKERS_LIFTED = Counter(
    "lifecycle_messaging_erasure_markers_lifted_total",
    "Erased addresses' suppression markers lifted by a new explicit opt-in (docs/erasure.md), by its source",
    ["source"],
)
