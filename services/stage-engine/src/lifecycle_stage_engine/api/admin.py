"""The operator's API: the rule set in force, replays and dry runs (Bearer admin token).

`GET /v1/admin/rules`, `PUT /v1/admin/rules`: read, and replace the rule set in force (versions
are immutable: a changed rule set needs a new version; a file pinned by `rules_file` cannot be
replaced here). Every instance takes the new one within `rules_refresh_s`.
`POST /v1/admin/replays`: a background job over stored history - `dry_run: true` with any rule set
shows what it would change and stores nothing; a replay re-runs the rule set in force. Its
progress and report: `GET /v1/admin/replays/{id}`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException
from lifecycle_shared.auth import AdminAccess
from lifecycle_shared.http import Engine, errors
from lifecycle_shared.stages import Stage
from pydantic import BaseModel, ConfigDict, Field, field_validator

from lifecycle_stage_engine import rulebook
from lifecycle_stage_engine.api.deps import RuleBookDep
from lifecycle_stage_engine.db import replays as jobs
from lifecycle_stage_engine.domain.rules import RuleSet
from lifecycle_stage_engine.workers import replays

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[AdminAccess], responses=errors(401, 403))


class Scope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: str | None = Field(None, min_length=1, max_length=200, pattern="^[^\x00]+$")

    @field_validator("customer_id")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                value.encode()
            except UnicodeEncodeError:
                raise ValueError("not valid Unicode text") from None
        return value
    stage: Stage | None = None


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Scope = Scope()
    dry_run: bool = True
    rules: RuleSet | None = Field(None, description="dry runs only; default: the rule set in force")


class ReplayOut(BaseModel):
    id: str
    dry_run: bool
    scope: dict[str, Any]
    rule_version: str
    status: str
    total: int
    done: int
    result: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None


@router.get("/rules")
async def get_rules(book: RuleBookDep) -> dict[str, Any]:
    return book().as_document()


@router.put("/rules", responses=errors(400, 409))
async def put_rules(rules: RuleSet, engine: Engine, book: RuleBookDep) -> dict[str, Any]:
    if book.pinned:
        raise HTTPException(409, "the rule set is pinned by LIFECYCLE_STAGE_ENGINE_RULES_FILE")
    async with engine.begin() as conn:
        if not await rulebook.activate(conn, rules):
            raise HTTPException(409, f"version '{rules.version}' exists with other rules: give this one a new version")
    await book.refresh(engine)
    return rules.as_document()


@router.post("/replays", status_code=202, response_model=ReplayOut, responses=errors(400, 409))
async def start_replay(body: ReplayIn, engine: Engine, book: RuleBookDep) -> ReplayOut:
    in_force = book()
    if not body.dry_run and body.rules is not None and body.rules != in_force:
        raise HTTPException(409, "a replay runs the rule set in force: dry-run these rules, then PUT /v1/admin/rules")
    scope = body.scope.model_dump(mode="json", exclude_none=True)
    async with engine.begin() as conn:
        job_id = await replays.create_job(conn, scope=scope, rules=body.rules or in_force, dry_run=body.dry_run)
    return await get_replay(job_id, engine)


@router.get("/replays/{job_id}", response_model=ReplayOut, responses=errors(404))
async def get_replay(job_id: str, engine: Engine) -> ReplayOut:
    async with engine.connect() as conn:
        row = await jobs.job(conn, _uuid(job_id))
    if row is None:
        raise HTTPException(404, f"no replay '{job_id}'")
    return ReplayOut(id=row.id, dry_run=row.dry_run, scope=row.scope, rule_version=row.rules["version"],
                     status=row.status, total=row.total, done=row.done, result=row.result,
                     created_at=row.created_at, finished_at=row.finished_at)


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise HTTPException(404, f"no replay '{value[:40]}'") from None
