"""The test and bench infrastructure leaves nothing behind: a PostgreSQL cluster per run used to stay in
/tmp (a gigabyte per suite) until the disk filled and CI failed."""

from __future__ import annotations

import shutil

from lifecycle_devstack.infra import Infra


def test_stopping_the_infrastructure_deletes_its_files_unless_asked_to_keep_them(monkeypatch):
    monkeypatch.delenv("LIFECYCLE_KEEP_INFRA_FILES", raising=False)
    started = Infra.start()
    assert started.work_dir.is_dir() and any(started.work_dir.iterdir())
    started.stop()
    assert not started.work_dir.exists()
    kept = Infra.start()
    kept.stop(keep_files=True)
    try:
        assert kept.work_dir.is_dir()
    finally:
        shutil.rmtree(kept.work_dir, ignore_errors=True)
