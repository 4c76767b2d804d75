"""The campaigns in force, in memory: what the handlers start, what the delivery worker judges a waiting message
by, and which touchpoint types the consumer reads.

The shipped defaults (`campaigns/default.yaml`, read and checked once: a broken file stops the start) are the
book's first content and are seeded into the database at start (`start`): every id the database has never had,
as its version 1. From then on the database is the truth: the book is refreshed from it at start, after every
change through the admin API in this process, and every `campaigns_refresh_s` (a change made through another
instance reaches this one within that). Versions are immutable, so any version once read is kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from functools import cache
from importlib.resources import files
from typing import Any

import yaml
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lifecycle_messaging.catalogue import shipped
from lifecycle_messaging.db import campaigns as db
from lifecycle_messaging.domain.campaigns import Campaign, compiled_content, defaults, problems, touchpoint_types
from lifecycle_messaging.domain.templates import Catalogue

log = logging.getLogger(__name__)

DEFAULTS = files("lifecycle_messaging") / "campaigns" / "default.yaml"


@cache
def shipped_campaigns() -> tuple[Campaign, ...]:
    """The default campaigns, read and checked against the shipped templates."""
    campaigns = defaults(yaml.safe_load(DEFAULTS.read_text("utf-8")) or [])
    for campaign in campaigns:
        if found := problems(campaign.spec, templates=shipped()):
            raise ValueError(f"campaigns/default.yaml: {campaign.id}: {found[0][0]}: {found[0][1]}")
    return tuple(campaigns)


class CampaignBook:
    def __init__(self, campaigns: Iterable[Campaign] | None = None) -> None:
        self._current: dict[str, Campaign] = {}
        self._versions: dict[tuple[str, int], Campaign] = {}
        self._catalogues: dict[tuple[str, int], Catalogue] = {}
        self.touchpoint_types: frozenset[str] = frozenset()
        self.replace(shipped_campaigns() if campaigns is None else campaigns)

    def replace(self, campaigns: Iterable[Campaign]) -> None:
        """These are the campaigns in force now (deleted ones left out; disabled ones in, starting nothing)."""
        current = {campaign.id: campaign for campaign in campaigns}
        self._versions.update({(c.id, c.version): c for c in current.values()})
        self._current = current
        self.touchpoint_types = touchpoint_types(current.values())

    def current(self) -> list[Campaign]:
        return list(self._current.values())

    def get(self, campaign_id: str) -> Campaign | None:
        """The campaign's current version; None when it does not exist or was deleted."""
        return self._current.get(campaign_id)

    def made(self, campaign_id: str, version: int | None) -> Campaign | None:
        """The version a message records (one of a row without a version: the campaign's current one), if read."""
        if version is None:
            return self._current.get(campaign_id)
        return self._versions.get((campaign_id, version))

    async def load(self, conn: AsyncConnection, messages: Sequence[Any]) -> None:
        """Read the versions these message rows (campaign, campaign_version) record that the book has not yet."""
        missing = {(row.campaign, row.campaign_version) for row in messages
                   if row.campaign_version is not None and (row.campaign, row.campaign_version) not in self._versions}
        if missing:
            self._versions.update(await db.versions_of(conn, missing))

    def catalogue(self, campaign: Campaign) -> Catalogue:
        """The templates a campaign renders from: the shipped ones, its template's locales replaced by the
        campaign's own copy where it has some."""
        key = (campaign.id, campaign.version)
        if key not in self._catalogues:
            templates = shipped()
            own = compiled_content(campaign.spec)
            self._catalogues[key] = ({**templates, campaign.template: {**templates.get(campaign.template, {}), **own}}
                                     if own else templates)
        return self._catalogues[key]

    async def start(self, engine: AsyncEngine) -> None:
        """Seed the shipped campaigns the database has never had, then read the campaigns in force."""
        async with engine.begin() as conn:
            if added := await db.seed(conn, shipped_campaigns()):
                log.info("default campaigns seeded", extra={"campaigns": added})
        await self.refresh(engine)

    async def refresh(self, engine: AsyncEngine) -> None:
        async with engine.connect() as conn:
            await self.reload(conn)

    async def reload(self, conn: AsyncConnection) -> None:
        """The campaigns in force, as the database has them now."""
        self.replace(db.campaign_of(row) for row in await db.current(conn))

    async def poll(self, engine: AsyncEngine, *, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.refresh(engine)
            except Exception:  # the database is away: keep the campaigns we have, try again
                log.warning("could not read the campaigns in force", exc_info=True)
