"""The stage engine seen from outside, for an import: how far its consumer has got (its /metrics), waiting
until it has applied what was sent, and asking it for a refresh of the figures (admin token)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from lifecycle_devstack.services import BY_NAME


def answering(service: str) -> str | None:
    """The dev stack's `service` on `up`'s default port, if it answers there."""
    url = f"http://127.0.0.1:{BY_NAME[service].default_port}"
    try:
        return url if httpx.get(url + "/readyz", timeout=2).status_code == 200 else None
    except httpx.HTTPError:
        return None


def running_stage_engine() -> str | None:
    """The dev stack's stage engine on `up`'s default port, if it answers there."""
    return answering("stage-engine")


CONSUMER = "stage-engine"  # the stage engine's consumer group: its metrics' `consumer` label


def consumer_progress(metrics: str) -> tuple[float, float | None]:
    """From the stage engine's /metrics: the events its consumer has taken (any outcome) and its lag
    summed over partitions (None before its first commit)."""
    consumed, lag = 0.0, None
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.labels.get("consumer") != CONSUMER:
                continue
            if sample.name == "lifecycle_events_consumed_total":
                consumed += sample.value
            elif sample.name == "lifecycle_consumer_lag":
                lag = (lag or 0.0) + sample.value
    return consumed, lag


async def progress(client: httpx.AsyncClient) -> tuple[float, float | None]:
    response = await client.get("/metrics")
    response.raise_for_status()
    return consumer_progress(response.text)


async def wait_until_applied(client: httpx.AsyncClient, *, baseline: float, sent: int, timeout_s: float,
                             quiet_s: float = 3.0, poll_s: float = 0.5) -> bool:
    """Whether the stage engine caught up within `timeout_s`: it counted at least `sent` more events than
    `baseline`, or its lag is zero and its count stood still for `quiet_s` after moving."""
    deadline = time.monotonic() + timeout_s
    last, still_since = baseline, time.monotonic()
    while time.monotonic() < deadline:
        consumed, lag = await progress(client)
        if consumed - baseline >= sent:
            return True
        now = time.monotonic()
        if consumed != last:
            last, still_since = consumed, now
        elif consumed > baseline and not lag and now - still_since >= quiet_s:
            return True
        await asyncio.sleep(poll_s)
    return False


async def refresh_figures(client: httpx.AsyncClient, *, admin_token: str, timeout_s: float,
                          poll_s: float = 1.0) -> dict[str, Any]:
    """Ask for a full refresh and wait for it: the finished fit row (status `done` or `failed`)."""
    headers = {"authorization": f"Bearer {admin_token}"}
    asked = await client.post("/v1/admin/analytics/fits", json={}, headers=headers)
    if asked.status_code in (401, 403):
        raise RefreshRefused(f"the stage engine refused the admin token ({asked.status_code} {asked.text[:200]})")
    asked.raise_for_status()
    fit = asked.json()
    deadline = time.monotonic() + timeout_s
    while fit["status"] not in ("done", "failed"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the refresh {fit['id']} did not finish within {timeout_s:.0f} s (it goes on)")
        await asyncio.sleep(poll_s)
        found = await client.get(f"/v1/admin/analytics/fits/{fit['id']}", headers=headers)
        found.raise_for_status()
        fit = found.json()
    return fit


class RefreshRefused(Exception):
    pass
