"""Messaging settings, from `LIFECYCLE_MESSAGING_*` environment variables."""

from __future__ import annotations

from lifecycle_shared.settings import ServiceSettings
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict


class MessagingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LIFECYCLE_MESSAGING_")

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/lifecycle_messaging"
    port: int = 8002
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_s: float = 10.0
    smtp_from: str = "Lifecycle <hello@lifecycle.invalid>"
    brand_name: str = "Our shop"
    max_send_attempts: int = 5
