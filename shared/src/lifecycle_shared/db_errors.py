"""What a failure is, from the database's own words (its SQLSTATE), not from the driver's class.

SQLAlchemy's asyncpg dialect maps only a few server errors to precise classes (integrity, syntax);
every other one - the server refusing connections during a failover (57P03), an admin shutdown
(57P01), too many connections (53300), a deadlock (40P01) - arrives as a plain `DBAPIError`. The
SQLSTATE says what happened: asyncpg's exceptions carry it as `.sqlstate`, SQLAlchemy keeps the
driver's exception as `.orig` (and asyncpg's own as that one's `__cause__`).

- "infrastructure": the database (or the way to it) is not there now - class 08 (connection), 53
  (insufficient resources: too many connections, disk full), 57P01/57P02/57P03/57P05 (shut down,
  crashed, cannot connect now, idle session timeout), connection-level OS errors and timeouts, a
  connection SQLAlchemy invalidated. No record is at fault: wait and retry, however long it takes.
- "transaction": the transaction lost a race (40001 serialization failure, 40P01 deadlock): run it
  again, it will succeed.
- "record": anything else, e.g. data errors (class 22), integrity errors (23) the handler did not
  handle, validation: the record may be at fault; bounded retries, then the dead-letter topic.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

Kind = Literal["infrastructure", "transaction", "record"]

INFRASTRUCTURE_CLASSES = ("08", "53")
INFRASTRUCTURE_STATES = frozenset({"57P01", "57P02", "57P03", "57P05"})
TRANSACTION_STATES = frozenset({"40001", "40P01"})


def _chain(error: BaseException) -> list[BaseException]:
    """`error`, the driver's error it wraps (`.orig`) and their causes (`raise ... from`), each once."""
    seen: list[BaseException] = []
    pending: list[BaseException] = [error]
    while pending and len(seen) < 16:
        current = pending.pop(0)
        if any(current is known for known in seen):
            continue
        seen.append(current)
        for linked in (getattr(current, "orig", None), current.__cause__):
            if isinstance(linked, BaseException):
                pending.append(linked)
    return seen


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE the server (or asyncpg, for a connection it lost) gave, if any."""
    for link in _chain(error):
        state = getattr(link, "sqlstate", None)
        if isinstance(state, str) and state:
            return state
    return None


def classify(error: BaseException) -> Kind:
    state = sqlstate(error)
    if state is not None:
        if state.startswith(INFRASTRUCTURE_CLASSES) or state in INFRASTRUCTURE_STATES:
            return "infrastructure"
        if state in TRANSACTION_STATES:
            return "transaction"
        return "record"
    for link in _chain(error):
        if isinstance(link, DBAPIError) and (link.connection_invalidated
                                             or isinstance(link, OperationalError | InterfaceError)):
            return "infrastructure"
        if isinstance(link, OSError | TimeoutError):
            return "infrastructure"
    return "record"
