"""Messaging settings, from `LIFECYCLE_MESSAGING_*` environment variables."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from lifecycle_shared.settings import ServiceSettings
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict


class MessagingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LIFECYCLE_MESSAGING_")
    # Its read API needs LIFECYCLE_API_TOKENS outside development.
    requires_api_tokens: ClassVar[bool] = True

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
    # The shop's language: a customer whose `locale` trait no template has gets this one, then English.
    default_locale: str = Field(default="en", pattern=r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{1,8})*$")
    # Attempts per message, counted when a worker claims it; then it is marked failed with its reason.
    max_send_attempts: int = 5
    retry_base_s: float = 5.0
    send_batch_size: int = 10
    idle_poll_s: float = 0.3
    # How often, and over how recent addresses, the sweeper releases messages that a concurrent
    # transaction queued as waiting while the address arrived.
    contact_sweep_interval_s: float = 5.0
    contact_sweep_window_s: float = 600.0
    # How old a stage transition may be (its event time, against the service's clock) and still be
    # messaged: at queue time and again just before sending. A day: a backlog after an outage of hours
    # is still news; older, a welcome or an offer is about a moment long gone (docs/messaging.md).
    freshness_s: float = Field(default=86_400.0, gt=0)

    @property
    def freshness(self) -> timedelta:
        return timedelta(seconds=self.freshness_s)
