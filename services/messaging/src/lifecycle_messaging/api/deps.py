"""What messaging's routes ask for besides the shared `Engine`: its own settings, the clock and the campaigns
(`async def`: a plain `def` dependency costs a thread-pool hand-off per request)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from lifecycle_messaging.campaignbook import CampaignBook
from lifecycle_messaging.settings import MessagingSettings


async def _settings(request: Request) -> MessagingSettings:
    settings: MessagingSettings = request.app.state.settings
    return settings


async def _now(request: Request) -> datetime:
    """The service's clock (injected into `create_app`), never the wall clock directly."""
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


async def _campaigns(request: Request) -> CampaignBook:
    """The campaigns in force in this process (`create_app`'s book)."""
    book: CampaignBook = request.app.state.campaigns
    return book


MessagingConfig = Annotated[MessagingSettings, Depends(_settings)]
Campaigns = Annotated[CampaignBook, Depends(_campaigns)]
Now = Annotated[datetime, Depends(_now)]
