"""The suppression marker of an erased address (docs/erasure.md): its keyed hash, so an address erased once is
never mailed again, whatever id it comes back under, without messaging keeping the address; and the one thing that
lifts it, a new explicit opt-in. Pure."""

from __future__ import annotations

from datetime import datetime

from lifecycle_shared.erasure import id_hash

from lifecycle_messaging.domain.addresses import valid_address
from lifecycle_messaging.domain.consent import SUBSCRIBED


def address_marker(pepper: bytes, address: str) -> str:
    """HMAC-SHA256 of the normalised, lowercased address under the erasure pepper (hex)."""
    return id_hash(pepper, (valid_address(address) or address.strip()).lower())


def lifts_marker(told: str, *, explicit: bool, told_at: datetime, erased_at: datetime, standing: str | None) -> bool:
    """Whether a consent change `told` for an erased address lifts its marker: an explicit opt-in (`subscribed`
    from an operator through the API, or a verified `Subscribed` track; never an opt-in trait, which comes again with
    every identify, nor an unverified event anyone can send), made after the erasure (a replayed or late opt-in from
    before it does not), that leaves the address subscribed (`standing`: its consent after the change - not, say,
    blocked)."""
    return told == SUBSCRIBED and explicit and told_at > erased_at and standing == SUBSCRIBED
