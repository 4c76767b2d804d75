"""Loyalty settings, from `LIFECYCLE_LOYALTY_*` environment variables."""

from __future__ import annotations

from lifecycle_shared.settings import ServiceSettings
from pydantic_settings import SettingsConfigDict


class LoyaltySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LIFECYCLE_LOYALTY_")

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/lifecycle_loyalty"
    port: int = 8003
