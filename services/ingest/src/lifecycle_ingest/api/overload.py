"""Bounded in-flight work: beyond `limit` requests being processed at once (body in, checked,
published, waiting for the broker), ingest answers 503 with `Retry-After` at once instead of queueing
work it cannot finish in time (Segment's libraries back off and retry a 503). A slot is taken only once
the body has arrived (bodies have their own deadline, `body_timeout_s`), so slow or idle clients cannot
hold the slots. Events in flight to the broker are bounded separately (`TouchpointPublisher`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import HTTPException


class InflightLimit:
    def __init__(self, *, limit: int) -> None:
        self.limit = limit
        self.inflight = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self.inflight >= self.limit:
            raise HTTPException(503, {"code": "overloaded", "message": "too many requests in progress; nothing "
                                      "was accepted, retry after Retry-After seconds"}, headers={"Retry-After": "1"})
        self.inflight += 1
        try:
            yield
        finally:
            self.inflight -= 1
