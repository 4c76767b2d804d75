"""Messaging settings, from `LIFECYCLE_MESSAGING_*` environment variables."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Self
from zoneinfo import ZoneInfo

from lifecycle_shared.settings import ServiceSettings, is_strong_token
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from lifecycle_messaging.domain.caps import Caps
from lifecycle_messaging.domain.local_time import zone_named
from lifecycle_messaging.domain.quiet_hours import QuietHours


class MessagingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LIFECYCLE_MESSAGING_")
    # Its read API needs LIFECYCLE_API_TOKENS outside development.
    requires_api_tokens: ClassVar[bool] = True
    # Its admin API (webhook endpoints) needs LIFECYCLE_MESSAGING_ADMIN_TOKEN outside development.
    requires_admin_token: ClassVar[bool] = True

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
    # The shop's storefront (templates' `shop_url`: e.g. where to spend expiring points); unset, the templates
    # say it without a link.
    shop_url: str | None = Field(default=None, pattern=r"^https?://\S+$", max_length=2000)
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

    # Campaigns (docs/messaging.md "Campaigns"): how often each instance reads the campaigns in force again (a
    # change made through another instance's admin API reaches this one within that).
    campaigns_refresh_s: float = Field(default=2.0, gt=0)

    # The gateway (docs/messaging.md "The gateway"), for marketing messages. The share of each campaign's
    # audience held out unless the campaign sets its own (0 holds nobody); the shop's IANA zone (for customers
    # without a `timezone` trait); the quiet hours in the customer's wall time (`HH:MM-HH:MM`, or `off`); the
    # frequency caps per local day and ISO week (0: no cap).
    holdout_share: float = Field(default=0.10, ge=0.0, le=1.0)
    shop_timezone: str = "UTC"
    quiet_hours: str = "21:00-08:00"
    cap_per_day: int = Field(default=1, ge=0)
    cap_per_week: int = Field(default=3, ge=0)
    # Campaign lift (`GET /v1/campaigns/lift`): orders count for a campaign this many days after the (would-be) send.
    attribution_days: float = Field(default=7.0, gt=0, le=365)

    @model_validator(mode="after")
    def _gateway_settings(self) -> Self:
        zone_named(self.shop_timezone)  # ValueError names it
        QuietHours.parse(self.quiet_hours)
        return self

    @property
    def shop_zone(self) -> ZoneInfo:
        return zone_named(self.shop_timezone)

    @property
    def quiet(self) -> QuietHours:
        return QuietHours.parse(self.quiet_hours)

    @property
    def caps(self) -> Caps:
        return Caps(per_day=self.cap_per_day or None, per_week=self.cap_per_week or None)

    # Consent (docs/messaging.md "Consent and unsubscribe"). False: soft opt-in - marketing goes to an address
    # that has told nothing until it unsubscribes; True: only to addresses that subscribed.
    require_opt_in: bool = False
    # Where this service is reached from the internet: the unsubscribe link is `<public_url>/v1/unsubscribe/...`.
    # HTTPS outside development (mailbox providers ask for it).
    public_url: str = "http://127.0.0.1:8002"
    # Signs the unsubscribe links (HMAC-SHA256); 24+ characters outside development. Changing it voids the
    # links already sent.
    unsubscribe_secret: SecretStr | None = None
    unsubscribe_valid_days: int = Field(default=60, ge=1, le=3650)

    @model_validator(mode="after")
    def _unsubscribe_outside_development(self) -> Self:
        if self.environment == "development":
            return self
        if not is_strong_token(self.unsubscribe_secret.get_secret_value() if self.unsubscribe_secret else ""):
            raise ValueError("LIFECYCLE_MESSAGING_UNSUBSCRIBE_SECRET must be set to a secret of at least 24 "
                             "characters (e.g. `openssl rand -hex 32`) unless LIFECYCLE_ENVIRONMENT=development")
        if not self.public_url.startswith("https://"):
            raise ValueError("LIFECYCLE_MESSAGING_PUBLIC_URL must be an https:// URL unless "
                             "LIFECYCLE_ENVIRONMENT=development")
        return self

    @property
    def unsubscribe_key(self) -> bytes:
        """The signing key; in development without a secret, a fixed one (links from a dev stack only)."""
        secret = self.unsubscribe_secret.get_secret_value() if self.unsubscribe_secret else "development-only"
        return secret.encode()

    @property
    def unsubscribe_valid_for(self) -> timedelta:
        return timedelta(days=self.unsubscribe_valid_days)

    @property
    def freshness(self) -> timedelta:
        return timedelta(seconds=self.freshness_s)

    # Webhooks (docs/webhooks.md). Plain-HTTP URLs and loopback/private/link-local targets: refused unless
    # allowed here; unset, allowed in development only (local receivers, the tests).
    webhooks_allow_insecure_targets: bool | None = None
    webhooks_connect_timeout_s: float = 5.0
    webhooks_timeout_s: float = 15.0  # the whole exchange, from connecting to the last byte read
    webhooks_max_response_bytes: int = 4096  # read of a receiver's answer, the rest is dropped
    webhooks_endpoints_in_flight: int = 16  # endpoint queues worked at once, per process
    webhooks_per_turn: int = 50  # deliveries one endpoint sends before letting the others go first
    webhooks_claim_batch: int = 10  # deliveries of one endpoint claimed (and leased) at a time
    webhooks_lease_s: float = 60.0  # a claimed delivery / endpoint comes back after this if its worker died
    webhooks_idle_poll_s: float = 0.2  # how often an idle worker looks for due deliveries
    # Who is told by email when a webhook endpoint is disabled (410, or failing for 5 days); unset: nobody.
    operator_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")

    @property
    def webhooks_insecure_targets_allowed(self) -> bool:
        if self.webhooks_allow_insecure_targets is None:
            return self.environment == "development"
        return self.webhooks_allow_insecure_targets
