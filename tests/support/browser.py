"""Browser analytics libraries in headless Chromium: a local static site serving the npm packages' builds
and a Playwright driver that loads one, makes every call and records every request the page makes.

analytics-next: its UMD build (every lazily loaded chunk included, so nothing comes from Segment's CDN),
loaded with inline `cdnSettings`. RudderStack's v3 SDK (@rudderstack/analytics-js): its bundled UMD build
(plugins inside, none fetched), loaded with the source config inline (`getSourceConfig`), so it never
asks RudderStack's control plane."""

from __future__ import annotations

import json
import mimetypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# window.analytics._cdn is where the UMD build looks, when it is evaluated, for its CDN: webpack's public
# path for the lazily loaded chunks becomes `<_cdn>/analytics-next/bundles/`. Pointing it at this site
# keeps every chunk local. (A plain object is not a snippet buffer: the library ignores it otherwise.)
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Lifecycle shop</title>
<link rel="icon" href="data:,">
<script>window.analytics = {_cdn: window.location.origin};</script>
<script src="/analytics-next/bundles/index.js"></script>
</head><body><h1>Lifecycle shop</h1></body></html>
"""

# Runs in the page: loads analytics-next with the settings inline (no settings fetch from the CDN),
# makes every call in a storefront's order and reports what the library said about each.
SCENARIO = """
async (cfg) => {
  const errors = [];
  const segmentio = {apiKey: cfg.writeKey, apiHost: cfg.apiHost, protocol: 'http'};
  if (cfg.deliveryStrategy) segmentio.deliveryStrategy = cfg.deliveryStrategy;
  const [analytics] = await window.AnalyticsNext.AnalyticsBrowser.load(
    {writeKey: cfg.writeKey, cdnURL: window.location.origin,
     cdnSettings: {integrations: {'Segment.io': segmentio}, metrics: {sampleRate: 0}}},
    {disableClientPersistence: true, retryQueue: false});
  analytics.on('error', (e) => errors.push({code: e.code, reason: String(e.reason)}));
  const calls = [];
  const record = (type, ctx) => {
    const failed = ctx.failedDelivery && ctx.failedDelivery();
    calls.push({type, messageId: ctx.event.messageId, failed: failed ? String(failed.reason) : null});
  };
  const anonymousId = analytics.user().anonymousId();
  record('page', await analytics.page('Docs', 'Getting Started', {section: 'intro'}));
  record('track', await analytics.track('Product Viewed', {sku: cfg.tag + '-sku', price: 19.99}));
  record('alias', await analytics.alias(cfg.userId));
  record('identify', await analytics.identify(cfg.userId, {email: cfg.email, name: cfg.personName}));
  record('group', await analytics.group(cfg.groupId, {name: cfg.groupName, plan: 'team'}));
  for (const extra of cfg.extraTracks || []) {
    record('track', await analytics.track(extra.event, extra.properties));
  }
  return {anonymousId, calls, errors, version: window.AnalyticsNext.AnalyticsBrowser.VERSION || null};
}
"""

RUDDERSTACK_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Lifecycle shop</title>
<link rel="icon" href="data:,">
<script src="/rudderstack/index.js"></script>
</head><body><h1>Lifecycle shop</h1></body></html>
"""
RUDDERSTACK_BUILD = ("@rudderstack", "analytics-js", "dist", "npm", "modern", "bundled", "umd")

# Runs in the page: loads RudderStack's SDK against `cfg.dataPlaneUrl` with the source config given inline
# (a source with no destinations, no error or metrics reporting), only plugins bundled in the build, no
# polyfill; then the calls a storefront makes: anonymous page and track (the SDK sends `userId: ""` on
# them), identify, alias (the anonymous id to the user) and group. The callbacks say an event was queued,
# not delivered: delivery is read from the network.
RUDDERSTACK_SCENARIO = """
async (cfg) => {
  const sourceConfig = {source: {id: 'lifecycle-tests', name: 'storefront-web', workspaceId: 'local',
    enabled: true, destinations: [],
    config: {statsCollection: {errors: {enabled: false}, metrics: {enabled: false}}}}};
  const analytics = new window.rudderanalytics.RudderAnalytics();
  const errors = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('RudderStack SDK not ready after 15 s')), 15000);
    analytics.load(cfg.writeKey, cfg.dataPlaneUrl, {
      getSourceConfig: () => sourceConfig, plugins: ['XhrQueue', 'StorageEncryption', 'StorageMigrator'],
      polyfillIfRequired: false, loadIntegration: false, logLevel: 'WARN',
      onLoaded: () => {}, onError: (e) => errors.push(String(e && e.message || e))});
    analytics.ready(() => { clearTimeout(timer); resolve(); });
  });
  const calls = [];
  const call = (type, invoke) => new Promise((resolve) => invoke((message) => {
    calls.push({type, messageId: message && message.messageId, failed: null});
    resolve();
  }));
  const anonymousId = analytics.getAnonymousId();
  await call('page', (done) => analytics.page('Docs', 'Getting Started', {section: 'intro'}, done));
  await call('track', (done) => analytics.track('Product Viewed', {sku: cfg.tag + '-sku', price: 19.99}, done));
  await call('identify', (done) => analytics.identify(cfg.userId, {email: cfg.email, name: cfg.personName}, done));
  await call('alias', (done) => analytics.alias(cfg.userId, anonymousId, done));
  await call('group', (done) => analytics.group(cfg.groupId, {name: cfg.groupName, plan: 'team'}, done));
  return {anonymousId, calls, errors, version: analytics.getVersion ? analytics.getVersion() : null};
}
"""

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@contextmanager
def static_site(node_modules: Path) -> Iterator[str]:
    """http://127.0.0.1:<port> serving PAGE at / and analytics-next's dist/umd at /analytics-next/bundles/;
    RUDDERSTACK_PAGE at /rudderstack.html and RudderStack's bundled UMD build at /rudderstack/."""
    bundles = (node_modules / "@segment" / "analytics-next" / "dist" / "umd").resolve()
    rudderstack = node_modules.joinpath(*RUDDERSTACK_BUILD).resolve()
    for build, name in ((bundles, "analytics-next UMD"), (rudderstack, "RudderStack bundled UMD")):
        if not (build / "index.js").is_file():
            raise FileNotFoundError(f"no {name} build in {build}")
    served = {"/analytics-next/bundles/": bundles, "/rudderstack/": rudderstack}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server hook
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                return self._send(200, PAGE.encode(), "text/html; charset=utf-8")
            if path == "/rudderstack.html":
                return self._send(200, RUDDERSTACK_PAGE.encode(), "text/html; charset=utf-8")
            for prefix, root in served.items():
                if path.startswith(prefix):
                    file = (root / path.removeprefix(prefix)).resolve()
                    if file.is_relative_to(root) and file.is_file():
                        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                        return self._send(200, file.read_bytes(), kind)
            return self._send(404, b"not found", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Exchange:
    method: str
    url: str
    request_headers: dict[str, str]
    body: str | None
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)


@dataclass
class BrowserRun:
    result: dict  # what SCENARIO returned: anonymousId, calls, errors
    requests: list[Exchange]  # every request the page made, in order, with its response when one came
    console: list[str]

    def to(self, origin: str, prefix: str = "/v1/") -> list[Exchange]:
        return [r for r in self.requests if r.url.startswith(origin + prefix)]


async def run_scenario(chromium: Path, site: str, config: dict, *, api_origin: str, settle_s: float = 15,
                       page_path: str = "/", script: str = SCENARIO) -> BrowserRun:
    """Open `site` + `page_path` in headless Chromium, run `script` (SCENARIO: analytics-next) with `config`,
    then wait until every request the page started towards `api_origin` has an answer (batching sends after
    its timeout) or `settle_s` passes."""
    import asyncio
    import time

    from playwright.async_api import async_playwright

    requests: list[Exchange] = []
    console: list[str] = []
    by_request: dict[int, Exchange] = {}

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context()
            page = await context.new_page()

            def on_request(request) -> None:
                exchange = Exchange(request.method, request.url, dict(request.headers), request.post_data)
                by_request[id(request)] = exchange
                requests.append(exchange)

            async def on_response(response) -> None:
                exchange = by_request.get(id(response.request))
                if exchange is not None:
                    exchange.status = response.status
                    exchange.response_headers = await response.all_headers()

            def on_failed(request) -> None:
                exchange = by_request.get(id(request))
                if exchange is not None:
                    exchange.status = -1
                    exchange.response_headers = {"failure": str(request.failure)}

            page.on("request", on_request)
            page.on("response", on_response)
            page.on("requestfailed", on_failed)
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
            await page.goto(site + page_path)
            result = await page.evaluate(script, config)
            expected = config.get("expectRequests", 1)
            deadline = time.monotonic() + settle_s
            while time.monotonic() < deadline:
                api = [r for r in requests if r.url.startswith(api_origin) and r.method == "POST"]
                if len(api) >= expected and all(r.status is not None for r in api):
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.3)  # anything still on its way (a retry) shows up
            await context.close()
        finally:
            await browser.close()
    return BrowserRun(result=result, requests=requests, console=console)


def posted_events(run: BrowserRun, api_origin: str) -> list[tuple[str, dict]]:
    """(path, event) for every event the page POSTed to `api_origin`, batches unpacked."""
    events = []
    for exchange in run.requests:
        if exchange.method != "POST" or not exchange.url.startswith(api_origin) or not exchange.body:
            continue
        path = exchange.url.removeprefix(api_origin)
        body = json.loads(exchange.body)
        events += [(path, item) for item in body["batch"]] if "batch" in body else [(path, body)]
    return events
