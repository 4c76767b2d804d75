"""The rule set in force: loaded at start, replaced through the admin API, the same in every instance.

Precedence: the `rules_file` setting (an operator's file, fixed for the process's life), else the
rule set last activated through `PUT /v1/admin/rules` (stored; every instance polls for a newer one),
else the documented defaults.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lifecycle_stage_engine.db import rule_sets
from lifecycle_stage_engine.domain.rules import DEFAULT_RULES, RuleSet, load_rules

log = logging.getLogger(__name__)
# A due_at before any clock's now: the sweeper's next round evaluates the profile (and stores its real moment).
LOOK_AGAIN = datetime(1970, 1, 1, tzinfo=UTC)


class RuleBook:
    def __init__(self, *, rules_file: Path | None = None) -> None:
        self.pinned = rules_file is not None
        self.current: RuleSet = load_rules(rules_file) if rules_file else DEFAULT_RULES

    def __call__(self) -> RuleSet:
        return self.current

    async def refresh(self, engine: AsyncEngine) -> None:
        if self.pinned:
            return
        async with engine.connect() as conn:
            found = await active(conn)
        if found is not None and found != self.current:
            log.info("rule set in force", extra={"rule_version": found.version})
            self.current = found

    async def poll(self, engine: AsyncEngine, *, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.refresh(engine)
            except Exception:  # the database is away: keep the rules we have, try again
                log.warning("could not read the rule set in force", exc_info=True)


async def active(conn: AsyncConnection) -> RuleSet | None:
    document = await rule_sets.in_force(conn)
    return None if document is None else RuleSet.model_validate(document)


async def activate(conn: AsyncConnection, rules: RuleSet) -> bool:
    """Store and put in force; False when that version exists with other rules (versions are immutable)."""
    stored = await rule_sets.store(conn, version=rules.version, document=rules.as_document())
    if RuleSet.model_validate(stored) != rules:
        return False
    await rule_sets.activate(conn, rules.version)
    # Other rules may bring pending at-risk and lapsed moments sooner: the sweeper looks at them all again.
    await rule_sets.move_pending_moments(conn, LOOK_AGAIN)
    return True
