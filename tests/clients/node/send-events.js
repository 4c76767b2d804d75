#!/usr/bin/env node
// Drives the real @segment/analytics-node against a host: every call type, then closeAndFlush(), and
// prints what the library reported (errors, HTTP exchanges) as one JSON object on stdout.
//
//   node send-events.js '{"host": "http://127.0.0.1:8000", "writeKey": "lc_sk_...", "userId": "ann",
//                         "anonymousId": "visitor-1", "groupId": "acme", "gzip": false}'
//
// analytics-node has no compression option (its publisher always sends JSON as is). It does take a
// custom `httpClient` (a fetch-compatible function), its documented extension point: with "gzip": true
// that function gzips the body it is handed and adds `Content-Encoding: gzip`, as a proxy-minded user
// would; without it the library's own request goes out untouched (only observed on the way).
'use strict';

const zlib = require('node:zlib');
const { Analytics } = require('@segment/analytics-node');

async function main() {
  const spec = JSON.parse(process.argv[2] || process.env.SEND_EVENTS_SPEC || '{}');
  for (const field of ['host', 'writeKey', 'userId', 'anonymousId', 'groupId']) {
    if (!spec[field]) throw new Error(`missing ${field}`);
  }
  const report = { library: libraryVersion(), errors: [], callbacks: [], exchanges: [] };

  // Fetch as the library would (global fetch), recording each exchange with the response body.
  const httpClient = async (url, init) => {
    let { body, headers } = init;
    if (spec.gzip) {
      body = zlib.gzipSync(Buffer.from(body, 'utf8'));
      headers = { ...headers, 'Content-Encoding': 'gzip' };
    }
    const response = await fetch(url, { ...init, body, headers });
    const text = await response.clone().text();
    report.exchanges.push({
      url, method: init.method, requestHeaders: redact(headers), requestBody: JSON.parse(init.body),
      status: response.status, responseBody: text,
    });
    return response;
  };

  const analytics = new Analytics({
    writeKey: spec.writeKey, host: spec.host, httpClient, maxRetries: 2, flushInterval: 200,
    flushAt: spec.flushAt || 15,
  });
  analytics.on('error', (err) => report.errors.push({ code: err.code, reason: String(err.reason) }));
  const done = (type) => (err) => report.callbacks.push({ type, error: err ? String(err) : null });

  const { userId, anonymousId, groupId } = spec;
  const tag = spec.tag || 'node';
  analytics.page({ anonymousId, category: 'Docs', name: 'Getting Started', properties: { path: '/docs/start' } },
    done('page'));
  analytics.track({ anonymousId, event: 'Product Viewed', properties: { sku: `${tag}-sku-1`, price: 19.99 } },
    done('track'));
  analytics.identify({ userId, anonymousId, traits: { email: `${userId}@example.com`, name: spec.personName } },
    done('identify'));
  analytics.alias({ userId, previousId: anonymousId }, done('alias'));
  analytics.group({ userId, groupId, traits: { name: spec.groupName, plan: 'enterprise' } }, done('group'));
  if (typeof analytics.screen === 'function') {
    analytics.screen({ userId, category: 'Checkout', name: 'Cart', properties: { items: 2 } }, done('screen'));
  }
  analytics.track({ userId, event: 'Order Completed',
    properties: { order_id: `${tag}-order-1`, revenue: 42.5, currency: 'USD' } }, done('track'));
  await analytics.closeAndFlush({ timeout: 30000 });
  process.stdout.write(JSON.stringify(report) + '\n');
}

function redact(headers) {
  const out = {};
  for (const [name, value] of Object.entries(headers || {})) {
    out[name] = name.toLowerCase() === 'authorization' ? value.replace(/ .*/, ' <redacted>') : value;
  }
  return out;
}

function libraryVersion() {
  return require('@segment/analytics-node/package.json').version;
}

main().catch((error) => {
  process.stdout.write(JSON.stringify({ fatal: String(error && error.stack || error) }) + '\n');
  process.exitCode = 1;
});
