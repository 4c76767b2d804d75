"""The Helm chart's init container (deploy/helm/lifecycle/files/wait_for_schema.py) against a real PostgreSQL: an app
pod starts only once the migration Job has brought its database to the Alembic head of the pod's own image."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from lifecycle_devstack.databases import create_databases
from lifecycle_devstack.infra import Infra
from lifecycle_devstack.services import BY_NAME, StackConfig, run_module

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "deploy" / "helm" / "lifecycle" / "files" / "wait_for_schema.py"
SERVICE = BY_NAME["loyalty"]
MIGRATIONS = ROOT / "services" / "loyalty" / "src" / "lifecycle_loyalty" / "migrations"


def wait_args(timeout: float) -> list[str]:
    return [sys.executable, str(SCRIPT), SERVICE.module, f"{SERVICE.env_prefix}DATABASE_URL",
            "--interval", "0.2", "--timeout", str(timeout)]


def wait(config: StackConfig, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(wait_args(timeout), env=config.env(SERVICE), capture_output=True, text=True,
                          timeout=timeout + 60, check=False)


def head() -> str:
    heads = sorted(p.name.split("_")[0] for p in (MIGRATIONS / "versions").glob("[0-9]*.py"))
    return heads[-1]


def test_the_init_container_waits_for_the_migration_job_and_then_lets_the_app_start(infra: Infra):
    config = infra.stack_config()
    no_database = wait(config, 0.5)
    assert no_database.returncode == 1
    assert "database not readable" in no_database.stderr
    asyncio.run(create_databases(infra.postgres_url, [config.database_prefix + SERVICE.database]))
    waiting = subprocess.Popen(wait_args(60), env=config.env(SERVICE), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        run_module(SERVICE, config, "migrate")  # the migration Job
        out, err = waiting.communicate(timeout=60)
    finally:
        waiting.kill()
    assert waiting.returncode == 0, err
    assert f"schema at head ['{head()}" in out
    assert "waiting for the migration Job" in out  # it did wait
    for output in (out, err, no_database.stdout, no_database.stderr):
        assert infra.postgres_url.split("//")[1] not in output  # never the URL (nor a password in it)


def test_a_database_behind_the_image_keeps_the_app_waiting(infra: Infra):
    config = infra.stack_config()
    asyncio.run(create_databases(infra.postgres_url, [config.database_prefix + SERVICE.database]))
    run_module(SERVICE, config, "migrate")
    assert wait(config, 5).returncode == 0
    alembic = Config()
    alembic.set_main_option("script_location", str(MIGRATIONS))
    alembic.set_main_option("sqlalchemy.url", config.database_url(SERVICE))
    command.downgrade(alembic, "-1")  # as if the new version's migration Job had not run yet
    behind = wait(config, 0.5)
    assert behind.returncode == 1
    assert "database at ['" in behind.stderr and f"image needs ['{head()}" in behind.stderr
