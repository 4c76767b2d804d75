"""What the stage engine's routes ask for besides the shared `Engine`: the rule book and the clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from lifecycle_stage_engine.rulebook import RuleBook


def _rulebook(request: Request) -> RuleBook:
    return request.app.state.rulebook


def _clock(request: Request) -> Callable[[], datetime]:
    return request.app.state.clock


RuleBookDep = Annotated[RuleBook, Depends(_rulebook)]
Clock = Annotated[Callable[[], datetime], Depends(_clock)]


def _now(clock: Clock) -> datetime:
    """The service's clock (injected into `create_app`), never the wall clock directly."""
    return clock()


Now = Annotated[datetime, Depends(_now)]
