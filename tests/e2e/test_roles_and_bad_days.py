"""Reads and readiness on a bad day, with real processes: the stage engine split into its API and its
consumer (`serve --role`), the consumer SIGKILLed while the profile API keeps answering; the analytics
pool process dying with a SIGKILLed stage engine; ingest staying ready while its PostgreSQL is down."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from lifecycle_devstack.databases import create_databases
from lifecycle_devstack.infra import Infra, create_topics
from lifecycle_devstack.ports import free_port
from lifecycle_devstack.postgres import EmbeddedPostgres
from lifecycle_devstack.services import BY_NAME, ServiceProcess, run_module

from tests.support.pipeline import API_TOKEN, bearer, wait_until_key_works

INGEST, STAGE_ENGINE = BY_NAME["ingest"], BY_NAME["stage-engine"]


def track(ingest: ServiceProcess, key: str, user_id: str) -> httpx.Response:
    return httpx.post(ingest.url + "/v1/track", auth=(key, ""), timeout=10, json={
        "event": "Product Viewed", "userId": user_id, "messageId": uuid.uuid4().hex, "properties": {"sku": "TEE-1"}})


def profile_status(api: ServiceProcess, customer: str) -> int:
    return httpx.get(f"{api.url}/v1/customers/{customer}", headers=bearer(), timeout=5).status_code


def children(pid: int) -> dict[int, str]:
    """The live processes whose parent is `pid`, with their command lines (from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(check: Callable[[], bool], *, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout_s}s waiting for {what}"
        time.sleep(0.2)


def readiness(process: ServiceProcess) -> httpx.Response:
    return httpx.get(process.url + "/readyz", timeout=10)


def test_the_profile_api_answers_while_the_consumer_is_down_and_the_consumer_catches_up(infra: Infra,
                                                                                        tmp_path: Path) -> None:
    config = infra.stack_config(api_tokens=API_TOKEN)
    infra.prepare(config, services=[INGEST, STAGE_ENGINE])
    ingest = ServiceProcess(INGEST, config, tmp_path / "ingest.log")
    api = ServiceProcess(STAGE_ENGINE, config, tmp_path / "stage-engine-api.log", role="api")
    consumer = ServiceProcess(STAGE_ENGINE, config, tmp_path / "stage-engine-consumer.log", role="consumer",
                              port=free_port())
    processes = [ingest, api, consumer]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.wait_ready()
        # Each role serves what it is for, and is ready on what it needs.
        assert "/v1/customers/{customer_id}" in httpx.get(api.url + "/openapi.json").json()["paths"]
        assert not any(path.startswith("/v1/") for path in httpx.get(consumer.url + "/openapi.json").json()["paths"])
        assert set(readiness(api).json()["checks"]) == {"database", "workers"}
        assert set(readiness(consumer).json()["checks"]) == {"database", "broker", "topics", "workers", "consumers"}
        assert httpx.get(consumer.url + "/metrics").status_code == 200

        key = run_module(INGEST, config, "create-key", "roles", "--server").strip()
        wait_until_key_works(ingest.url, key)
        assert track(ingest, key, "known-1").status_code == 200
        wait_for(lambda: profile_status(api, "known-1") == 200, what="known-1's profile, applied by the consumer")

        consumer.kill()
        assert track(ingest, key, "late-1").status_code == 200  # accepted into the broker, nobody applies it
        for _ in range(10):  # reads go on with the consumer gone
            assert profile_status(api, "known-1") == 200
            assert readiness(api).status_code == 200
            time.sleep(0.3)
        assert profile_status(api, "late-1") == 404

        consumer.start()
        consumer.wait_ready()
        wait_for(lambda: profile_status(api, "late-1") == 200, what="late-1 applied by the restarted consumer")
    finally:
        for process in processes:
            process.stop()


def test_the_analytics_pool_process_dies_with_a_killed_stage_engine(infra: Infra, tmp_path: Path) -> None:
    config = infra.stack_config(api_tokens=API_TOKEN)
    infra.prepare(config, services=[STAGE_ENGINE])
    service = ServiceProcess(STAGE_ENGINE, config, tmp_path / "stage-engine.log")
    try:
        service.start()
        service.wait_ready()
        assert service.process is not None
        pid = service.process.pid
        # The first scheduled refresh comes at once (none stored yet) and starts the pool's process; once it
        # is stored, that process has imported what it runs and set itself up (the pool's initializer).
        wait_for(lambda: httpx.get(service.url + "/v1/analytics/clv", headers=bearer(), timeout=10
                                   ).json()["scored_at"] is not None, what="the first scheduled refresh")
        assert any("spawn_main" in cmd for cmd in children(pid).values()), children(pid)
        spawned = {child: cmd for child, cmd in children(pid).items() if "multiprocessing" in cmd}
        service.kill()
        deadline = time.monotonic() + 5
        while any(alive(child) for child in spawned):
            assert time.monotonic() < deadline, \
                f"still running 5 s after the service was killed: {[spawned[c] for c in spawned if alive(c)]}"
            time.sleep(0.1)
    finally:
        service.stop()


def test_ingest_stays_ready_and_accepts_events_while_its_postgresql_is_down(infra: Infra, tmp_path: Path) -> None:
    postgres = EmbeddedPostgres(tmp_path / "postgres", free_port(), durable=False)
    postgres.start()
    config = infra.stack_config(api_tokens=API_TOKEN)
    config = dataclasses.replace(config, postgres_url=postgres.server_url)
    ingest = ServiceProcess(INGEST, config, tmp_path / "ingest.log")
    try:
        asyncio.run(create_databases(postgres.server_url, [config.database_url(INGEST).rsplit("/", 1)[1]]))
        asyncio.run(create_topics(config))
        run_module(INGEST, config, "migrate")
        ingest.start()
        ingest.wait_ready()
        key = run_module(INGEST, config, "create-key", "bad-day", "--server").strip()
        wait_until_key_works(ingest.url, key)
        assert set(readiness(ingest).json()["checks"]) == {"broker", "topics", "keys", "workers"}

        assert postgres.process is not None
        os.kill(postgres.process.pid, signal.SIGINT)  # fast shutdown: connected clients do not hold it up
        postgres.process.wait(timeout=30)
        for _ in range(8):  # several key refreshes fail meanwhile (every second)
            ready = readiness(ingest)
            assert ready.status_code == 200, ready.text
            assert track(ingest, key, "while-the-database-is-down").status_code == 200
            time.sleep(0.5)
    finally:
        ingest.stop()
        postgres.stop()
