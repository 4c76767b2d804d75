"""`dev.py up` with an external broker: the data folder it prepares has its logs folder, though no embedded
broker (which used to make it) starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from lifecycle_devstack.stack import prepare_data_dir


def test_a_new_data_folder_gets_its_logs_folder_with_an_external_broker(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFECYCLE_KAFKA_BOOTSTRAP_SERVERS", "kafka.example:9092")
    data_dir = tmp_path / "new" / "data"
    logs = prepare_data_dir(data_dir)
    assert logs == data_dir / "logs" and logs.is_dir()
    with open(logs / "mail.log", "ab") as log:  # what `up` opens first for the mail sink
        log.write(b"")
    assert prepare_data_dir(data_dir) == logs  # an existing folder is fine
