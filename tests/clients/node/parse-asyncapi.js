#!/usr/bin/env node
// Parses an AsyncAPI document with AsyncAPI's own parser (@asyncapi/parser: schema validation, Spectral
// rules, $ref resolution) and prints what it reported as one JSON object on stdout.
//
//   node parse-asyncapi.js ../../../docs/asyncapi.json
//
// Severity as the parser reports it: 0 error, 1 warning, 2 information, 3 hint. `document` is false when
// the parser could not produce one (an error diagnostic stops it).
'use strict';

const fs = require('node:fs');
const { Parser } = require('@asyncapi/parser');

async function main() {
  const path = process.argv[2];
  if (!path) throw new Error('usage: node parse-asyncapi.js <asyncapi document>');
  const parser = new Parser();
  const { document, diagnostics } = await parser.parse(fs.readFileSync(path, 'utf8'), { source: path });
  const report = {
    parser: require('@asyncapi/parser/package.json').version,
    document: Boolean(document),
    diagnostics: diagnostics.map((d) => ({
      severity: d.severity, code: d.code, message: d.message, path: (d.path || []).join('/'),
    })),
  };
  if (document) {
    report.version = document.version();
    report.channels = document.channels().all().map((channel) => channel.address());
    report.schemas = document.components().schemas().all().map((schema) => schema.id());
    // The history_corrected data's `added` items, as the parser resolved them.
    const history = document.components().schemas().get('HistoryCorrectedData');
    const items = history && history.properties() && history.properties().added
      ? history.properties().added.items() : null;
    report.historyAddedItems = items && !Array.isArray(items)
      ? { title: items.title() || null, required: items.required() || [] } : null;
  }
  process.stdout.write(JSON.stringify(report) + '\n');
}

main().catch((error) => {
  process.stdout.write(JSON.stringify({ fatal: String(error && error.stack || error) }) + '\n');
  process.exitCode = 1;
});
