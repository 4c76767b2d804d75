"""What an unverified event may establish about a person (README "What a browser may establish"). Pure.

A write key sits in every browser: an event sent with it says who it is about, and nothing proves it unless it
carries a valid identity-verification hash (ingest sets `TouchpointData.verified`). Such an event may tell what
nobody has told yet, but never replace a known customer's contact address: otherwise any browser could send a
customer's next email (their order, their name) to itself. Verified events (a server key, a valid hash) may.
"""

from __future__ import annotations

from typing import Any

# The traits that say where a person is reached.
CONTACT_TRAITS = ("email", "phone")


def may_set_contact(current: Any, new: Any, *, verified: bool) -> bool:
    """Whether an event may set a contact address to `new` where `current` is held: a verified one always, an
    unverified one only where none is held yet (or to what is held already)."""
    return verified or current is None or current == "" or current == new


def contact_changes_allowed(held: dict[str, Any], told: dict[str, Any], *, verified: bool,
                            known_user: bool) -> dict[str, Any]:
    """The traits `told` by an event about a profile holding `held`, without the contact traits it may not
    change: for a known user (a userId: someone an attacker can name), an unverified event sets none it would
    replace. An anonymous profile has no identity to protect: what its own browser tells it stands."""
    if verified or not known_user:
        return told
    return {key: value for key, value in told.items()
            if key not in CONTACT_TRAITS or may_set_contact(held.get(key), value, verified=False)}
