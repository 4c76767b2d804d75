"""Customer ids every service reads the same way.

A junk id is a value a storefront sends when it has no id but its template printed one anyway
(`"null"`, `"undefined"`, `"0"`, `"anonymous"`...). Linking on it would merge every visitor who
ever sent it into one person, so it is never an id: ingest refuses it (400 naming the field) and the
stage engine ignores it on records from before that rule.
"""

from __future__ import annotations

JUNK_IDS = frozenset({
    "", "0", "-1", "null", "nil", "none", "undefined", "nan", "anonymous", "unknown", "[object object]",
    "00000000-0000-0000-0000-000000000000",
})


def is_junk_id(value: str | None) -> bool:
    return value is not None and value.strip().lower() in JUNK_IDS
