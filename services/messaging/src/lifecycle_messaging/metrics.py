"""Messaging's own Prometheus metrics (served at `/metrics` with the shared ones)."""

from __future__ import annotations

from prometheus_client import Counter

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
