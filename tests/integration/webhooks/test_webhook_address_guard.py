"""The address guard of production mode: an endpoint is a URL a tenant chose, so private, loopback,
link-local and metadata addresses are refused at connect time, the checked address is the one connected to,
and redirects are not followed."""

from __future__ import annotations

import httpx
import pytest
from lifecycle_messaging.workers.webhook_http import AddressRefused, GuardedTransport, WebhookClient, system_resolve

from tests.support.webhook_delivery import (
    Clock,
    add_endpoint,
    consume,
    deliveries,
    settings,
    stage_change,
    worker_rounds,
)
from tests.support.webhook_receivers import Reply, always, receiver, self_signed


async def post_once(url: str, *, allow_private: bool, resolve=system_resolve, verify=True):
    """One POST of `{}` through the worker's client (its guard, timeouts and caps)."""
    client = WebhookClient(allow_private=allow_private, connect_timeout_s=2, timeout_s=3, max_response_bytes=1024,
                           resolve=resolve, verify=verify)
    try:
        return await client.post(url, headers={}, body=b"{}")
    finally:
        await client.aclose()


def resolving(table: dict[str, list[str]], calls: list[str] | None = None):
    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        return table[host]

    return resolve


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/hook", "https://10.0.0.1/hook",
                                 "https://169.254.169.254/latest/meta-data", "http://[::1]:{port}/hook",
                                 "https://rebind.test:{port}/hook", "https://mixed.test/hook", "http://localhost:{port}/"])
async def test_production_refuses_private_loopback_link_local_and_metadata_targets_at_connect_time(url):
    async with receiver(always(Reply(200))) as target:
        port = target.url.split(":")[2].split("/")[0]
        names = {"rebind.test": ["127.0.0.1"], "mixed.test": ["93.184.215.14", "10.1.2.3"], "localhost": ["127.0.0.1"]}
        answer = await post_once(url.format(port=port), allow_private=False, resolve=resolving(names))
        assert answer.status is None and answer.error is not None and answer.error.startswith("refused: the target is")
        assert target.requests == []


async def test_production_refuses_localhost_through_the_system_resolver():
    transport = GuardedTransport(allow_private=False)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(AddressRefused):
            await client.post("http://localhost:9/hook")


async def test_the_checked_address_is_the_one_connected_to_with_the_host_header_kept():
    async with receiver(always(Reply(200))) as target:
        port = target.url.split(":")[2].split("/")[0]
        calls: list[str] = []
        answer = await post_once(f"http://hooks.test:{port}/in", allow_private=True,
                                 resolve=resolving({"hooks.test": ["127.0.0.1"]}, calls))
        assert answer.status == 200 and calls == ["hooks.test"]  # resolved once: checked and used
        assert target.requests[0].headers["host"] == f"hooks.test:{port}"


async def test_https_connects_to_the_checked_address_with_the_name_for_sni_and_the_certificate_check():
    server_tls, trusting = self_signed("hooks.test")
    async with receiver(always(Reply(200)), tls=server_tls) as target:
        port = target.url.split(":")[2].split("/")[0]

        async def post(name: str, address: str):
            return await post_once(f"https://{name}:{port}/in", allow_private=True,
                                   resolve=resolving({name: [address]}), verify=trusting)

        answer = await post("hooks.test", "127.0.0.1")
        assert answer.status == 200, answer.error
        assert target.requests[0].headers["host"] == f"hooks.test:{port}"
        # Another name resolving to the same address: the certificate is checked against the name asked for.
        other = await post("other.test", "127.0.0.1")
        assert other.status is None and other.error == "ConnectError"
        assert len(target.requests) == 1


async def test_the_worker_in_production_mode_never_reaches_a_loopback_receiver(engine):
    clock, config = Clock(), settings(webhooks_allow_insecure_targets=False)
    async with receiver(always(Reply(200))) as target:
        endpoint = await add_endpoint(engine, target.url)  # as if registered before the rules were tightened
        await consume(engine, [stage_change("purchase")])
        async with worker_rounds(engine, config, clock) as run_round:
            await run_round()
        (row,) = await deliveries(engine, endpoint)
        assert row.status == "pending" and row.last_error == "refused: the target is a loopback address"
        assert target.requests == []


async def test_redirects_are_not_followed():
    async with receiver(always(Reply(200))) as inner, \
            receiver(always(Reply(307, headers=(("Location", "http://127.0.0.1:1/elsewhere"),)))) as redirecting:
        answer = await post_once(redirecting.url, allow_private=True)
        assert answer.status == 307 and inner.requests == []

