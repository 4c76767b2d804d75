"""What loyalty's routes ask for besides the shared `Engine`: the clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request


def _clock(request: Request) -> Callable[[], datetime]:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock


Clock = Annotated[Callable[[], datetime], Depends(_clock)]


def _now(clock: Clock) -> datetime:
    """The service's clock (injected into `create_app`), never the wall clock directly."""
    return clock()


Now = Annotated[datetime, Depends(_now)]
