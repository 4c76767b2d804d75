"""Which group a person is in for a campaign: held out (never sent, the control) or treated. Pure.

Every campaign holds out a share of its eligible audience (`DEFAULT_SHARE`, configurable per campaign,
0 allowed). The assignment is a function of (campaign id, person key) only:

- SHA-256 of a length-prefixed encoding of the two (so ("ab", "c") and ("a", "bc") differ), its first
  53 bits read big-endian as an integer and divided by 2**53: a number `draw` uniform in [0, 1), exact
  as a float (64 bits divided by 2**64 would round the largest values up to 1.0);
- held out when `draw < share`. Share 0 holds nobody, share 1 holds everyone.

Why a hash and not a random draw: the same person is in the same group on every delivery, in every
process and on every machine, with nothing stored first (no seed, no clock, no `hash()` salted per
process). SHA-256 rather than a faster non-cryptographic hash: it is in the standard library, its output
is the same everywhere, and its bits are uniform and independent of the input's structure, so the
groups of two campaigns are independent of each other and of the person key's shape (sequential ids,
emails). The tests check the realised share against the binomial distribution and the correlation
between campaigns.

`draw < share` makes a change of share monotone: raising a campaign's share from 10% to 20% keeps the
first 10% held out and adds others; lowering it releases people, never swaps them.

The campaign id is the campaign's stable id, not its version: editing a campaign's copy must not
reshuffle its groups. The person key is whoever the message is for at the moment of the (would-be)
send. What this function returns is the first assignment; the recorded one (append-only, kept by the
survivor when identities merge) is authoritative from then on - the caller looks it up before asking.
"""

from __future__ import annotations

import hashlib
from typing import Literal

Group = Literal["holdout", "treatment"]
HOLDOUT: Group = "holdout"
TREATMENT: Group = "treatment"

DEFAULT_SHARE = 0.10
# A domain prefix: these draws are for holdouts and nothing else reuses them.
_SALT = b"lifecycle-holdout\x00"
_BITS = 53  # a double's mantissa: every draw k / 2**53 is exact and below 1


def _field(text: str) -> bytes:
    raw = text.encode("utf-8")
    return len(raw).to_bytes(4, "big") + raw


def draw(campaign_id: str, person: str) -> float:
    """The person's uniform number in [0, 1) for this campaign: the same everywhere, always."""
    digest = hashlib.sha256(_SALT + _field(campaign_id) + _field(person)).digest()
    return (int.from_bytes(digest[:8], "big") >> (64 - _BITS)) / 2.0**_BITS


def check_share(share: float) -> float:
    """`share` if it is a valid holdout share (a number in [0, 1]), else ValueError naming it."""
    if not 0.0 <= share <= 1.0:  # also rejects NaN
        raise ValueError(f"holdout share must be in [0, 1], got {share!r}")
    return share


def assign(campaign_id: str, person: str, share: float) -> Group:
    """`holdout` or `treatment` for this person in this campaign at this holdout share."""
    return HOLDOUT if draw(campaign_id, person) < check_share(share) else TREATMENT


def held_out(campaign_id: str, person: str, share: float) -> bool:
    """Whether the person is in the campaign's holdout (never sent; logged as suppressed, reason `holdout`)."""
    return assign(campaign_id, person, share) == HOLDOUT
