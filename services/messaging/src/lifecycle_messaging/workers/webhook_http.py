"""Posting a webhook to an address that was checked: resolve, refuse what is not public, then connect to
the checked address with the original Host header and TLS server name (SNI, certificate check), so a name
that resolves differently a moment later (DNS rebinding) cannot reach an inner address. No redirects are
followed, the response body is read up to a cap, and the whole exchange is bounded in time."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from lifecycle_messaging.domain.webhooks import address_refusal, ip_literal

Resolver = Callable[[str, int], Awaitable[list[str]]]


class AddressRefused(httpx.TransportError):
    """The target resolves to an address deliveries may not reach (its text names the kind, not the host)."""


async def system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that connects only to addresses `address_refusal` allows (every address a name
    resolves to must be allowed: a mix is a rebinding attempt), and to exactly the address it checked."""

    def __init__(self, *, allow_private: bool, resolve: Resolver = system_resolve,
                 verify: ssl.SSLContext | bool = True) -> None:
        self._allow_private = allow_private
        self._resolve = resolve
        self._inner = httpx.AsyncHTTPTransport(retries=0, verify=verify)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        literal = ip_literal(host)
        if literal is not None:
            addresses = [literal]
        else:
            port = request.url.port or (443 if request.url.scheme == "https" else 80)
            try:
                addresses = await self._resolve(host, port)
            except OSError as error:
                raise httpx.ConnectError(f"name resolution failed ({type(error).__name__})", request=request) from None
        if not addresses:
            raise httpx.ConnectError("the name resolves to no address", request=request)
        for address in addresses:
            if refusal := address_refusal(address, allow_private=self._allow_private):
                raise AddressRefused(f"refused: the target is {refusal}", request=request)
        if literal is None:
            # The Host header was set from the original URL when the request was built; SNI and the
            # certificate check follow the original name, the connection the checked address.
            request.url = request.url.copy_with(host=addresses[0])
            if request.url.scheme == "https":
                request.extensions = {**request.extensions, "sni_hostname": host}
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer (refused address, connection error, timeout)
    retry_after: str | None
    latency_ms: int
    error: str | None


class WebhookClient:
    """One pooled client for every endpoint: connect timeout, total timeout, response bytes read."""

    def __init__(self, *, allow_private: bool, connect_timeout_s: float, timeout_s: float, max_response_bytes: int,
                 resolve: Resolver = system_resolve, verify: ssl.SSLContext | bool = True) -> None:
        self._timeout_s = timeout_s
        self._max_response_bytes = max_response_bytes
        self._client = httpx.AsyncClient(
            transport=GuardedTransport(allow_private=allow_private, resolve=resolve, verify=verify),
            follow_redirects=False,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s), trust_env=False,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50))

    async def post(self, url: str, *, headers: dict[str, str], body: bytes) -> Answer:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout_s):
                async with self._client.stream("POST", url, content=body, headers=headers) as response:
                    read = 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read >= self._max_response_bytes:
                            break
                    return Answer(response.status_code, response.headers.get("retry-after"), _ms(started), None)
        except TimeoutError:
            return Answer(None, None, _ms(started), f"no answer within {self._timeout_s:g} s")
        except AddressRefused as error:
            return Answer(None, None, _ms(started), str(error))
        except httpx.HTTPError as error:  # the class only: a message may quote the URL
            return Answer(None, None, _ms(started), type(error).__name__)

    async def aclose(self) -> None:
        await self._client.aclose()


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
