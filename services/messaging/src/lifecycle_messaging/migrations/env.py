"""Alembic environment of the messaging database."""

from lifecycle_messaging.db.models import metadata
from lifecycle_shared.migrations import run_env

run_env(metadata, settings_cls="lifecycle_messaging.settings:MessagingSettings")
