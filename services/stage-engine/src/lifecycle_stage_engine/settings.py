"""Stage-engine settings, from `LIFECYCLE_STAGE_ENGINE_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from lifecycle_shared.settings import ServiceSettings
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from lifecycle_stage_engine.analytics.rfm import Thresholds
from lifecycle_stage_engine.analytics.scoring import Options


class StageEngineSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LIFECYCLE_STAGE_ENGINE_")
    # Its read API needs LIFECYCLE_API_TOKENS, its admin API (rules, replays)
    # LIFECYCLE_STAGE_ENGINE_ADMIN_TOKEN, outside development.
    requires_api_tokens: ClassVar[bool] = True
    requires_admin_token: ClassVar[bool] = True

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/lifecycle_stage_engine"
    port: int = 8001
    # A rule set file (YAML or JSON; see rules/default.yaml) pinned for the process's life. Unset: the
    # rule set last activated through PUT /v1/admin/rules, else the defaults.
    rules_file: Path | None = None
    # How often each instance checks for a newly activated rule set.
    rules_refresh_s: float = Field(default=5.0, gt=0)
    # How often the sweeper looks for customers whose at-risk or lapsed moment has come.
    sweep_interval_s: float = Field(default=30.0, gt=0)
    # Analytics: how often every customer is scored again (RFM, CLV, churn) and the models refitted;
    # the CLV horizon and yearly discount rate; fixed RFM thresholds instead of quintiles (JSON:
    # {"recency_days": [..4 ascending..], "orders": [...], "revenue": [...]}).
    analytics_interval_s: float = Field(default=900.0, gt=0)
    clv_horizon_days: float = Field(default=365.0, gt=0, le=3650)
    clv_discount_rate: float = Field(default=0.10, ge=0, le=1)
    rfm_thresholds: Thresholds | None = None
    # The shop's currency (ISO 4217), in which the analytics API and the dashboard show money.
    currency: str = Field(default="USD", pattern="^[A-Z]{3}$")
    # Where browsers reach messaging's campaigns page (e.g. https://messaging.shop.example/campaigns): the
    # dashboard links there, passing the API token in the fragment. Unset: no link.
    campaigns_page_url: str | None = Field(default=None, pattern="^https?://[^\\s\"'<>]+$")
    # Erasure (docs/erasure.md; the pepper is ServiceSettings.erasure_pepper: unset, POST /v1/admin/erasures answers
    # 503): where ingest's, messaging's and loyalty's reports are read (their base URLs; unset: that part shows
    # `pending`).
    ingest_url: str | None = None
    messaging_url: str | None = None
    loyalty_url: str | None = None

    def scoring_options(self) -> Options:
        return Options(horizon_days=self.clv_horizon_days, annual_discount_rate=self.clv_discount_rate,
                       thresholds=self.rfm_thresholds)
