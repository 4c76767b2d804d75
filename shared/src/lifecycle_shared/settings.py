"""Settings read from environment variables, once, by pydantic-settings.

Broker settings are shared by every service (prefix `LIFECYCLE_KAFKA_`); each service adds its
own class with its own prefix (`LIFECYCLE_INGEST_`, `LIFECYCLE_STAGE_ENGINE_`, ...).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from lifecycle_shared.topics import Topics

# Tokens that appear in examples and docs: never a credential.
PLACEHOLDER_TOKENS = frozenset({"changeme", "changethis", "dev-admin-token", "admin", "secret", "token", "test"})
MIN_TOKEN_LENGTH = 24


def is_strong_token(token: str) -> bool:
    """What a bearer token must be outside development: 24+ characters and not a placeholder."""
    return len(token) >= MIN_TOKEN_LENGTH and token.lower() not in PLACEHOLDER_TOKENS


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIFECYCLE_KAFKA_")

    bootstrap_servers: str = "127.0.0.1:9092"
    # Real Kafka: on. The embedded broker (Tansu) rejects InitProducerId, so the devstack turns it off.
    enable_idempotence: bool = True
    topic_prefix: str = ""
    partitions: int = 6
    replication_factor: int = 1
    linger_ms: int = 1
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 1500
    max_poll_records: int = 500
    # How long the broker may hold a fetch waiting for data: aiokafka's 500 ms default adds up
    # to half a second per hop at low load.
    fetch_max_wait_ms: int = 50
    # How often each service checks that its topics exist (and re-creates what vanished).
    topic_check_interval_s: float = 2.0
    # A graceful stop (SIGTERM) lets each consumer finish and commit the batch in hand for at most this long
    # before cancelling it (what it had not committed is then re-read by the partition's next owner).
    drain_timeout_s: float = 15.0
    # How often each consuming process measures its groups' lag from the broker (lifecycle_consumer_lag).
    lag_interval_s: float = 15.0
    # A broker that keeps topics in memory (the embedded Tansu) loses them on restart; on, each
    # service notices even a restart another service already repaired, and rejoins afresh.
    detect_broker_restarts: bool = False

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)


class ServiceSettings(BaseSettings):
    """Fields every service has; subclasses set `env_prefix` and defaults."""

    # Inputs stay out of validation errors: they carry secrets (tokens, passwords in URLs).
    model_config = SettingsConfigDict(populate_by_name=True, hide_input_in_errors=True)
    # Set by the services that serve read APIs: outside development they need LIFECYCLE_API_TOKENS.
    requires_api_tokens: ClassVar[bool] = False
    # Set by the services with an admin API: outside development they need `<PREFIX>ADMIN_TOKEN`.
    requires_admin_token: ClassVar[bool] = False

    # LIFECYCLE_ENVIRONMENT, shared by all services. Anything but development refuses to start
    # with a missing or placeholder secret; the embedded stack (`dev.py up`) runs as development.
    environment: Literal["development", "production"] = Field(default="production",
                                                              validation_alias="LIFECYCLE_ENVIRONMENT")
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/lifecycle"
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    # `<PREFIX>WORKERS`: uvicorn worker processes sharing the port (lifecycle_shared.cli); each builds
    # its own app, so per-instance limits (ingest's rate limits, in-flight cap) apply per worker.
    workers: int = Field(default=1, ge=1)
    # `<PREFIX>ROLE`, or `serve --role`: what this process runs (lifecycle_shared.runtime.Role). `api`: the
    # routes with /healthz, /readyz, /metrics; `consumer`: consumers, workers and the outbox relay with only
    # /healthz, /readyz, /metrics; `all`: both in one process.
    role: Literal["api", "consumer", "all"] = "all"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    # LIFECYCLE_API_TOKENS, shared by all services: bearer tokens for the read APIs (profiles,
    # messages, balances), comma-separated so a token can be rotated with overlap. Outside
    # development each is 24+ characters and not a placeholder; in development, unset disables
    # the read APIs (403).
    api_tokens: Annotated[tuple[SecretStr, ...], NoDecode] = Field(default=(), validation_alias="LIFECYCLE_API_TOKENS")
    # `<PREFIX>ADMIN_TOKEN`: Bearer token for the service's admin API, if it has one. Required outside
    # development (24+ characters, not a placeholder); in development, unset disables the admin API.
    admin_token: SecretStr | None = None
    # LIFECYCLE_ERASURE_PEPPER, one value shared by the four services (docs/erasure.md): the key of the hashes
    # erasures name customers by, of messaging's erased-address markers, and of the key API's token. Set, ingest
    # seals what it publishes (crypto-shredding); unset, records go in clear and erasures are dead-lettered, never
    # skipped. Changing it ends the suppression of erased addresses and every service's access to the data keys.
    erasure_pepper: SecretStr | None = Field(default=None, validation_alias="LIFECYCLE_ERASURE_PEPPER")
    # LIFECYCLE_KEYS_URL, shared: ingest's base URL, where the other services fetch customers' data keys to open
    # sealed records and to seal what their outbox publishes (with the pepper; both or neither).
    keys_url: str | None = Field(default=None, validation_alias="LIFECYCLE_KEYS_URL",
                                 pattern="^https?://[^\\s\"'<>]+$")
    # LIFECYCLE_KEYS_CACHE_S, shared: how long a process keeps a data key it fetched (or created) - the longest a
    # key destroyed by an erasure still opens or seals records in another process (docs/erasure.md).
    keys_cache_s: float = Field(default=30.0, gt=0, le=3600, validation_alias="LIFECYCLE_KEYS_CACHE_S")

    @classmethod
    def admin_token_variable(cls) -> str:
        return f"{cls.model_config.get('env_prefix', '')}ADMIN_TOKEN"

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str | SecretStr):
            text = value.get_secret_value() if isinstance(value, SecretStr) else value
            return tuple(token.strip() for token in text.split(",") if token.strip())
        return value

    @model_validator(mode="after")
    def _api_tokens_outside_development(self) -> Self:
        if self.environment == "development":
            return self
        weak = [t for t in self.api_tokens if not is_strong_token(t.get_secret_value())]
        if weak or (self.requires_api_tokens and not self.api_tokens):
            raise ValueError(f"LIFECYCLE_API_TOKENS must be set to one or more comma-separated secrets of at least "
                             f"{MIN_TOKEN_LENGTH} characters (e.g. `openssl rand -hex 32`) unless "
                             "LIFECYCLE_ENVIRONMENT=development")
        return self

    @model_validator(mode="after")
    def _admin_token_outside_development(self) -> Self:
        if self.environment == "development" or not self.requires_admin_token:
            return self
        if not is_strong_token(self.admin_token.get_secret_value() if self.admin_token else ""):
            raise ValueError(f"{self.admin_token_variable()} must be set to a secret of at least "
                             f"{MIN_TOKEN_LENGTH} characters (e.g. `openssl rand -hex 32`) unless "
                             "LIFECYCLE_ENVIRONMENT=development")
        return self
