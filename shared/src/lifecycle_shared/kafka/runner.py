"""The consumer runner: decode -> inbox -> handler -> outbox -> DB commit -> offset commit.

Handlers only read and write through the connection they are given and return the events to
emit; the runner owns the order of effects. A polled batch is applied in ONE transaction; if it
fails, its records are retried one at a time (bounded, jittered) so one poison record goes to
`<topic>.dlq` and the rest of the partition keeps flowing.

What a failure is comes from `db_errors.classify` (the SQLSTATE, not the driver's class): the
database being away (failover, crash recovery, too many connections, a lost connection) is nobody's
record - the batch is re-read after an exponential, capped wait, for as long as it takes, and the
runner reports itself unready meanwhile; a lost race (deadlock, serialization failure) re-runs the
record's transaction without using up its attempts; only the rest can dead-letter a record.

Shutdown drains (`drain`): the runner polls no more, finishes the batch it is applying, commits its
offsets and returns; the runtime then closes the consumer, which leaves the group, so the partitions
move to the other instances at once and nothing they read was applied here without being committed.
The next poll runs while a batch applies (`kafka.polling`); what it took is given back (seeked back,
never committed) whenever the loop ends without applying it - a drain, a stop, an outage or a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lifecycle_shared import metrics, tracing
from lifecycle_shared.db import add_to_outbox, claim_new_event_ids, digests_of
from lifecycle_shared.db_errors import classify
from lifecycle_shared.errors import PermanentError, describe_error, describe_validation
from lifecycle_shared.events import LEGACY_TYPE_HEADER, TYPE_HEADER, CloudEvent, event_type_header
from lifecycle_shared.kafka.opening import open_all
from lifecycle_shared.kafka.polling import OffsetCommits, PollAhead, max_poll_records
from lifecycle_shared.kafka.registry import Emitted, Handler, Route, Router, Typed, runs_of
from lifecycle_shared.keyring import Keyring, KeysUnavailable
from lifecycle_shared.topics import DLQ_SUFFIX

log = logging.getLogger(__name__)


# A record a route wants: with its route, and its typed event when it was decoded in one pass.
Wanted = tuple[ConsumerRecord, Route, Typed[Any] | None]


class InfrastructureDown(Exception):
    """The database or broker is unreachable: retry the whole batch later, dead-letter nothing."""


def is_infrastructure_error(error: BaseException) -> bool:
    return isinstance(error, KafkaError) or classify(error) == "infrastructure"


@dataclass
class RetryPolicy:
    attempts: int = 4
    base_delay_s: float = 0.2
    max_delay_s: float = 3.0
    # Waiting for the database or broker to come back: no limit on the number of waits, only on each.
    outage_base_delay_s: float = 0.5
    outage_max_delay_s: float = 30.0

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        return random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**attempt))

    def outage_delay(self, outage: int) -> float:
        """The wait before re-reading a batch after the `outage`-th consecutive infrastructure failure
        (1, 2, ...): exponential, capped, half of it jittered (never near zero: nothing to hammer)."""
        ceiling = min(self.outage_max_delay_s, self.outage_base_delay_s * 2.0 ** min(outage - 1, 16))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass
class ConsumerRunner:
    name: str
    consumer: AIOKafkaConsumer
    producer: AIOKafkaProducer
    engine: AsyncEngine
    route: Router
    on_committed: Callable[[], None] = lambda: None
    # Called once a batch's transaction has committed, before its offsets are: what it emitted is in the
    # outbox, so the relay is woken now rather than after the offset commit's round trip.
    on_applied: Callable[[], None] = lambda: None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # The event types `route` handles, for their series to exist at 0 from the start (the DLQ count too).
    event_types: Sequence[str] = ()
    # Where sealed records' keys come from (None: only clear records can be read; a sealed one waits).
    keyring: Keyring | None = None
    _started: bool = field(default=False, init=False)
    # Consecutive batches that failed because the database or broker was away (0: all is well).
    outage: int = field(default=0, init=False)
    _draining: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def __post_init__(self) -> None:
        metrics.initialise_consumer(self.name, self.event_types)

    def _type_label(self, event_type: str | None) -> str:
        """An event type as a label: one this consumer routes, else `other` (never a free-form header)."""
        return event_type if event_type is not None and event_type in self.event_types else metrics.OTHER_TYPE

    @property
    def healthy(self) -> bool:
        """False while the runner waits for the database or broker (the service's /readyz says so)."""
        return self.outage == 0

    def drain(self) -> None:
        """Stop after the batch in hand is applied and committed (`run` then returns)."""
        self._draining.set()

    async def run(self) -> None:
        """Poll -> apply -> commit offsets, with the waits overlapped (`kafka.polling`): the next poll runs
        while a batch applies, and a batch's offsets are committed while the next one applies, in order."""
        # Joining the group happens here, not in the app's start-up, so /healthz answers at once.
        if not self._started:
            await self.consumer.start()
            self._started = True
        polls = PollAhead(self.consumer, max_records=max_poll_records(self.consumer))
        commits = OffsetCommits(self.consumer, self.name, self.on_committed)
        try:
            while not self._draining.is_set():
                records = await polls.next_batch()
                if not records:
                    continue
                if self._draining.is_set():  # polled while draining: for the partition's next owner
                    await polls.give_back(records)
                    break
                polled_ms = time.time() * 1000
                age = metrics.RECORD_AGE_AT_POLL.labels(self.name)
                for record in records:
                    age.observe(max(0.0, polled_ms - record.timestamp) / 1000)
                polls.start()  # at most one poll ahead (max_poll_records): what arrives meanwhile is taken
                started = time.perf_counter()
                try:
                    await self.process(records)
                except InfrastructureDown as error:
                    # Not the records' fault: re-read them (and what the poll ahead took) once the database/
                    # broker is back (offsets stay uncommitted, nothing is dead-lettered), however long it takes.
                    self.outage += 1
                    wait = self.retry.outage_delay(self.outage)
                    log.warning("infrastructure down; will re-read the batch",
                                extra={"consumer": self.name, "outage": self.outage, "wait_s": round(wait, 1),
                                       "error": describe_error(error.__cause__ or error)})
                    await polls.give_back(records)
                    with contextlib.suppress(TimeoutError):  # a drain ends the wait
                        await asyncio.wait_for(self._draining.wait(), wait)
                    continue
                except BaseException:  # stopped or crashed mid-batch: read again (the inbox drops what applied)
                    await polls.give_back(records)
                    raise
                if self.outage:
                    log.warning("infrastructure back", extra={"consumer": self.name, "outage": self.outage})
                self.outage = 0
                self.on_applied()
                metrics.BATCH_SECONDS.labels(self.name, "apply").observe(time.perf_counter() - started)
                await commits.start(records)
        finally:
            await polls.give_back()  # what the poll ahead took, not applied
            await commits.finish()  # a stop or a drain lets the last batch's commit finish

    async def process(self, records: list[ConsumerRecord]) -> None:
        wanted: list[tuple[Wanted, CloudEvent]] = []
        routes: dict[str, Route | None] = {}  # a batch holds a handful of event types: look each up once
        for record in records:
            if not self._ours(record, routes):
                metrics.EVENTS_CONSUMED.labels(self.name, metrics.OTHER_TYPE, "ignored").inc()
                continue
            try:
                typed = self._typed_at_once(record, routes)
                event = typed.event if typed is not None else decode(record)
                route = routes[event.type] if event.type in routes else routes.setdefault(event.type,
                                                                                          self.route(event.type))
                if route is None:  # another service's business: not even recorded
                    metrics.EVENTS_CONSUMED.labels(self.name, metrics.OTHER_TYPE, "ignored").inc()
                    continue
                wanted.append(((record, route, typed), event))
            except PermanentError as error:  # not a CloudEvent
                await self._dead_letter(record, error)
        decoded = await self._typed(wanted)
        try:
            async with self.engine.begin() as conn:
                await self._apply(conn, decoded)
        except Exception as error:
            if is_infrastructure_error(error):
                raise InfrastructureDown from error
            log.warning("batch failed; retrying its records one by one", exc_info=True,
                        extra={"consumer": self.name, "records": len(decoded), "error": describe_error(error)})
            for item in decoded:
                await self._process_one(item)

    def _typed_at_once(self, record: ConsumerRecord, routes: dict[str, Route | None]) -> Typed[Any] | None:
        """The record decoded and validated in one pass by the route its type header names (`Route.typed_at_once`),
        if the event's own type is routed there too; None: decode it, open it, validate its data, step by step."""
        hinted = event_type_header(record.headers)
        route = routes.get(hinted) if hinted is not None else None
        if route is None or record.value is None:
            return None
        typed = route.typed_at_once(record.value)
        if typed is None or typed.event.type != hinted and self.route(typed.event.type) is not route:
            return None
        return typed

    async def _typed(self, wanted: list[tuple[Wanted, CloudEvent]]) -> list[tuple[ConsumerRecord, Typed[Any], Handler]]:
        """Sealed events opened (`kafka.opening`; the erased dropped), then each one's data validated into its
        route's model (a refusal sends that record alone to the DLQ); those decoded in one pass already are."""
        try:
            opened = await open_all(wanted, self.keyring)
        except KeysUnavailable as error:
            raise InfrastructureDown from error
        for (record, _, _), refusal in opened.refused:
            await self._dead_letter(record, refusal)
        for _, event in opened.erased:
            metrics.EVENTS_CONSUMED.labels(self.name, self._type_label(event.type), "erased").inc()
        if opened.erased:
            log.info("records of erased customers dropped", extra={"consumer": self.name,
                                                                   "records": len(opened.erased)})
        decoded: list[tuple[ConsumerRecord, Typed[Any], Handler]] = []
        for (record, route, typed), event in opened.ready:
            try:
                decoded.append((record, typed if typed is not None else route.typed(event), route.handler))
            except PermanentError as error:  # data its route's model refuses
                await self._dead_letter(record, error)
        return decoded

    def _ours(self, record: ConsumerRecord, routes: dict[str, Route | None] | None = None) -> bool:
        """False when the type header (or on older records the legacy `ce_type`) says no handler wants
        it; records without either are decoded. `routes`: lookups already made (and kept)."""
        event_type = event_type_header(record.headers)
        if event_type is None:
            return True
        if routes is None:
            return self.route(event_type) is not None
        if event_type not in routes:
            routes[event_type] = self.route(event_type)
        return routes[event_type] is not None

    async def _apply(self, conn: AsyncConnection, decoded: list[tuple[ConsumerRecord, Typed[Any], Handler]]) -> None:
        fresh = await claim_new_event_ids(conn, [(typed.event.id, record.topic, typed.event.digest)
                                                 for record, typed, _ in decoded])
        applied: dict[str, str | None] = {}  # id -> digest of what this batch applies
        duplicates: list[CloudEvent] = []
        keyed: list[tuple[bytes | None, Handler, Typed[Any]]] = []
        applied_types: Counter[str] = Counter()  # counted once per type, not once per event
        for record, typed, handler in decoded:
            event = typed.event
            if event.id not in fresh:
                duplicates.append(event)
                continue
            fresh.discard(event.id)  # a duplicate inside the same batch applies once
            applied[event.id] = event.digest
            applied_types[event.type] += 1
            keyed.append((record.key, handler, typed))
        runs = runs_of(keyed)
        for event_type, count in applied_types.items():
            metrics.EVENTS_CONSUMED.labels(self.name, self._type_label(event_type), "applied").inc(count)

        if duplicates:
            await self._count_duplicates(conn, duplicates, applied)
        if not tracing.enabled():  # no SDK provider: not a single tracing step
            emitted: Emitted = []
            for handler, events in runs:
                emitted += await handler(conn, events)
            await add_to_outbox(conn, emitted)
            return
        await self._apply_traced(conn, [(record, typed.event) for record, typed, _ in decoded], runs)

    async def _apply_traced(self, conn: AsyncConnection, consumed: list[tuple[ConsumerRecord, CloudEvent]],
                            runs: list[tuple[Handler, list[Typed[Any]]]]) -> None:
        """`_apply`'s handler runs with a span per consumed record (duplicates too), and the trace context
        of each emitted event kept in its outbox row (`tracing.RecordSpans`)."""
        spans = tracing.RecordSpans(self.name, consumed)
        try:
            emitted: Emitted = []
            contexts: list[dict[str, str]] = []
            for handler, typed in runs:
                events = [t.event for t in typed]
                with spans.run(events):
                    out = await handler(conn, typed)
                emitted += out
                contexts += spans.emitted(events, out)
                spans.log_applied(self.name, events)
            await add_to_outbox(conn, emitted, trace=contexts)
        except BaseException as error:
            spans.end(error)
            raise
        spans.end()

    async def _count_duplicates(self, conn: AsyncConnection, duplicates: list[CloudEvent],
                                applied: dict[str, str | None]) -> None:
        """Duplicates are skipped; one whose body differs from the applied one is a conflict
        (a client reusing a messageId for another event): logged and counted, never silent."""
        for event in duplicates:
            metrics.EVENTS_CONSUMED.labels(self.name, self._type_label(event.type), "duplicate").inc()
        earlier = await digests_of(conn, [e.id for e in duplicates if e.digest and e.id not in applied])
        earlier.update(applied)
        for event in duplicates:
            first = earlier.get(event.id)
            if event.digest and first and first != event.digest:
                metrics.DUPLICATE_CONFLICTS.labels(self.name).inc()
                log.warning("event id reused for a different event; the first one stays applied",
                            extra={"consumer": self.name, "event_id": event.id, "source": event.source})

    async def _process_one(self, item: tuple[ConsumerRecord, Typed[Any], Handler]) -> None:
        record, typed, _ = item
        attempt = races = 0
        while True:
            try:
                async with self.engine.begin() as conn:
                    await self._apply(conn, [item])
                return
            except PermanentError as error:
                await self._dead_letter(record, error)
                return
            except Exception as error:
                if is_infrastructure_error(error):
                    raise InfrastructureDown from error
                if classify(error) == "transaction":  # a deadlock or serialization failure: run it again
                    races += 1
                    log.warning("transaction lost a race; re-running it",
                                extra={"consumer": self.name, "event_id": typed.event.id, "races": races,
                                       "error": describe_error(error)})
                    await asyncio.sleep(self.retry.delay(min(races, 6)))
                    continue
                attempt += 1
                if attempt >= self.retry.attempts:
                    await self._dead_letter(record, error)
                    return
                log.warning("retrying record", extra={"consumer": self.name, "event_id": typed.event.id,
                                                       "attempt": attempt, "error": describe_error(error)})
                await asyncio.sleep(self.retry.delay(attempt - 1))

    async def _dead_letter(self, record: ConsumerRecord, error: BaseException) -> None:
        headers = dead_letter_headers(record.headers) + [
            ("dlq.error", describe_error(error)[:2000].encode()),
            ("dlq.consumer", self.name.encode()),
            ("dlq.original.topic", record.topic.encode()),
            ("dlq.original.partition", str(record.partition).encode()),
            ("dlq.original.offset", str(record.offset).encode()),
        ]
        try:
            await self.producer.send_and_wait(record.topic + DLQ_SUFFIX, record.value, key=record.key,
                                              headers=headers)
        except KafkaError as send_error:
            raise InfrastructureDown from send_error
        metrics.DLQ_RECORDS.labels(self.name, record.topic).inc()
        metrics.EVENTS_CONSUMED.labels(self.name, self._type_label(event_type_header(record.headers)),
                                       "dead_lettered").inc()
        log.error("record sent to DLQ", extra={"consumer": self.name, "topic": record.topic,
                                                "partition": record.partition,
                                                "offset": record.offset, "error": describe_error(error)})


def dead_letter_headers(headers: Sequence[tuple[str, bytes]] | None) -> list[tuple[str, bytes]]:
    """The original record's headers as a dead letter carries them: kept, but a legacy `ce_type` is
    renamed to the routing header (or dropped beside one), so the DLQ record reads as structured mode
    to CloudEvents SDKs, as everything written today does."""
    kept = list(headers or ())
    has_current = any(name == TYPE_HEADER for name, _ in kept)
    return [(TYPE_HEADER if name == LEGACY_TYPE_HEADER else name, value) for name, value in kept
            if not (name == LEGACY_TYPE_HEADER and has_current)]


def decode(record: ConsumerRecord) -> CloudEvent:
    if record.value is None:
        raise PermanentError("record has no value")
    try:
        return CloudEvent.model_validate_json(record.value)
    except ValidationError as error:
        if any(e["type"] == "json_invalid" for e in error.errors(include_input=False)):
            raise PermanentError("undecodable value: not JSON") from None
        problems = describe_validation(error, fields=CloudEvent.model_fields)
        raise PermanentError(f"not a CloudEvent: {problems}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PermanentError(f"undecodable value: {type(error).__name__}") from None
