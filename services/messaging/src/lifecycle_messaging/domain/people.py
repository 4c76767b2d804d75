"""Whose a message is once identities merge. Pure.

A message belongs to a customer key (the stage engine's key when the transition happened) and,
once known, to an owner: a known user (see `db.contacts`). When the stage engine merges a key into
another (`identity.merged`), that key's messages follow it to the survivor - unless they are a
known user's other than the survivor's: a merge never hands one known user's messages to another.

One person, one copy: a message that came from another key of a person (an anonymous profile,
later merged or claimed) is superseded, not sent, when the person was already sent or has queued
a message of the same campaign. A person's own transitions are the stage engine's to judge and always count.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

# Statuses that mean the person has, or is about to have, the message.
DELIVERED = ("queued", "sent")


@dataclass(frozen=True)
class Alias:
    """An absorbed key's survivor, and the known user the survivor is (if any)."""

    survivor_id: str
    user_id: str | None


def follows(alias: Alias | None, *, owner: str | None) -> bool:
    """Whether a message whose owner is `owner` follows its absorbed key to the survivor."""
    return alias is not None and (owner is None or owner == alias.user_id)


def person_of(customer_id: str, *, owner: str | None) -> str:
    """The key under which a person's own messages are kept: their user id once known."""
    return owner or customer_id


def repeats(campaign: str, *, origin_id: str, person: str, delivered: Mapping[str, Collection[str]]) -> bool:
    """A campaign's message from another key of `person` (origin_id, the key it was made for) when the person
    already has one of that campaign queued or sent: superseded."""
    return origin_id != person and campaign in delivered.get(person, ())
