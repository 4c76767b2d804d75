"""The analytics worker: model fits and scoring, off the consumer loop and the request handlers.

- A refresh reads every buyer's orders (one query), scores them all in a separate process (numpy and
  scipy: `scoring.score`), and replaces `customer_scores` in one transaction; it stores the segment
  sizes and the movement between segments since the previous refresh (`rfm_snapshots`) and the fit
  (`clv_fits`, kind `scheduled`). It runs every `analytics_interval_s`, and when asked
  (POST /v1/admin/analytics/fits without a calibration end).
- A requested fit with a calibration end and a unit fits the models on the orders up to then
  (e.g. CDNOW through 1997-09-30 in weeks) and stores only the fit.
- Requests wait in `clv_fits` (status `queued`): any instance takes them (`FOR UPDATE SKIP LOCKED`);
  an advisory lock lets one instance refresh at a time.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from lifecycle_shared.errors import describe_error
from lifecycle_shared.kafka.relay import OutboxRelay
from lifecycle_shared.runtime import ServiceRuntime
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lifecycle_stage_engine.analytics import clv, rfm, scoring
from lifecycle_stage_engine.db import analytics as queries
from lifecycle_stage_engine.db import fits, scores
from lifecycle_stage_engine.domain.rules import RuleSet
from lifecycle_stage_engine.workers.sweeper import flag_low_p_alive

log = logging.getLogger(__name__)


def executor() -> Executor:
    """One worker process for the number crunching (spawned: no forked event loop or connections). It dies
    with the service, even a SIGKILLed one (`die_with_parent`, once it has imported what it runs); the
    multiprocessing resource tracker then exits by itself, its last writer gone."""
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=die_with_parent, initargs=(os.getpid(),))


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int, *, poll_s: float = 1.0) -> None:
    """In the pool's process, first: exit when `parent_pid` (the service) is gone, rather than live on
    re-parented to init. On Linux the kernel sends SIGKILL when the parent dies (prctl PR_SET_PDEATHSIG;
    the pool starts its process from the event loop's thread, which lives as long as the service). A
    parent that died before that call, or a system without prctl, is caught by a watchdog thread that
    compares os.getppid() with `parent_pid`."""
    if sys.platform == "linux":
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError) as error:  # the watchdog below still covers it
            log.warning("analytics pool: no PR_SET_PDEATHSIG", extra={"error": describe_error(error)})
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


async def request_fit(conn: AsyncConnection, *, calibration_end: datetime | None, unit: str) -> str:
    """A queued request, or the one already waiting for the same fit (asking twice queues it once, at the
    same moment too: the check and the insert hold a lock)."""
    await fits.lock_requests(conn)
    waiting = await fits.waiting(conn, calibration_end=calibration_end, unit=unit)
    if waiting is not None:
        return waiting
    return await fits.queue(conn, calibration_end=calibration_end, unit=unit)


async def refresh(engine: AsyncEngine, pool: Executor, *, now: datetime, options: scoring.Options,
                  fit_id: str | None = None, rules: RuleSet | None = None, topic: str = "",
                  relay: OutboxRelay | None = None) -> dict[str, Any] | None:
    """Score every buyer as of `now`, then (with `rules` that set `drift.at_risk_below_p_alive`) move the
    buyers whose P(alive) fell below it to at-risk. None when another instance is refreshing."""
    async with engine.begin() as conn:
        if not await scores.lock_refresh(conn):
            return None
        customers = await queries.customer_orders(conn)
        scored, summary = await asyncio.get_running_loop().run_in_executor(
            pool, partial(scoring.score, customers, as_of=now, options=options))
        previous = await scores.segments(conn)
        await scores.replace(conn, [{"profile_id": pid, "customer_id": s.customer_id, "document": s.as_json(),
                                     "segment": s.segment, "total_clv": s.total_clv} for pid, s in scored.items()],
                             at=now)
        moved = rfm.movement(previous, {pid: s.segment for pid, s in scored.items()})
        await scores.add_snapshot(conn, at=now, sizes=rfm.sizes(scored),
                                  movement=[[a, b, n] for (a, b), n in moved.most_common()])
        result = {**summary.as_json(), "scored_customers": len(scored)}
        await _finish(conn, fit_id, kind="scheduled", unit="D", result=result, now=now)
    if rules is not None and summary.moves_stages:
        result["moved_by_p_alive"] = await flag_low_p_alive(
            engine, {pid: (s.p_alive, s.last_order_at) for pid, s in scored.items() if s.p_alive is not None},
            rules=rules, now=now, topic=topic, relay=relay)
    else:
        result["moved_by_p_alive"] = 0
    return result


def _fit(customers: list[scoring.CustomerOrders], calibration_end: datetime, unit: clv.Unit,
         now: datetime) -> dict[str, Any]:
    fitted = scoring.fit(scoring.transactions_of(customers), calibration_end=calibration_end, unit=unit, fitted_at=now)
    return fitted.summary.as_json()


async def fit_at(engine: AsyncEngine, pool: Executor, *, fit_id: str, calibration_end: datetime, unit: clv.Unit,
                 now: datetime) -> dict[str, Any]:
    async with engine.connect() as conn:
        customers = await queries.customer_orders(conn)
    result = await asyncio.get_running_loop().run_in_executor(pool, _fit, customers, calibration_end, unit, now)
    async with engine.begin() as conn:
        await _finish(conn, fit_id, kind="requested", unit=unit, result=result, now=now)
    return result


async def _finish(conn: AsyncConnection, fit_id: str | None, *, kind: str, unit: str, result: dict[str, Any],
                  now: datetime, status: str = "done") -> None:
    if fit_id is None:
        await fits.add_finished(conn, kind=kind, unit=unit, status=status, result=result, now=now)
    else:
        await fits.finish(conn, fit_id, status=status, result=result, now=now)


async def _claim(engine: AsyncEngine, now: datetime) -> Any:
    async with engine.begin() as conn:
        return await fits.claim(conn, now)


async def _last_refresh(engine: AsyncEngine) -> datetime | None:
    async with engine.connect() as conn:
        return await scores.last_scored_at(conn)


async def run_once(engine: AsyncEngine, pool: Executor, *, now: datetime, options: scoring.Options,
                   every_s: float, rules: RuleSet | None = None, topic: str = "",
                   relay: OutboxRelay | None = None) -> bool:
    """Work through one queued request, else refresh when the last one is older than `every_s`.
    Returns whether it did anything."""
    job = await _claim(engine, now)
    if job is not None:
        try:
            if job.calibration_end is None:
                done = await refresh(engine, pool, now=now, options=options, fit_id=job.id, rules=rules, topic=topic,
                                     relay=relay)
                if done is None:  # another instance is refreshing: this request waits (and the loop sleeps)
                    async with engine.begin() as conn:
                        await fits.requeue(conn, job.id)
                    return False
            else:
                await fit_at(engine, pool, fit_id=job.id, calibration_end=job.calibration_end, unit=job.unit, now=now)
        except Exception as error:  # a failed fit is reported on its row; the worker goes on
            log.error("analytics: a fit failed", extra={"fit_id": job.id, "error": describe_error(error)})
            async with engine.begin() as conn:
                await _finish(conn, job.id, kind="requested", unit=job.unit, now=now, status="failed",
                              result={"error": describe_error(error)})
            if isinstance(error, BrokenProcessPool):
                raise
        return True
    last = await _last_refresh(engine)
    if last is None or now - last >= timedelta(seconds=every_s):
        return await refresh(engine, pool, now=now, options=options, rules=rules, topic=topic,
                             relay=relay) is not None
    return False


def analytics_worker(*, clock: Callable[[], datetime], options: scoring.Options, every_s: float,
                     rules: Callable[[], RuleSet], poll_s: float = 1.0):
    async def analytics(runtime: ServiceRuntime) -> None:
        topic = runtime.settings.kafka.topics.stage_transitions
        pool, failures = executor(), 0
        try:
            while True:
                try:
                    busy = await run_once(runtime.engine, pool, now=clock(), options=options, every_s=every_s,
                                          rules=rules(), topic=topic, relay=runtime.relay)
                    failures = 0
                except Exception as error:  # the database may be away: again later, backing off
                    log.error("analytics: a round failed", extra={"error": describe_error(error)})
                    if isinstance(error, BrokenProcessPool):  # its process died (OOM killer, kill -9): a new one
                        pool.shutdown(wait=False)
                        pool = executor()
                    failures += 1
                    await asyncio.sleep(min(every_s, poll_s * 2 ** min(failures, 12)))
                    continue
                if not busy:
                    await asyncio.sleep(poll_s)
        finally:  # stopping never waits for a fit to finish: a request still running is taken again later
            pool.shutdown(wait=False, cancel_futures=True)

    return analytics
