"""Network faults for tests: a TCP proxy that can stall every connection through it.

    proxy = StallingProxy(target_port=broker_port); await proxy.start()
    proxy.stall()    # bytes are read but held: peers see a broker that stopped answering
    proxy.resume()   # held bytes flow again, in order

A Kafka broker must advertise the proxy's address (EmbeddedBroker(advertised_port=...)), or
clients would reach it directly after their first metadata request.
"""

from __future__ import annotations

import asyncio
import contextlib

from lifecycle_devstack.ports import free_port


class StallingProxy:
    def __init__(self, *, target_port: int, port: int | None = None) -> None:
        self.port = port or free_port()
        self._target_port = target_port
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def stop(self) -> None:
        if self._server:
            self._server.close()
        for task in self._pumps:
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            target_reader, target_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        except OSError:
            client_writer.close()
            return
        for reader, writer in ((client_reader, target_writer), (target_reader, client_writer)):
            task = asyncio.create_task(self._pump(reader, writer))
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                await self._flowing.wait()
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
