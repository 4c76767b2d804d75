"""Errors described without the data they were about.

Exception texts carry personal data: a database error quotes the row it refused (an email, a
phone number), pydantic quotes the input, an SMTP refusal quotes the address. Logs, DLQ headers
and stored failure reasons use `describe_error`, which keeps the class, a database error's
SQLSTATE and the text only of errors we word ourselves (`PermanentError`).
"""

from __future__ import annotations

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


def describe_validation(error: ValidationError) -> str:
    """'data.properties: dict_type; data.userId: missing' - locations and error kinds, no input."""
    return "; ".join(f"{'.'.join(str(part) for part in e['loc']) or '(root)'}: {e['type']}"
                     for e in error.errors(include_input=False, include_url=False)[:5])


def invalid_data(what: str, error: ValidationError) -> PermanentError:
    return PermanentError(f"{what} invalid: {describe_validation(error)}")
