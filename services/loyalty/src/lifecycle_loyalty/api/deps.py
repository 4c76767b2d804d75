"""What loyalty's routes ask for besides the shared `Engine`: the clock (`async def`: a plain `def` dependency
costs a thread-pool hand-off per request)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request


async def _clock(request: Request) -> Callable[[], datetime]:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock


Clock = Annotated[Callable[[], datetime], Depends(_clock)]


async def _now(clock: Clock) -> datetime:
    """The service's clock (injected into `create_app`), never the wall clock directly."""
    return clock()


Now = Annotated[datetime, Depends(_now)]
