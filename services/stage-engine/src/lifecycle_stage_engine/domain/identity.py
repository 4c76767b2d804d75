"""Identity resolution, in memory, for one batch: which profile a touchpoint belongs to.

Segment semantics: `anonymousId` before sign-up, `userId` after; an event carrying both (or an
`alias`) links them, and an anonymous-only profile is merged into the identified one. Where the
rules enable it, traits such as email are ids too (an anonymous profile that gives a known
customer's email joins them). Guardrails: junk ids are no ids; a profile that already has another
userId is never merged (a shared device never joins two known users); a profile absorbs at most
`max_merges` others and links at most `max_anonymous_ids` anonymous ids.
An id value is one customer key however it arrived: a userId first seen as an anonymousId (a
storefront that uses its own customer number for both) resolves to that profile, and so does an
anonymousId equal to a known userId.

The graph starts from the profiles loaded (and locked) for the batch's ids and records what it
decides - new profiles, links, merges, customer-key changes - for the batch to write.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from lifecycle_shared.events import TouchpointData
from lifecycle_shared.identity import is_junk_id

from lifecycle_stage_engine.domain.profiles import Profile
from lifecycle_stage_engine.domain.rules import IdentityRules
from lifecycle_stage_engine.domain.timeline import State

IdKey = tuple[str, str]  # (kind, value): kind is 'user', 'anonymous' or a trait name ('email')


def ids_of(touchpoint: TouchpointData, rules: IdentityRules) -> list[IdKey]:
    ids = []
    if touchpoint.userId and not is_junk_id(touchpoint.userId):
        ids.append(("user", touchpoint.userId))
    for value in (touchpoint.anonymousId, touchpoint.previousId if touchpoint.type == "alias" else None):
        if value and not is_junk_id(value):
            ids.append(("anonymous", value))
    if rules.trait_ids:
        traits = touchpoint.all_traits()
        for name in rules.trait_ids:
            value = traits.get(name)
            if isinstance(value, str) and 3 <= len(value) <= 320 and not is_junk_id(value):
                ids.append((name, value.strip().lower()))
    return ids


def twin(key: IdKey) -> IdKey | None:
    """The same value as the other kind of customer id (trait ids have none)."""
    return {"user": ("anonymous", key[1]), "anonymous": ("user", key[1])}.get(key[0])


@dataclass(frozen=True)
class KeyMove:
    """Ids that now belong to another customer key: a merge of two profiles (`absorbed` set), or an
    anonymous profile identifying (its key changes from its anonymousId to the userId)."""

    survivor: str  # profile id
    absorbed: str | None  # profile id merged away, None for a key change
    absorbed_key: str
    absorbed_ids: tuple[str, ...]
    reason: str  # identify | alias | link
    cause_event_id: str
    time: datetime


@dataclass
class IdentityGraph:
    profiles: dict[str, Profile]
    owner: dict[IdKey, str]
    rules: IdentityRules
    created: list[Profile] = field(default_factory=list)
    links: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, value, profile id)
    moves: list[KeyMove] = field(default_factory=list)
    merged_into: dict[str, str] = field(default_factory=dict)  # absorbed profile id -> survivor id

    def survivor(self, profile_id: str) -> str:
        while profile_id in self.merged_into:
            profile_id = self.merged_into[profile_id]
        return profile_id

    def resolve(self, touchpoint: TouchpointData, *, event_id: str) -> Profile | None:
        """The profile the touchpoint belongs to (None: it carries no usable id)."""
        ids = ids_of(touchpoint, self.rules)
        if not ids:
            return None
        user_id = ids[0][1] if ids[0][0] == "user" else None
        target = self._owned(("user", user_id)) if user_id else None
        if user_id and target is None:
            first_seen_anonymous = self._owned(("anonymous", user_id))
            if first_seen_anonymous is not None and first_seen_anonymous.user_id in (None, user_id):
                target = first_seen_anonymous
        others: dict[str, Profile] = {}
        for key in ids[1 if user_id else 0:]:
            found = self._owned(key)
            if found is None and not user_id and key[0] == "anonymous":  # an anonymousId equal to a known userId
                found = self._owned(twin(key))
            if found is not None:
                others[found.id] = found
        if target is None and not user_id:  # a known customer's id (or email) wins over anonymous ones
            known = [p for p in others.values() if p.user_id]
            # Ids of two known customers (a shared device, a shared email): the first id's owner.
            target = known[0] if len(known) == 1 else self._owned(ids[0]) if known else None
        if target is None:
            target = next((p for p in others.values() if p.user_id in (None, user_id)), None)
        if target is None:
            target = self._create(customer_id=user_id or ids[0][1], user_id=user_id, at=touchpoint.timestamp)
        reason = "alias" if touchpoint.type == "alias" else "identify"
        for other in others.values():
            if (other.id != target.id and other.user_id is None
                    and target.merges + 1 + other.merges <= self.rules.max_merges):
                self._merge(other, into=target, reason=reason, event_id=event_id, at=touchpoint.timestamp)
        if user_id and target.user_id is None:
            if target.customer_id != user_id:
                self.moves.append(KeyMove(survivor=target.id, absorbed=None, absorbed_key=target.customer_id,
                                          absorbed_ids=tuple(dict.fromkeys([target.customer_id,
                                                                            *target.anonymous_ids])),
                                          reason=reason,
                                          cause_event_id=event_id, time=touchpoint.timestamp))
            target.user_id = target.customer_id = user_id
        self._link(target, [key for key in ids if key not in self.owner], event_id=event_id, at=touchpoint.timestamp)
        return target

    def _owned(self, key: IdKey | None) -> Profile | None:
        owner = self.owner.get(key) if key else None
        return None if owner is None else self.profiles[self.survivor(owner)]

    def _create(self, *, customer_id: str, user_id: str | None, at: datetime) -> Profile:
        profile = Profile(id=str(uuid.uuid4()), customer_id=customer_id, user_id=user_id, state=State(), traits={},
                          first_seen_at=at, last_seen_at=at)
        self.profiles[profile.id] = profile
        self.created.append(profile)
        return profile

    def _merge(self, source: Profile, *, into: Profile, reason: str, event_id: str, at: datetime) -> None:
        self.merged_into[source.id] = into.id
        self.moves.append(KeyMove(survivor=into.id, absorbed=source.id, absorbed_key=source.customer_id,
                                  absorbed_ids=tuple(dict.fromkeys([source.customer_id, *source.anonymous_ids])),
                                  reason=reason, cause_event_id=event_id, time=at))
        into.seen(source.first_seen_at, {**source.traits, **into.traits}, {})
        if source.acquired_at is not None:
            into.seen(source.acquired_at, {}, source.acquisition)
        into.last_seen_at = max(into.last_seen_at, source.last_seen_at)
        into.anonymous_ids = sorted({*into.anonymous_ids, *source.anonymous_ids})
        into.merges += 1 + source.merges

    def _link(self, profile: Profile, new_ids: list[IdKey], *, event_id: str, at: datetime) -> None:
        """Link ids first seen now. An anonymous id joining a profile keyed otherwise (a known customer on a
        new device) is a key move too: another service may already hold state under it (an order of that
        device it applied before the stage engine saw the sign-in)."""
        for key in new_ids:
            if key[0] == "anonymous":
                if len(profile.anonymous_ids) >= self.rules.max_anonymous_ids:
                    continue
                profile.anonymous_ids = sorted({*profile.anonymous_ids, key[1]})
                if key[1] != profile.customer_id:
                    self.moves.append(KeyMove(survivor=profile.id, absorbed=None, absorbed_key=key[1],
                                              absorbed_ids=(key[1],), reason="link", cause_event_id=event_id, time=at))
            self.owner[key] = profile.id
            self.links.append((*key, profile.id))
