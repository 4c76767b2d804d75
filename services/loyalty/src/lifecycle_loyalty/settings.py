"""Loyalty settings, from `LIFECYCLE_LOYALTY_*` environment variables."""

from __future__ import annotations

from typing import ClassVar

from lifecycle_shared.settings import ServiceSettings
from pydantic import Field
from pydantic_settings import SettingsConfigDict


class LoyaltySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LIFECYCLE_LOYALTY_")
    # Its read API needs LIFECYCLE_API_TOKENS outside development.
    requires_api_tokens: ClassVar[bool] = True

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/lifecycle_loyalty"
    port: int = 8003
    expiry_interval_s: float = Field(default=60.0, gt=0)  # how often lots past their expiry are expired
