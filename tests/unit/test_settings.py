"""Settings refuse what would be unsafe to run with: pure, no I/O."""

from __future__ import annotations

import pytest
from lifecycle_ingest.settings import IngestSettings
from pydantic import ValidationError


@pytest.mark.parametrize("token", [None, "", "dev-admin-token", "changeme", "only-20-characters!!"])
def test_outside_development_ingest_refuses_to_start_without_a_real_admin_token(token, monkeypatch):
    monkeypatch.delenv("LIFECYCLE_ENVIRONMENT", raising=False)
    with pytest.raises(ValidationError, match="LIFECYCLE_INGEST_ADMIN_TOKEN must be set"):
        IngestSettings(admin_token=token)


def test_a_long_random_admin_token_is_accepted(monkeypatch):
    monkeypatch.delenv("LIFECYCLE_ENVIRONMENT", raising=False)
    assert IngestSettings(admin_token="a" * 8 + "9f2c41d07be3a6558e1d").environment == "production"


def test_development_runs_without_an_admin_token(monkeypatch):
    monkeypatch.setenv("LIFECYCLE_ENVIRONMENT", "development")
    assert IngestSettings().admin_token is None
