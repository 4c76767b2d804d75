"""Identity resolution for one polled batch: find, create or merge the profile of a touchpoint.

Segment semantics: `anonymousId` before sign-up, `userId` after; an event carrying both (or an
`alias`) links them, and an anonymous-only profile is merged into the identified one. A profile
that already has a different userId is never merged (guardrail against shared devices).
An id value is one customer key however it arrived: a userId first seen as an anonymousId (a
storefront that uses its own customer number for both) resolves to that profile, and so does an
anonymousId equal to a known userId.
The graph is loaded once per batch and kept in step with every write it makes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from lifecycle_shared.events import TouchpointData
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_stage_engine.db import repository as repo
from lifecycle_stage_engine.db.repository import Profile

IdKey = tuple[str, str]  # ('user' | 'anonymous', value)


def ids_of(touchpoint: TouchpointData) -> list[IdKey]:
    ids = []
    if touchpoint.userId:
        ids.append(("user", touchpoint.userId))
    if touchpoint.anonymousId:
        ids.append(("anonymous", touchpoint.anonymousId))
    if touchpoint.type == "alias" and touchpoint.previousId:
        ids.append(("anonymous", touchpoint.previousId))
    return ids


def twin(key: IdKey) -> IdKey:
    """The same value as the other kind of id."""
    return ("anonymous" if key[0] == "user" else "user", key[1])


class IdentityGraph:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self.profiles: dict[str, Profile] = {}
        self._owner: dict[IdKey, str] = {}
        # Written by flush(), one statement each for the whole batch.
        self._created: list[Profile] = []
        self._links: list[tuple[str, str, str]] = []

    async def load(self, touchpoints: list[TouchpointData]) -> None:
        """One query for every id of the batch (rows locked), one for their anonymous ids."""
        keys = [key for touchpoint in touchpoints for key in ids_of(touchpoint)]
        ids = list(dict.fromkeys([*keys, *map(twin, keys)]))
        for key, profile in (await repo.profiles_for_ids(self._conn, ids=ids)).items():
            self.profiles.setdefault(profile.id, profile)
            self._owner[key] = profile.id
        anonymous = await repo.anonymous_ids_of(self._conn, profile_ids=list(self.profiles))
        for profile_id, values in anonymous.items():
            self.profiles[profile_id].anonymous_ids = sorted(values)

    async def resolve(self, touchpoint: TouchpointData, *,
                      before_merge: Callable[[], Awaitable[None]]) -> tuple[Profile, bool]:
        """The profile to apply the touchpoint to, and whether another was merged into it now."""
        ids, user_id = ids_of(touchpoint), touchpoint.userId
        user_profile = self._owned(("user", user_id)) if user_id else None
        if user_id and user_profile is None:
            first_seen_anonymous = self._owned(("anonymous", user_id))
            if first_seen_anonymous is not None and first_seen_anonymous.user_id in (None, user_id):
                user_profile = first_seen_anonymous
        anonymous: dict[str, Profile] = {}
        for key in ids:
            if key[0] != "anonymous":
                continue
            found = self._owned(key)
            if found is None and not user_id:  # an anonymousId equal to a known userId
                found = self._owned(twin(key))
            if found is not None:
                anonymous[found.id] = found
        target = user_profile or next(iter(anonymous.values()), None)
        if target is not None and touchpoint.userId and target.user_id not in (None, touchpoint.userId):
            target = None  # the anonymousId belongs to someone else: never merge two known users
        if target is None:
            target = self._create(touchpoint)
        merged = False
        for other in anonymous.values():
            if other.id != target.id and other.user_id is None:
                await before_merge()
                await self._merge(other, into=target)
                merged = True
        if touchpoint.userId and target.user_id is None:
            target.user_id = target.customer_id = touchpoint.userId
        self._link(target, [key for key in ids if key not in self._owner])
        return target, merged

    def _owned(self, key: IdKey) -> Profile | None:
        owner = self._owner.get(key)
        return None if owner is None else self.profiles[owner]

    async def flush(self) -> None:
        """Write the profiles and links this batch created."""
        await repo.insert_profiles(self._conn, self._created)
        await repo.link_identities(self._conn, self._links)
        self._created, self._links = [], []

    def _create(self, touchpoint: TouchpointData) -> Profile:
        profile = repo.new_profile(customer_id=touchpoint.userId or touchpoint.anonymousId or "",
                                   user_id=touchpoint.userId, seen_at=touchpoint.timestamp)
        self.profiles[profile.id] = profile
        self._created.append(profile)
        return profile

    async def _merge(self, source: Profile, *, into: Profile) -> None:
        await self.flush()
        await repo.merge_profile(self._conn, source_id=source.id, target_id=into.id)
        for key, owner in self._owner.items():
            if owner == source.id:
                self._owner[key] = into.id
        into.first_seen_at = min(into.first_seen_at, source.first_seen_at)
        into.traits = {**source.traits, **into.traits}
        into.anonymous_ids = sorted({*into.anonymous_ids, *source.anonymous_ids})
        del self.profiles[source.id]

    def _link(self, profile: Profile, new_ids: list[IdKey]) -> None:
        for key in new_ids:
            self._owner[key] = profile.id
            self._links.append((*key, profile.id))
        profile.anonymous_ids = sorted({*profile.anonymous_ids, *(v for k, v in new_ids if k == "anonymous")})
