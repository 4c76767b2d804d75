"""Settings refuse what would be unsafe to run with: pure, no I/O."""

from __future__ import annotations

import pytest
from lifecycle_ingest.settings import IngestSettings
from lifecycle_loyalty.settings import LoyaltySettings
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_stage_engine.settings import StageEngineSettings
from pydantic import ValidationError

ADMIN_API_SETTINGS = [(IngestSettings, "LIFECYCLE_INGEST_ADMIN_TOKEN"),
                      (StageEngineSettings, "LIFECYCLE_STAGE_ENGINE_ADMIN_TOKEN"),
                      (MessagingSettings, "LIFECYCLE_MESSAGING_ADMIN_TOKEN")]


@pytest.mark.parametrize(("settings_cls", "variable"), ADMIN_API_SETTINGS)
@pytest.mark.parametrize("token", [None, "", "dev-admin-token", "changeme", "only-20-characters!!"])
def test_outside_development_admin_apis_refuse_to_start_without_a_real_admin_token(settings_cls, variable, token,
                                                                                   monkeypatch):
    monkeypatch.delenv("LIFECYCLE_ENVIRONMENT", raising=False)
    monkeypatch.setenv("LIFECYCLE_API_TOKENS", "9f2c41d07be3a6558e1d" + "a" * 8)
    with pytest.raises(ValidationError, match=f"{variable} must be set"):
        settings_cls(admin_token=token)


def test_services_without_an_admin_api_need_no_admin_token(monkeypatch):
    monkeypatch.delenv("LIFECYCLE_ENVIRONMENT", raising=False)
    assert LoyaltySettings(api_tokens="9f2c41d07be3a6558e1d" + "a" * 8).admin_token is None


def test_a_long_random_admin_token_is_accepted(monkeypatch):
    monkeypatch.delenv("LIFECYCLE_ENVIRONMENT", raising=False)
    assert IngestSettings(admin_token="a" * 8 + "9f2c41d07be3a6558e1d").environment == "production"


def test_development_runs_without_an_admin_token(monkeypatch):
    monkeypatch.setenv("LIFECYCLE_ENVIRONMENT", "development")
    assert IngestSettings().admin_token is None


# --- LIFECYCLE_API_TOKENS: the read APIs of stage-engine, messaging and loyalty ----------------

READ_API_SETTINGS = [StageEngineSettings, MessagingSettings, LoyaltySettings]
STRONG = "9f2c41d07be3a6558e1d" + "a" * 8


@pytest.mark.parametrize("settings_cls", READ_API_SETTINGS)
@pytest.mark.parametrize("tokens", [None, "", " , ", "changeme", "only-20-characters!!", f"{STRONG},token"])
def test_outside_development_read_apis_refuse_to_start_without_real_tokens(settings_cls, tokens, monkeypatch):
    monkeypatch.delenv("LIFECYCLE_ENVIRONMENT", raising=False)
    monkeypatch.delenv("LIFECYCLE_API_TOKENS", raising=False)
    if tokens is not None:
        monkeypatch.setenv("LIFECYCLE_API_TOKENS", tokens)
    with pytest.raises(ValidationError, match="LIFECYCLE_API_TOKENS must be set") as refused:
        settings_cls()
    assert "changeme" not in str(refused.value) and "only-20" not in str(refused.value)  # no token in the error


@pytest.mark.parametrize("settings_cls", READ_API_SETTINGS)
def test_tokens_are_a_comma_separated_list_read_whatever_the_services_prefix(settings_cls, monkeypatch):
    monkeypatch.delenv("LIFECYCLE_ENVIRONMENT", raising=False)
    monkeypatch.setenv("LIFECYCLE_API_TOKENS", f" {STRONG}-old , {STRONG}-new ")
    monkeypatch.setenv("LIFECYCLE_MESSAGING_UNSUBSCRIBE_SECRET", f"{STRONG}-links")  # messaging's own secret
    monkeypatch.setenv("LIFECYCLE_MESSAGING_PUBLIC_URL", "https://shop.example")
    settings = settings_cls(admin_token=STRONG) if settings_cls.requires_admin_token else settings_cls()
    assert [t.get_secret_value() for t in settings.api_tokens] == [f"{STRONG}-old", f"{STRONG}-new"]
    assert STRONG not in repr(settings)  # secrets: never in a log line


def test_constructor_takes_tokens_too(monkeypatch):
    monkeypatch.delenv("LIFECYCLE_ENVIRONMENT", raising=False)
    monkeypatch.delenv("LIFECYCLE_API_TOKENS", raising=False)
    assert len(LoyaltySettings(api_tokens=f"{STRONG}1,{STRONG}2").api_tokens) == 2
    assert len(LoyaltySettings(api_tokens=[STRONG]).api_tokens) == 1


def test_development_runs_the_read_apis_without_tokens_and_takes_any(monkeypatch):
    monkeypatch.setenv("LIFECYCLE_ENVIRONMENT", "development")
    monkeypatch.delenv("LIFECYCLE_API_TOKENS", raising=False)
    assert StageEngineSettings().api_tokens == ()
    assert len(MessagingSettings(api_tokens="short").api_tokens) == 1


def test_messaging_outside_development_needs_a_secret_for_its_links_and_an_https_url(monkeypatch):
    monkeypatch.delenv("LIFECYCLE_ENVIRONMENT", raising=False)
    monkeypatch.setenv("LIFECYCLE_API_TOKENS", STRONG)
    monkeypatch.setenv("LIFECYCLE_MESSAGING_ADMIN_TOKEN", STRONG)
    with pytest.raises(ValidationError, match="UNSUBSCRIBE_SECRET"):
        MessagingSettings(public_url="https://shop.example")
    with pytest.raises(ValidationError, match="UNSUBSCRIBE_SECRET"):
        MessagingSettings(public_url="https://shop.example", unsubscribe_secret="changeme")
    with pytest.raises(ValidationError, match="PUBLIC_URL"):
        MessagingSettings(unsubscribe_secret=STRONG, public_url="http://shop.example")
    settings = MessagingSettings(unsubscribe_secret=STRONG, public_url="https://shop.example")
    assert settings.unsubscribe_key == STRONG.encode() and STRONG not in repr(settings)
    assert not settings.require_opt_in  # soft opt-in unless the shop says otherwise


def test_ingest_serves_no_read_api_and_needs_no_tokens(monkeypatch):
    monkeypatch.delenv("LIFECYCLE_ENVIRONMENT", raising=False)
    monkeypatch.delenv("LIFECYCLE_API_TOKENS", raising=False)
    assert IngestSettings(admin_token=STRONG).api_tokens == ()
