"""What the stage engine's routes ask for besides the shared `Engine`: the rule book and the clock (`async def`:
a plain `def` dependency costs a thread-pool hand-off per request)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from lifecycle_stage_engine.rulebook import RuleBook


async def _rulebook(request: Request) -> RuleBook:
    return request.app.state.rulebook


async def _clock(request: Request) -> Callable[[], datetime]:
    return request.app.state.clock


async def _read_engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.read_engine
    return engine


RuleBookDep = Annotated[RuleBook, Depends(_rulebook)]
# The profile API's own pool (lifecycle_shared.db.create_read_engine): autocommit, no pre-ping.
ReadEngine = Annotated[AsyncEngine, Depends(_read_engine)]
Clock = Annotated[Callable[[], datetime], Depends(_clock)]


async def _now(clock: Clock) -> datetime:
    """The service's clock (injected into `create_app`), never the wall clock directly."""
    return clock()


Now = Annotated[datetime, Depends(_now)]
