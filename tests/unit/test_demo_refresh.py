"""`python3 dev.py demo`'s closing refresh: how it reads the stage engine's progress from /metrics, and
when it judges the events applied (no I/O: a fake stage engine behind httpx's MockTransport)."""

from __future__ import annotations

import httpx
from lifecycle_devstack.figures import consumer_progress, refresh_figures, wait_until_applied

METRICS = """# HELP lifecycle_events_consumed_total Events taken from Kafka
# TYPE lifecycle_events_consumed_total counter
lifecycle_events_consumed_total{{consumer="stage-engine",outcome="applied"}} {applied}
lifecycle_events_consumed_total{{consumer="stage-engine",outcome="duplicate"}} 5.0
lifecycle_events_consumed_total{{consumer="loyalty",outcome="applied"}} 1000.0
# HELP lifecycle_consumer_lag Records behind the high watermark
# TYPE lifecycle_consumer_lag gauge
lifecycle_consumer_lag{{consumer="stage-engine",partition="0",topic="touchpoints.v1"}} {lag}
lifecycle_consumer_lag{{consumer="stage-engine",partition="1",topic="touchpoints.v1"}} 0.0
"""


def test_progress_counts_the_stage_engines_consumer_only():
    assert consumer_progress(METRICS.format(applied=20.0, lag=3.0)) == (25.0, 3.0)
    assert consumer_progress("") == (0.0, None)


def metrics_client(answers: list[tuple[float, float]]) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        applied, lag = answers.pop(0) if len(answers) > 1 else answers[0]
        return httpx.Response(200, text=METRICS.format(applied=applied, lag=lag))

    return httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://stage-engine")


async def test_applied_once_every_event_sent_is_counted():
    async with metrics_client([(10.0, 4.0), (50.0, 2.0), (105.0, 0.0)]) as client:
        assert await wait_until_applied(client, baseline=15.0, sent=95, timeout_s=5, poll_s=0.01)


async def test_applied_when_the_lag_is_zero_and_the_count_stands_still_and_not_before():
    # Fewer counted than sent (e.g. events ingest took but a consumer never sees): the count standing still
    # with no lag is caught up.
    async with metrics_client([(10.0, 4.0), (40.0, 0.0)]) as client:
        assert await wait_until_applied(client, baseline=15.0, sent=95, timeout_s=5, quiet_s=0.05, poll_s=0.01)
    async with metrics_client([(15.0, 0.0)]) as client:  # nothing consumed since (15 + 5 duplicates): not yet
        assert not await wait_until_applied(client, baseline=20.0, sent=95, timeout_s=0.2, quiet_s=0.05,
                                            poll_s=0.01)
    async with metrics_client([(40.0, 7.0)]) as client:  # still behind
        assert not await wait_until_applied(client, baseline=15.0, sent=95, timeout_s=0.2, quiet_s=0.05,
                                            poll_s=0.01)


async def test_the_refresh_is_asked_for_with_the_admin_token_and_waited_for():
    seen: list[tuple[str, str, str | None]] = []
    states = iter(["queued", "running", "done"])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.headers.get("authorization")))
        status = next(states)
        return httpx.Response(202 if request.method == "POST" else 200,
                              json={"id": "f1", "status": status, "result": {"scored_customers": 3}})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://stage-engine") as client:
        fit = await refresh_figures(client, admin_token="adm", timeout_s=5, poll_s=0.01)
    assert fit["status"] == "done"
    assert seen == [("POST", "/v1/admin/analytics/fits", "Bearer adm"),
                    ("GET", "/v1/admin/analytics/fits/f1", "Bearer adm"),
                    ("GET", "/v1/admin/analytics/fits/f1", "Bearer adm")]
