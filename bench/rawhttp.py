"""A minimal HTTP/1.1 keep-alive client on asyncio streams, for load generation only.

Why not httpx here: in this environment one shared httpx.AsyncClient costs the load generator
~0.6-4 ms of CPU per request (httpcore's pool re-checks every connection on each request, and it
retries a failing `import sniffio` each time), which capped the generator at a few hundred
requests/s, below what ingest serves. This client spends tens of microseconds per request, so the
service, not the generator, is what gets measured. Servers see the same thing either way: N
keep-alive HTTP/1.1 connections. `--client httpx` in run.py switches back, for comparison.

Supports what the services answer: Content-Length or chunked bodies, keep-alive or close.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit


class Response:
    __slots__ = ("status_code", "content")

    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code, self.content = status_code, content

    def json(self):
        return json.loads(self.content)


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def roundtrip(self, head: bytes, body: bytes) -> tuple[Response, bool]:
        self.writer.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self.writer.write(body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        lower = raw.lower()
        keep_alive = b"connection: close" not in lower
        at = lower.find(b"content-length:")
        if at >= 0:
            length = int(lower[at + 15:lower.index(b"\r\n", at)])
            content = await self.reader.readexactly(length) if length else b""
        elif b"transfer-encoding: chunked" in lower:
            content = await self._chunked()
        else:
            content, keep_alive = await self.reader.read(), False
        return Response(status, content), keep_alive

    async def _chunked(self) -> bytes:
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Up to `size` keep-alive connections to one server, shared by any number of tasks."""

    def __init__(self, base_url: str, *, size: int, headers: dict[str, str] | None = None,
                 timeout_s: float = 30.0) -> None:
        parts = urlsplit(base_url)
        self._host, self._port = parts.hostname, parts.port or 80
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self._fixed = f"Host: {self._host}:{self._port}\r\n{extra}".encode()
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(size)
        self._timeout_s = timeout_s

    async def _connect(self) -> _Connection:
        return _Connection(*await asyncio.open_connection(self._host, self._port))

    async def request(self, method: str, path: str, body: bytes = b"") -> Response:
        head = b"%s %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n" % (
            method.encode(), path.encode(), self._fixed, len(body))
        async with self._slots:
            async with asyncio.timeout(self._timeout_s):
                for attempt in (0, 1):
                    reused = bool(self._idle) and attempt == 0  # the retry on a fresh one, not another idle one
                    conn = self._idle.pop() if reused else await self._connect()
                    try:
                        response, keep_alive = await conn.roundtrip(head, body)
                    except (OSError, asyncio.IncompleteReadError):
                        conn.close()
                        if reused and attempt == 0:
                            continue  # the server closed an idle keep-alive connection: once more, fresh
                        raise
                    (self._idle.append if keep_alive else lambda c: c.close())(conn)
                    return response
        raise AssertionError("unreachable")

    async def open(self, count: int, *, stagger_s: float) -> None:
        """Open `count` keep-alive connections one at a time, `stagger_s` apart, before any request.

        Opened all at once (what the first requests of N tasks do), they reach a server with several
        worker processes on one listening socket as one burst, and the first worker to wake accepts
        the whole burst (asyncio accepts every pending connection at once): the other workers get
        none. Clients that connect at different times spread across the workers by the race for
        each accept instead."""
        for _ in range(count):
            self._idle.append(await self._connect())
            await asyncio.sleep(stagger_s)

    async def post(self, path: str, body: bytes) -> Response:
        return await self.request("POST", path, body)

    async def get(self, path: str) -> Response:
        return await self.request("GET", path)

    async def aclose(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


class HttpxPool:
    """The same interface on one shared httpx.AsyncClient (the comparison client)."""

    def __init__(self, base_url: str, *, size: int, headers: dict[str, str] | None = None,
                 timeout_s: float = 30.0) -> None:
        import httpx

        self._client = httpx.AsyncClient(base_url=base_url, headers=headers or {}, timeout=timeout_s,
                                         limits=httpx.Limits(max_connections=size, max_keepalive_connections=size))

    async def open(self, count: int, *, stagger_s: float) -> None:
        """httpx opens its connections on demand: nothing to do."""

    async def post(self, path: str, body: bytes):
        return await self._client.post(path, content=body)

    async def get(self, path: str):
        return await self._client.get(path)

    async def aclose(self) -> None:
        await self._client.aclose()


def make_pool(kind: str, base_url: str, **options) -> Pool | HttpxPool:
    return (HttpxPool if kind == "httpx" else Pool)(base_url, **options)


TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (OSError, asyncio.IncompleteReadError, TimeoutError,
                                                      asyncio.LimitOverrunError)
try:
    import httpx as _httpx

    TRANSPORT_ERRORS += (_httpx.HTTPError,)
except ImportError:  # pragma: no cover
    pass
