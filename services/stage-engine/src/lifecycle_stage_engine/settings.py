"""Stage-engine settings, from `LIFECYCLE_STAGE_ENGINE_*` environment variables."""

from __future__ import annotations

from typing import ClassVar

from lifecycle_shared.settings import ServiceSettings
from pydantic_settings import SettingsConfigDict


class StageEngineSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LIFECYCLE_STAGE_ENGINE_")
    # Its read API needs LIFECYCLE_API_TOKENS outside development.
    requires_api_tokens: ClassVar[bool] = True

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/lifecycle_stage_engine"
    port: int = 8001
