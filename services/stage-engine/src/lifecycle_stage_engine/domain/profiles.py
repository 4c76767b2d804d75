"""A customer profile as the stage engine holds it in memory while applying a batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lifecycle_shared.trust import contact_changes_allowed

from lifecycle_stage_engine.domain.timeline import State

# A profile keeps short scalar traits only: they travel in every stage transition it emits.
TRAIT_KEYS = ("email", "firstName", "lastName", "name", "phone", "locale", "timezone")
MAX_TRAIT_CHARS = 500


@dataclass
class Profile:
    id: str
    customer_id: str  # the userId once known, else the first anonymousId
    user_id: str | None
    state: State
    traits: dict[str, Any]
    first_seen_at: datetime
    last_seen_at: datetime
    anonymous_ids: list[str] = field(default_factory=list)
    # How the customer first arrived: {"channel": ..., "source": ...} of their earliest touchpoint.
    acquisition: dict[str, str] = field(default_factory=dict)
    acquired_at: datetime | None = None
    previous_stage: str | None = None
    merges: int = 0  # profiles merged into this one
    outdated: bool = False  # stored in an older shape: rebuild from the event log

    def seen(self, at: datetime, traits: dict[str, Any], acquisition: dict[str, str], *,
             verified: bool = False) -> None:
        """Fold what any touchpoint tells regardless of order: times, traits, first arrival. An unverified
        touchpoint does not replace a known user's contact traits (`lifecycle_shared.trust`)."""
        if traits:
            told = contact_changes_allowed(self.traits, traits, verified=verified, known_user=self.user_id is not None)
            self.traits = {**self.traits, **told}
        if at > self.last_seen_at:
            self.last_seen_at = at
        if at < self.first_seen_at:
            self.first_seen_at = at
        if acquisition and (self.acquired_at is None or at < self.acquired_at):
            self.acquisition, self.acquired_at = acquisition, at


def traits_of(all_traits: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """The person's traits worth keeping on the profile (short scalars of known keys)."""
    found = {key: all_traits[key] for key in TRAIT_KEYS if key in all_traits and _keepable(all_traits[key])}
    for key in ("locale", "timezone"):
        if key not in found and _keepable(context.get(key)) and isinstance(context.get(key), str):
            found[key] = context[key]
    return found


def _keepable(value: Any) -> bool:
    return (isinstance(value, str) and 0 < len(value) <= MAX_TRAIT_CHARS
            or isinstance(value, int | float) and not isinstance(value, bool))


def acquisition_of(context: dict[str, Any]) -> dict[str, str]:
    """Channel and source from the touchpoint's campaign (UTM) or referrer, if it has either."""
    campaign = context.get("campaign")
    found: dict[str, str] = {}
    if isinstance(campaign, dict):
        for key, name in (("medium", "channel"), ("source", "source")):
            value = campaign.get(key)
            if isinstance(value, str) and 0 < len(value) <= 100:
                found[name] = value
    if not found:
        referrer = context.get("referrer")
        url = referrer.get("url") if isinstance(referrer, dict) else None
        if isinstance(url, str) and "://" in url:
            host = url.split("://", 1)[1].split("/", 1)[0][:100]
            if host:
                found = {"channel": "referral", "source": host}
    return found
