"""Alembic environment of the stage-engine database."""

from lifecycle_shared.migrations import run_env
from lifecycle_stage_engine.db.models import metadata

run_env(metadata, settings_cls="lifecycle_stage_engine.settings:StageEngineSettings")
