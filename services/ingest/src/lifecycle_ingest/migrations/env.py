"""Alembic environment of the ingest database."""

from lifecycle_ingest.db.models import metadata
from lifecycle_shared.migrations import run_env

run_env(metadata, settings_cls="lifecycle_ingest.settings:IngestSettings")
