"""Errors described without the data they were about.

Exception texts carry personal data: a database error quotes the row it refused (an email, a
phone number), pydantic quotes the input, an SMTP refusal quotes the address. Logs, DLQ headers
and stored failure reasons use `describe_error`, which keeps the class, a database error's
SQLSTATE and the text only of errors we word ourselves (`PermanentError`).
"""

from __future__ import annotations

from collections.abc import Collection

from pydantic import ValidationError


class PermanentError(Exception):
    """The record can never be applied (malformed, violates the contract): DLQ without retry.

    Its message is ours and must name fields, never quote their values.
    """


def describe_error(error: BaseException) -> str:
    if isinstance(error, PermanentError):
        return f"PermanentError: {error}"
    original = getattr(error, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's error
    sqlstate = getattr(original, "sqlstate", None) or getattr(getattr(original, "__cause__", None), "sqlstate", None)
    name = type(error).__name__
    if original is not None:
        name += f"({type(original).__name__})"
    return f"{name} [SQLSTATE {sqlstate}]" if sqlstate else name


def describe_validation(error: ValidationError, *, fields: Collection[str]) -> str:
    """'properties: dict_type; userId: missing' - where and what kind, never the input. A location
    that is not one of the model's `fields` (an unknown key: data, perhaps an address) is not named."""
    def where(loc: tuple[int | str, ...]) -> str:
        parts = [part if isinstance(part, int) or part in fields else "(another key)" for part in loc[:1]]
        return ".".join(str(part) for part in parts) or "(root)"

    problems = error.errors(include_input=False, include_url=False)[:5]
    return "; ".join(f"{where(e['loc'])}: {e['type']}" for e in problems)


def invalid_data(what: str, error: ValidationError, *, fields: Collection[str]) -> PermanentError:
    return PermanentError(f"{what} invalid: {describe_validation(error, fields=fields)}")
