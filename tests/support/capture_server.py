"""A tiny HTTP server that records what a client library sends (method, path, headers, body) and answers
200 `{"success": true}` with permissive CORS: to learn and pin each library's wire format without ingest."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Captured:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    raw: bytes  # as received (gzip still compressed)
    body: bytes  # decompressed when Content-Encoding: gzip

    def json(self):
        return json.loads(self.body)


@dataclass
class CaptureServer:
    url: str
    requests: list[Captured] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def posts(self) -> list[Captured]:
        with self.lock:
            return [r for r in self.requests if r.method == "POST"]


@contextmanager
def capture_server() -> Iterator[CaptureServer]:
    state = CaptureServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _cors(self) -> None:
            self.send_header("Access-Control-Allow-Origin", self.headers.get("Origin") or "*")
            self.send_header("Access-Control-Allow-Headers", self.headers.get("Access-Control-Request-Headers") or "*")
            self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")

        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
            with state.lock:
                state.requests.append(Captured(self.command, self.path,
                                               {k.lower(): v for k, v in self.headers.items()}, raw, body))

        def do_OPTIONS(self) -> None:  # noqa: N802 - http.server hook
            self._record()
            self.send_response(204)
            self._cors()
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:  # noqa: N802 - http.server hook
            self._record()
            payload = b'{"success": true}'
            self.send_response(200)
            self._cors()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
