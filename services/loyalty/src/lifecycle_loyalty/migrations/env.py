"""Alembic environment of the loyalty database."""

from lifecycle_loyalty.db.models import metadata
from lifecycle_shared.migrations import run_env

run_env(metadata, settings_cls="lifecycle_loyalty.settings:LoyaltySettings")
