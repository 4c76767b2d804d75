"""`python -m lifecycle_ingest.importer FILE [--url URL] [--write-key KEY] [--format ndjson|csv] [--batch-size N]`

Historical data into ingest's `/v1/import`: events published there carry `historical: true`, so what
they cause is recorded and nobody is messaged about it. One Segment call per NDJSON line, or per CSV row
(columns: `domain/imports.py`), posted in batches within ingest's limits with the key as the HTTP Basic
user. Lines without a messageId get one derived from their content: running the same file again is a
retry, applied once. 429, 5xx, 408 and connection errors are retried (honouring Retry-After); a refused
line is reported by its number with ingest's code and the fields at fault - never a value, since ids
and traits are personal data - and the rest of the file goes on. Exit status 0 when every line was
accepted, 1 otherwise, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import functools
import os
import random
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import httpx

from lifecycle_ingest.domain.imports import (
    InvalidColumns,
    UnreadableLine,
    csv_columns,
    csv_event,
    encoded,
    json_event,
    prepared,
)
from lifecycle_ingest.settings import IngestSettings

WRITE_KEY_ENV = "LIFECYCLE_IMPORT_WRITE_KEY"
IMPORT_PATH = "/v1/import"
# Ingest's limits (its settings' defaults): events and bytes per batch, and an event's bytes as published -
# larger than what is sent, so a line over it would certainly be refused.
_LIMITS = IngestSettings.model_fields
MAX_BATCH_EVENTS: int = _LIMITS["max_batch_events"].default
MAX_BATCH_BYTES: int = _LIMITS["max_batch_bytes"].default
MAX_EVENT_BYTES: int = _LIMITS["max_record_bytes"].default
EMPTY_BATCH = len(b'{"batch":[]}')
FORMATS = {".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv"}
RETRIED = frozenset({408, 429})  # and every 5xx
LONGEST_RETRY_AFTER_S = 900.0


class Line(NamedTuple):
    """One line (or CSV row, numbered by the line it starts on) as it is sent, or why it cannot be."""

    number: int
    body: bytes = b""
    code: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class RetryPolicy:
    """How often a batch is sent before the import stops, and how long it waits in between: what the
    server's Retry-After says, else exponential backoff with jitter."""

    attempts: int = 8
    first_s: float = 1.0
    longest_s: float = 60.0

    def delay(self, attempt: int, *, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, LONGEST_RETRY_AFTER_S)
        return min(self.longest_s, self.first_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


@dataclass
class Summary:
    """What became of the file's lines (`read` = sent + refused unsent)."""

    read: int = 0
    sent: int = 0
    accepted: int = 0
    refused: int = 0
    undelivered: int = 0
    stopped: str | None = None  # why the import stopped before the end of the file

    @property
    def complete(self) -> bool:
        return self.stopped is None and self.accepted == self.read

    def __str__(self) -> str:
        text = f"{self.read} lines: sent {self.sent}, accepted {self.accepted}, refused {self.refused}"
        if self.undelivered:
            text += f", not delivered {self.undelivered}"
        return text + (f"; stopped: {self.stopped}" if self.stopped else "")


class _Stop(Exception):
    """Nothing more can be sent: the key is refused, or ingest stayed unavailable."""


def read_lines(path: Path, file_format: str) -> Iterator[Line]:
    """The file's calls, in order, each encoded as sent (`domain.imports.prepared`) or refused with a reason."""
    if file_format == "csv":
        with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as file:
            yield from _csv_lines(file)
        return
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            if raw.strip():
                yield _line(number, functools.partial(_ndjson_event, raw))


def _ndjson_event(raw: bytes) -> dict[str, Any]:
    return json_event(raw.decode(errors="surrogateescape"))


def _csv_lines(file: TextIO) -> Iterator[Line]:
    reader = csv.reader(file)
    header = next(reader, None)
    if header is None:
        return
    columns = csv_columns(header)
    number = reader.line_num + 1  # where the next row starts (a quoted cell may span lines)
    try:
        for cells in reader:
            if any(cells):
                yield _line(number, functools.partial(csv_event, columns, cells))
            number = reader.line_num + 1
    except csv.Error as error:  # the reader cannot go on: the line is refused, the rest not read
        yield Line(number, code="invalid_csv", reason=f"{error}; the rest of the file was not read")


def _line(number: int, event_of: Callable[[], dict[str, Any]]) -> Line:
    try:
        body = encoded(prepared(event_of()))
    except UnreadableLine as unreadable:
        return Line(number, code=unreadable.code, reason=str(unreadable))
    except RecursionError:
        return Line(number, code="invalid_json", reason="nested too deeply")
    if len(body) > MAX_EVENT_BYTES:
        return Line(number, code="payload_too_large", reason=f"larger than {MAX_EVENT_BYTES} bytes")
    return Line(number, body)


def batches(lines: Iterable[Line], *, max_events: int,
            max_bytes: int = MAX_BATCH_BYTES) -> Iterator[Line | list[Line]]:
    """Sendable lines in batches of at most `max_events` and `max_bytes` (as `{"batch":[...]}`); a line that
    cannot be sent is passed on alone, as it comes."""
    batch: list[Line] = []
    size = EMPTY_BATCH
    for line in lines:
        if line.code is not None:
            yield line
            continue
        if batch and (len(batch) == max_events or size + len(line.body) + 1 > max_bytes):
            yield batch
            batch, size = [], EMPTY_BATCH
        batch.append(line)
        size += len(line.body) + (1 if len(batch) > 1 else 0)
    if batch:
        yield batch


async def import_lines(lines: Iterable[Line], *, client: httpx.AsyncClient, write_key: str,
                       batch_size: int = MAX_BATCH_EVENTS, retry: RetryPolicy = RetryPolicy(),
                       out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> Summary:
    """Post the lines to `client`'s `/v1/import`, reporting each refused line to `out` as it is known."""
    summary = Summary()
    for item in batches(lines, max_events=batch_size):
        if isinstance(item, Line):
            summary.read += 1
            _refuse(summary, item.number, f"refused, not sent ({item.code}: {item.reason})", out)
            continue
        summary.read += len(item)
        summary.sent += len(item)
        body = b'{"batch":[' + b",".join(line.body for line in item) + b"]}"
        try:
            response = await _post(client, body, write_key=write_key, retry=retry, err=err)
        except _Stop as stop:
            summary.undelivered += len(item)
            summary.stopped = f"{stop}, at line {item[0].number}: the lines from there on were not imported"
            return summary
        _answered(summary, response, item, out)
    return summary


async def _post(client: httpx.AsyncClient, body: bytes, *, write_key: str, retry: RetryPolicy,
                err: TextIO) -> httpx.Response:
    attempt = 0
    while True:
        attempt += 1
        retry_after = None
        try:
            response = await client.post(IMPORT_PATH, content=body, auth=(write_key, ""),
                                         headers={"content-type": "application/json"})
        except httpx.TransportError as error:
            reason = f"connection failed ({type(error).__name__})"
        else:
            if response.status_code == 401 and "rejected" not in _json(response):
                raise _Stop(f"ingest refused the key (401 {_json(response).get('code', 'unauthorized')})")
            if response.status_code == 404:
                raise _Stop(f"no ingest at this URL (404 on {IMPORT_PATH})")
            if response.status_code < 500 and response.status_code not in RETRIED:
                return response
            reason = f"ingest answered {response.status_code} {_json(response).get('code', '')}".rstrip()
            retry_after = _retry_after(response.headers.get("retry-after"))
        if attempt == retry.attempts:
            raise _Stop(f"{reason}, {attempt} attempts")
        delay = retry.delay(attempt, retry_after=retry_after)
        print(f"{reason}; retrying in {delay:.1f} s", file=err)
        await asyncio.sleep(delay)


def _answered(summary: Summary, response: httpx.Response, batch: list[Line], out: TextIO) -> None:
    if response.is_success:
        summary.accepted += len(batch)
        return
    answer = _json(response)
    rejected = answer.get("rejected")
    if not isinstance(rejected, list):  # the request as a whole
        for line in batch:
            _refuse(summary, line.number, f"refused ({response.status_code} {answer.get('code', 'error')})", out)
        return
    summary.accepted += int(answer.get("accepted", 0))
    for item in rejected:
        # Top-level fields only, as ingest logs them: deeper paths hold the client's own keys.
        fields = sorted({str(e.get("field", "")).split(".")[0].split("[")[0] for e in item.get("errors", [])})
        at_fault = f": {', '.join(fields)}" if fields else ""
        _refuse(summary, batch[item["index"]].number, f"refused ({item.get('status')} {item.get('code')}{at_fault})",
                out)


def _refuse(summary: Summary, number: int, text: str, out: TextIO) -> None:
    summary.refused += 1
    print(f"line {number}: {text}", file=out)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds, or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def file_format_of(path: Path) -> str | None:
    return FORMATS.get(path.suffix.lower())


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lifecycle_ingest.importer",
                                     description="Import historical events into Lifecycle's ingest (/v1/import).")
    parser.add_argument("file", type=Path, help="NDJSON (one Segment call per line) or CSV")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="ingest's base URL")
    parser.add_argument("--write-key", default=os.environ.get(WRITE_KEY_ENV),
                        help=f"the source's key (a server key to import orders); default: ${WRITE_KEY_ENV}")
    parser.add_argument("--format", choices=sorted(set(FORMATS.values())), help="default: from the extension")
    parser.add_argument("--batch-size", type=int, default=MAX_BATCH_EVENTS,
                        help=f"events per request, at most {MAX_BATCH_EVENTS} (batches also stay under "
                             f"{MAX_BATCH_BYTES} bytes)")
    args = parser.parse_args(argv)
    args.format = args.format or file_format_of(args.file)
    if args.format is None:
        parser.error(f"{args.file}: unknown extension; give --format ndjson or --format csv")
    if not args.write_key:
        parser.error(f"no key: give --write-key or set {WRITE_KEY_ENV}")
    if not 1 <= args.batch_size <= MAX_BATCH_EVENTS:
        parser.error(f"--batch-size: between 1 and {MAX_BATCH_EVENTS}")
    if not args.file.is_file():
        parser.error(f"{args.file}: no such file")
    return args


async def run(argv: list[str], *, transport: httpx.AsyncBaseTransport | None = None,
              retry: RetryPolicy = RetryPolicy(), out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """The command: its exit status. `transport` and `retry` are for tests."""
    args = _arguments(argv)
    async with httpx.AsyncClient(base_url=args.url, transport=transport, timeout=30.0) as client:
        try:
            summary = await import_lines(read_lines(args.file, args.format), client=client,
                                         write_key=args.write_key, batch_size=args.batch_size, retry=retry,
                                         out=out, err=err)
        except (InvalidColumns, OSError) as error:
            print(f"{args.file}: {error}", file=err)
            return 2
    print(summary, file=out)
    return 0 if summary.complete else 1


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
