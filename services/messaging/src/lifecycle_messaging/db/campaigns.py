"""The campaigns' SQL: seeding the shipped ones, versions (immutable), the current one of each, deleting.
Functions take the caller's connection and never commit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db.models import campaign_versions, campaigns
from lifecycle_messaging.domain.campaigns import Campaign, CampaignSpec

_CURRENT = (select(campaigns.c.id, campaigns.c.version, campaigns.c.origin, campaigns.c.created_at,
                   campaigns.c.updated_at, campaigns.c.deleted_at, campaign_versions.c.definition)
            .join(campaign_versions, (campaign_versions.c.campaign_id == campaigns.c.id)
                  & (campaign_versions.c.version == campaigns.c.version)))


def definition(spec: CampaignSpec) -> dict[str, Any]:
    """A spec as stored: every field, defaults included (so a version reads the same whatever defaults change)."""
    return spec.model_dump(mode="json")


def campaign_of(row: Any) -> Campaign:
    """A campaign's current version from a row of `current` / `one`."""
    return Campaign(row.id, row.version, CampaignSpec.model_validate(row.definition))


async def seed(conn: AsyncConnection, shipped: Iterable[Campaign]) -> list[str]:
    """Store each shipped campaign whose id the database has never had (as its version 1); the ids stored now.
    A campaign a shop changed, disabled or deleted stays as the shop left it."""
    wanted = {campaign.id: campaign for campaign in shipped}
    if not wanted:
        return []
    added = list((await conn.execute(
        insert(campaigns).values([{"id": i, "version": 1, "origin": "shipped"} for i in sorted(wanted)])
        .on_conflict_do_nothing(index_elements=["id"]).returning(campaigns.c.id))).scalars())
    if added:
        await conn.execute(insert(campaign_versions), [
            {"campaign_id": i, "version": 1, "definition": definition(wanted[i].spec)} for i in sorted(added)])
    return sorted(added)


async def current(conn: AsyncConnection, *, include_deleted: bool = False) -> list[Any]:
    """Every campaign with its current version's definition, by id."""
    query = _CURRENT if include_deleted else _CURRENT.where(campaigns.c.deleted_at.is_(None))
    return list((await conn.execute(query.order_by(campaigns.c.id))).all())


async def one(conn: AsyncConnection, campaign_id: str, *, lock: bool = False) -> Any | None:
    query = _CURRENT.where(campaigns.c.id == campaign_id)
    return (await conn.execute(query.with_for_update(of=campaigns) if lock else query)).first()


async def versions(conn: AsyncConnection, campaign_id: str) -> list[Any]:
    """Every version of a campaign, the first first."""
    return list((await conn.execute(select(campaign_versions).where(campaign_versions.c.campaign_id == campaign_id)
                                    .order_by(campaign_versions.c.version))).all())


async def versions_of(conn: AsyncConnection, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], Campaign]:
    """These (campaign, version) pairs, those that exist."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = await conn.execute(select(campaign_versions).where(
        tuple_(campaign_versions.c.campaign_id, campaign_versions.c.version).in_(wanted)))
    return {(row.campaign_id, row.version): Campaign(row.campaign_id, row.version,
                                                     CampaignSpec.model_validate(row.definition)) for row in rows}


async def create(conn: AsyncConnection, campaign_id: str, spec: CampaignSpec) -> Any | None:
    """A new campaign at version 1; None when the id exists (deleted ones included: ids are never reused)."""
    made = (await conn.execute(insert(campaigns).values(id=campaign_id, version=1, origin="api")
                               .on_conflict_do_nothing(index_elements=["id"]).returning(campaigns.c.id))).first()
    if made is None:
        return None
    await conn.execute(insert(campaign_versions).values(campaign_id=campaign_id, version=1,
                                                        definition=definition(spec)))
    return await one(conn, campaign_id)


async def add_version(conn: AsyncConnection, campaign_id: str, spec: CampaignSpec) -> Any | None:
    """The campaign's next version made current (a deleted campaign comes back); the same spec as the current
    version's, on a campaign not deleted, changes nothing. None when there is no such campaign."""
    row = await one(conn, campaign_id, lock=True)
    if row is None:
        return None
    if row.deleted_at is None and CampaignSpec.model_validate(row.definition) == spec:
        return row
    version = row.version + 1
    await conn.execute(insert(campaign_versions).values(campaign_id=campaign_id, version=version,
                                                        definition=definition(spec)))
    await conn.execute(update(campaigns).where(campaigns.c.id == campaign_id)
                       .values(version=version, updated_at=func.now(), deleted_at=None))
    return await one(conn, campaign_id)


async def delete(conn: AsyncConnection, campaign_id: str) -> bool:
    """Mark a campaign deleted (it starts nothing, its waiting messages are cancelled; its versions stay).
    False when there is no such campaign or it was deleted already."""
    return (await conn.execute(update(campaigns).where(campaigns.c.id == campaign_id, campaigns.c.deleted_at.is_(None))
                               .values(deleted_at=func.now(), updated_at=func.now()))).rowcount > 0
