"""The restore runbook's command (docs/erasure.md "Backups"): its time argument and how erasures read from several
records are merged."""

import argparse
from datetime import UTC, datetime, timedelta

import pytest
from lifecycle_stage_engine.db.erasure import ErasureReport
from lifecycle_stage_engine.republication import aware_time, merged

T = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def report(erasure_id: str, at: datetime, counts: dict[str, int] | None = None) -> ErasureReport:
    return ErasureReport(erasure_id, at, counts or {}, [f"hash-{erasure_id}"], repeated=True)


def test_each_erasure_once_oldest_first_the_first_record_winning():
    own = [report("b", T + timedelta(hours=2), {"profiles": 1})]
    messaging = [report("a", T + timedelta(hours=1)), report("b", T + timedelta(hours=2), {"contacts": 1})]
    loyalty = [report("c", T), report("a", T + timedelta(hours=1))]
    assert [(r.erasure_id, r.counts) for r in merged(own, messaging, loyalty)] == [
        ("c", {}), ("a", {}), ("b", {"profiles": 1})]


def test_the_time_needs_its_offset():
    assert aware_time("2026-12-01T02:00:00Z") == T
    assert aware_time("2026-12-01T09:00:00+07:00") == T
    for wrong in ("2026-12-01T02:00:00", "yesterday"):
        with pytest.raises(argparse.ArgumentTypeError):
            aware_time(wrong)
