"""Which consent change lifts an erased address's suppression marker (docs/erasure.md): an explicit opt-in made
after the erasure that leaves the address subscribed."""

from datetime import UTC, datetime, timedelta

import pytest
from lifecycle_messaging.domain.erasure import lifts_marker

ERASED = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
AFTER, BEFORE = ERASED + timedelta(seconds=1), ERASED - timedelta(seconds=1)


@pytest.mark.parametrize(("told", "explicit", "told_at", "standing", "lifts"), [
    ("subscribed", True, AFTER, "subscribed", True),  # a verified Subscribed track, an operator's opt-in
    ("subscribed", True, BEFORE, "subscribed", False),  # replayed from before the erasure
    ("subscribed", True, ERASED, "subscribed", False),  # not after it
    ("subscribed", False, AFTER, "subscribed", False),  # an unverified event or an opt-in trait
    ("subscribed", True, AFTER, "blocked", False),  # it did not stand: the address is not subscribed
    ("unsubscribed", True, AFTER, "unsubscribed", False),
])
def test_only_an_explicit_opt_in_after_the_erasure_lifts_the_marker(told, explicit, told_at, standing, lifts):
    assert lifts_marker(told, explicit=explicit, told_at=told_at, erased_at=ERASED, standing=standing) is lifts
