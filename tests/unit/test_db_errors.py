"""`classify`: what a database failure is, from its SQLSTATE, on asyncpg's own exceptions as the server's
messages build them, raw and as SQLAlchemy's asyncpg dialect wraps them (mostly as a plain DBAPIError)."""

from __future__ import annotations

import pytest
from asyncpg.exceptions import ConnectionDoesNotExistError, PostgresError
from lifecycle_shared.db_errors import classify, sqlstate
from lifecycle_shared.errors import PermanentError
from pydantic import BaseModel, ValidationError
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection, PGDialect_asyncpg
from sqlalchemy.exc import DBAPIError, IntegrityError

DBAPI = PGDialect_asyncpg.import_dbapi()


def server_error(code: str) -> PostgresError:
    """What asyncpg raises when the server answers with this SQLSTATE (its own class for the code)."""
    return PostgresError.new({"C": code, "M": "server says no", "S": "FATAL"})


def as_sqlalchemy_raises(error: Exception) -> DBAPIError:
    """The dialect's translation (`raise translated from error`), then SQLAlchemy's wrapper (`.orig`)."""
    try:
        AsyncAdapt_asyncpg_connection._handle_exception_no_connection(DBAPI, error)
    except DBAPI.Error as translated:
        wrapped = DBAPIError.instance("SELECT 1", None, translated, DBAPI.Error)
        wrapped.__cause__ = translated
        return wrapped
    raise AssertionError("not translated")


INFRASTRUCTURE = ["57P03", "57P01", "57P02", "53300", "53100", "08006", "08001", "08003"]
TRANSACTION = ["40001", "40P01"]
RECORD = ["22P02", "22001", "23505", "23503", "42703", "57014"]


@pytest.mark.parametrize(("code", "kind"), [*((c, "infrastructure") for c in INFRASTRUCTURE),
                                            *((c, "transaction") for c in TRANSACTION),
                                            *((c, "record") for c in RECORD)])
def test_server_errors_are_classified_by_their_sqlstate_raw_and_wrapped(code, kind):
    raw = server_error(code)
    assert raw.sqlstate == code
    wrapped = as_sqlalchemy_raises(raw)
    assert (classify(raw), classify(wrapped), sqlstate(wrapped)) == (kind, kind, code)


def test_the_failover_answer_reaches_sqlalchemy_as_a_plain_dbapi_error():
    """Why the SQLSTATE and not the class: 57P03 is neither OperationalError nor InterfaceError."""
    wrapped = as_sqlalchemy_raises(server_error("57P03"))
    assert type(wrapped) is DBAPIError
    assert type(wrapped.orig.__cause__).__name__ == "CannotConnectNowError"
    assert classify(wrapped) == "infrastructure"


def test_an_unhandled_integrity_error_is_the_records():
    wrapped = as_sqlalchemy_raises(server_error("23505"))
    assert isinstance(wrapped, IntegrityError)
    assert classify(wrapped) == "record"


@pytest.mark.parametrize("error", [ConnectionRefusedError(111, "refused"), ConnectionResetError(),
                                   TimeoutError(), OSError(113, "no route to host"),
                                   ConnectionDoesNotExistError("connection was closed in the middle of operation")])
def test_connection_level_failures_are_infrastructure(error):
    assert classify(error) == "infrastructure"


def test_an_os_error_behind_a_wrapper_is_infrastructure():
    try:
        try:
            raise ConnectionRefusedError(111, "refused")
        except OSError as cause:
            raise RuntimeError("could not connect") from cause
    except RuntimeError as error:
        assert classify(error) == "infrastructure"


def test_a_connection_sqlalchemy_invalidated_is_infrastructure():
    wrapped = DBAPIError.instance("SELECT 1", None, DBAPI.Error("gone"), DBAPI.Error,
                                  connection_invalidated=True)
    assert classify(wrapped) == "infrastructure"


class Model(BaseModel):
    amount: int


def test_errors_of_the_record_itself_are_the_records():
    with pytest.raises(ValidationError) as invalid:
        Model.model_validate({"amount": "three"})
    for error in (invalid.value, PermanentError("contract violated"), RuntimeError("bug"), KeyError("x")):
        assert classify(error) == "record"
