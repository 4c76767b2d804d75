"""What may go into an email header. Pure.

Customer data reaches headers (a first name in the subject, an address in To, an id in
X-Lifecycle-Customer). A line break there would inject headers, and Python's email package
refuses it by raising: one customer's name would stop every email behind it. So header text is
made single-line, and an address is accepted only if it is one valid address.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

_BREAKS = re.compile(r"\s+")


def header_safe(text: str, *, limit: int = 500) -> str:
    """One line: control and line/paragraph-separator characters become spaces, runs of space one."""
    cleaned = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)
    return _BREAKS.sub(" ", cleaned).strip()[:limit]


def valid_address(value: object) -> str | None:
    """The normalised address if `value` is one syntactically valid email address, else None."""
    if not isinstance(value, str) or len(value.strip()) > 254:
        return None
    return _validated(value.strip())


@lru_cache(maxsize=4096)  # a customer's transitions carry their address again and again: checked once
def _validated(value: str) -> str | None:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError:
        return None
