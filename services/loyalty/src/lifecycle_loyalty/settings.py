"""Loyalty settings, from `LIFECYCLE_LOYALTY_*` environment variables."""

from __future__ import annotations

from typing import ClassVar

from lifecycle_shared.settings import ServiceSettings
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict


class LoyaltySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LIFECYCLE_LOYALTY_")
    # Its read API needs LIFECYCLE_API_TOKENS outside development.
    requires_api_tokens: ClassVar[bool] = True

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/lifecycle_loyalty"
    port: int = 8003
    expiry_interval_s: float = Field(default=60.0, gt=0)  # how often lots past their expiry are expired
    # LIFECYCLE_ERASURE_PEPPER: the key of the hashes `customer.erasure_requested` names customers by, one value
    # shared by the services (docs/erasure.md); unset, erasures are dead-lettered, never skipped.
    erasure_pepper: SecretStr | None = Field(default=None, validation_alias="LIFECYCLE_ERASURE_PEPPER")
