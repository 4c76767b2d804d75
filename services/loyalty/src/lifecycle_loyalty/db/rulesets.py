"""The SQL of the earn rule sets: every version put in force, the latest in force. Never commits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_loyalty.db.models import rule_sets
from lifecycle_loyalty.domain.rules import DEFAULT_EARN_RULES, EarnRules


async def in_force(conn: AsyncConnection) -> EarnRules:
    """The latest rule set put in force; the defaults (rules/default.yaml) until one is."""
    body = (await conn.execute(select(rule_sets.c.body).order_by(rule_sets.c.seq.desc()).limit(1))).scalar()
    return DEFAULT_EARN_RULES if body is None else EarnRules.model_validate(body)


async def activate(conn: AsyncConnection, rules: EarnRules) -> bool:
    """Put `rules` in force. False when its version exists with other rules (versions are immutable); the
    same rules again put that version back in force."""
    body: dict[str, Any] = rules.as_document()
    known = (await conn.execute(select(rule_sets.c.body).where(rule_sets.c.version == rules.version))).scalar()
    if known is not None and EarnRules.model_validate(known) != rules:
        return False
    await conn.execute(rule_sets.delete().where(rule_sets.c.version == rules.version))
    await conn.execute(insert(rule_sets).values(version=rules.version, body=body))
    return True
