"""Webhook receivers for the tests: real HTTP/1.1 servers on asyncio (keep-alive, Content-Length bodies) that
record every request and answer as scripted: fast, slow, 500 then 200, 429 with Retry-After, 410, or accept
the connection and never answer (a blackhole)."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0
    hang: bool = False  # read the request, never answer


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float  # time.monotonic() when the body was read


@dataclass
class Receiver:
    url: str
    script: Callable[[int], Reply]  # the reply to the n-th request (0-based)
    requests: list[Received] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def until(self, count: int, timeout_s: float = 30.0) -> None:
        """Wait until `count` requests have arrived."""
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: len(self.requests) >= count), timeout_s)

    def ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.requests]


def always(reply: Reply) -> Callable[[int], Reply]:
    return lambda _: reply


def first_then(first: Reply, times: int, then: Reply) -> Callable[[int], Reply]:
    return lambda n: first if n < times else then


@asynccontextmanager
async def receiver(script: Callable[[int], Reply], *, host: str = "127.0.0.1",
                   tls: ssl.SSLContext | None = None) -> AsyncIterator[Receiver]:
    state = Receiver(url="", script=script)
    handlers: set[asyncio.Task] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                reply = state.script(len(state.requests))
                async with state.arrived:
                    state.requests.append(Received(path, headers, body, time.monotonic()))
                    state.arrived.notify_all()
                if reply.hang:
                    await asyncio.sleep(3600)
                if reply.delay_s:
                    await asyncio.sleep(reply.delay_s)
                text = b"ok"
                extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers)
                writer.write(f"HTTP/1.1 {reply.status} X\r\nContent-Length: {len(text)}\r\n{extra}\r\n".encode() + text)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            handlers.discard(asyncio.current_task())

    server = await asyncio.start_server(serve, host, 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    state.url = f"{'https' if tls else 'http'}://{host if ':' not in host else f'[{host}]'}:{port}/hook"
    try:
        yield state
    finally:
        server.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await asyncio.wait_for(server.wait_closed(), 5)


def self_signed(name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A certificate for `name` (its only subject alternative name): the server's TLS context, and a client
    context that trusts exactly that certificate (hostname checked)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)  # valid whatever the clock says (year-ahead runs)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=365 * 30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory() as folder:
        cert_file, key_file = f"{folder}/cert.pem", f"{folder}/key.pem"
        with open(cert_file, "wb") as out:
            out.write(pem)
        with open(key_file, "wb") as out:
            out.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
        server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cadata=pem.decode())
    return server, client
