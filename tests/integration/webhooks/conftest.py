"""The messaging database the webhook tests share; each test owns the endpoints."""

from __future__ import annotations

import pytest
from lifecycle_devstack.services import BY_NAME
from lifecycle_messaging.db.models import webhook_endpoints
from lifecycle_shared.db import create_engine


@pytest.fixture(scope="package")
def namespace(infra):
    config = infra.stack_config()
    infra.prepare(config, services=[BY_NAME["messaging"]])
    return config


@pytest.fixture
async def engine(namespace):
    engine = create_engine(namespace.database_url(BY_NAME["messaging"]))
    async with engine.begin() as conn:
        await conn.execute(webhook_endpoints.delete())  # each test owns the endpoints (deliveries cascade)
    yield engine
    await engine.dispose()

