"""Traces leave over OTLP/HTTP when the standard variables ask for it: a process configured as a service is
(`configure_tracing` with `OTEL_EXPORTER_OTLP_ENDPOINT` only) posts its spans to a real HTTP receiver, and the
body parses as the OTLP protobuf `ExportTraceServiceRequest` with the service's name and the span. The process
is a child: the SDK's provider is set once per process, and the test's own provider must not be it."""

from __future__ import annotations

import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

CHILD = """
from opentelemetry import trace
from lifecycle_shared.tracing import configure_tracing, tracer
assert configure_tracing(service="lifecycle-ingest")
with tracer().start_as_current_span("POST /v1/track") as span:
    span.set_attribute("lifecycle.event_type", "touchpoint.track")
trace.get_tracer_provider().shutdown()  # flushes the batch
"""


def test_spans_are_exported_over_otlp_http_to_the_configured_endpoint():
    received: list[tuple[str, str, bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers.get("Content-Type", ""), body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {"PATH": "/usr/bin:/bin", "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_port}"}
        done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    finally:
        server.shutdown()
    assert [path for path, _, _ in received] == ["/v1/traces"]
    _, content_type, body = received[0]
    assert content_type == "application/x-protobuf"
    request = ExportTraceServiceRequest.FromString(body)
    [resource_spans] = request.resource_spans
    attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert attributes["service.name"] == "lifecycle-ingest"
    spans = [span for scope in resource_spans.scope_spans for span in scope.spans]
    assert [span.name for span in spans] == ["POST /v1/track"]
    assert {a.key: a.value.string_value for a in spans[0].attributes} == {"lifecycle.event_type": "touchpoint.track"}
