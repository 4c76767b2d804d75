"""Every service's migrations go up, all the way down and up again on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from lifecycle_devstack.databases import create_databases
from lifecycle_devstack.services import SERVICES

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_migrations_go_down_and_up_again(infra, service):
    database = f"rt_{uuid.uuid4().hex[:8]}_{service.database}"
    asyncio.run(create_databases(infra.postgres_url, [database]))
    config = Config()
    migrations = ROOT / "services" / service.name / "src" / service.module / "migrations"
    config.set_main_option("script_location", str(migrations))
    config.set_main_option("sqlalchemy.url", f"{infra.postgres_url}/{database}")
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    command.upgrade(config, "head")
